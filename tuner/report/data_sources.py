"""Which data each table of the report rests on: the ``data_source`` its trials logged (``describe``), and whether
that is the paper's own data or a substitute, as the task's ``PAPER_DATA_SOURCES`` says (``tasks/contract.py``).
The header names it per table; a table on a substitute, or on several sources, says so in its caption."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from tasks.contract import paper_data_sources

COLUMN = "param_data_source"


class TableData(NamedTuple):
    header: list[str]  # report.md's header lines, one per group of tables
    caption: str  # for the compared trials' tables (results, runtime, Newton system); "" if nothing to say
    front_caption: str  # for the Pareto-front table (every trial, searched ones included)


def table_data(compared: pd.DataFrame, trials: pd.DataFrame, task, front: bool) -> TableData:
    paper = paper_data_sources(task)
    header = [f"Data of the results, runtime and Newton-system tables: {_line(compared, paper)}."]
    if front:
        header.append(f"Data of the Pareto-front table: {_line(trials, paper)}.")
    return TableData(header, _caption(compared, paper), _caption(trials, paper) if front else "")


def _counts(trials: pd.DataFrame) -> pd.Series:
    """Trials per logged data source: the finished ones (what the tables show), else all."""
    done = trials[trials["status"] == "FINISHED"] if (trials["status"] == "FINISHED").any() else trials
    if COLUMN not in done:
        return pd.Series(dtype=int)
    return done[COLUMN].dropna().astype(str).value_counts()


def _kind(source: str, paper: tuple[str, ...] | None) -> str:
    if paper is None:
        return ""
    return "the paper's data" if source.startswith(paper) else "a substitute, not the paper's data"


def _line(trials: pd.DataFrame, paper: tuple[str, ...] | None) -> str:
    counts = _counts(trials)
    if counts.empty:
        return "not logged (the task names no data_source)"
    if len(counts) == 1:
        kind = _kind(counts.index[0], paper)
        return f"`{counts.index[0]}`" + (f" ({kind})" if kind else "")
    return "mixed: " + ", ".join(
        f"`{s}` ({_trials(n)}{', ' + _kind(s, paper) if paper is not None else ''})" for s, n in counts.items()
    )


def _caption(trials: pd.DataFrame, paper: tuple[str, ...] | None) -> str:
    counts = _counts(trials)
    if len(counts) > 1:
        listed = "; ".join(f"{s}: {_trials(n)}" for s, n in counts.items())
        return f" Mixed data sources ({listed}): rows on different data are not comparable."
    if len(counts) == 1 and paper is not None and not counts.index[0].startswith(paper):
        return (
            f" Data: {counts.index[0]}, a substitute for the paper's data set: not comparable with the paper's numbers."
        )
    return ""


def _trials(n: int) -> str:
    return f"{n} trial{'' if n == 1 else 's'}"
