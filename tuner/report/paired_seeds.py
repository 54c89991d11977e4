"""Seed-by-seed pairing of each Newton variant with the baseline of its setting, beside the paper's own per-seed
numbers when the task declares them (paper Table 9: "results comparable only within each seed").

A task opts in with ``PAPER_PER_SEED = {"source": "Table 9 (appendix G)", "metric": "mse", "lam": 0.1,
"values": {seed: {variant: value}}}``; ``metric`` is the reported metric the paper's numbers are (else the task's
first ``REPORT_METRICS``), ``lam`` the λ they were taken at (None: any). The report then writes:

- ``paired_seeds.csv``: one row per setting, variant, λ and seed: the baseline's and the variant's (``newton``)
  final value, their difference and ratio, and the paper's values for that seed;
- ``paired_summary.csv``: per setting, variant and λ, the paired two-sided t-test over seeds
  (``scipy.stats.ttest_rel``), the exact two-sided sign test (``scipy.stats.binomtest``, ties dropped) and how many
  seeds the variant is better in (by the study's mode for its objective), ours and the paper's;
- ``paired_cost.csv``: training time per step (``(time_total - time_eval) / steps``), the variant's ratio to the
  baseline of the same seed (mean ± std over seeds), the share of ``time_loss`` in ``time_total``, and the
  execution's wall time (first trial start to last trial end).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .decisions import no_spread
from .stats import by_setting, setting_columns

NAN = float("nan")


@dataclass(frozen=True)
class PairedReport:
    pairs: pd.DataFrame
    summary: pd.DataFrame
    cost: pd.DataFrame
    wall_s: float
    metric: str
    source: str | None

    def write(self, out: Path) -> list[str]:
        files = {"paired_seeds.csv": self.pairs, "paired_summary.csv": self.summary, "paired_cost.csv": self.cost}
        for name, frame in files.items():
            frame.to_csv(out / name, index=False)
        return list(files)

    def markdown(self, table) -> str:
        """The section of ``report.md``; ``table`` renders a DataFrame as Markdown."""
        paper = f", beside the paper's {self.source}" if self.source else ""
        lines = [
            "",
            f"## Per seed, paired with the baseline (`{self.metric}`{paper})",
            "",
            ("Only values of the same seed are comparable (same initialisation and data). Δ = variant − baseline."),
            "",
            table(_shown(self.pairs)),
            "",
            "Paired tests over seeds (two-sided): t-test on the differences, exact sign test.",
            "",
            table(_shown(self.summary)),
            "",
            (
                f"Training time per step and the variant's ratio to the baseline of the same seed. This "
                f"execution's trials ran from the first start to the last end in {self.wall_s:.0f} s "
                f"({self.wall_s / 60:.1f} min)."
            ),
            "",
            table(_shown(self.cost)),
            "",
        ]
        return "\n".join(lines)


def paired_report(trials: pd.DataFrame, task: Any, objectives: dict[str, str]) -> PairedReport | None:
    """The paired tables for a task that declares ``PAPER_PER_SEED``; None for one that does not, or when no
    Newton variant shares a seed with its baseline. ``objectives`` maps the study's metrics to max/min."""
    paper = getattr(task, "PAPER_PER_SEED", None)
    if not isinstance(paper, dict):
        return None
    metric = paper.get("metric") or task.REPORT_METRICS[0]
    done = trials[(trials["status"] == "FINISHED") & trials.get(f"final_{metric}", pd.Series(dtype=float)).notna()]
    pairs = paired_rows(done, metric, paper)
    if pairs.empty:
        return None
    return PairedReport(
        pairs,
        paired_summary(pairs, objectives.get(metric)),
        paired_cost(done),
        wall_seconds(done),
        metric,
        paper.get("source"),
    )


def paired_rows(done: pd.DataFrame, metric: str, paper: dict) -> pd.DataFrame:
    values, lam_of_paper = paper.get("values", {}), paper.get("lam")
    rows = []
    for setting, group in by_setting(done, setting_columns(done)):
        base = _by_seed(group[group["param_variant"] == "baseline"], metric)
        for (variant, lam), cell in _newton_cells(group):
            ours = _by_seed(cell, metric)
            for seed in sorted(ours.index.intersection(base.index)):
                row = {
                    **setting,
                    "variant": variant,
                    "lam": lam,
                    "seed": int(seed),
                    "baseline": base[seed],
                    "newton": ours[seed],
                    "delta": ours[seed] - base[seed],
                    "ratio": ours[seed] / base[seed] if base[seed] else NAN,
                }
                cited = values.get(int(seed), {}) if lam_of_paper is None or _same(lam, lam_of_paper) else {}
                row.update({"paper_baseline": cited.get("baseline", NAN), "paper_newton": cited.get(variant, NAN)})
                row["paper_delta"] = row["paper_newton"] - row["paper_baseline"]
                rows.append(row)
    return pd.DataFrame(rows)


def paired_summary(pairs: pd.DataFrame, mode: str | None) -> pd.DataFrame:
    """Per setting, variant and λ: the paired tests over seeds, ours and (where cited for every seed) the paper's."""
    keys = [c for c in pairs.columns if c not in _PER_SEED and not c.startswith("paper_")]
    rows = []
    for key, group in pairs.groupby(keys, dropna=False, sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        ours = group[["baseline", "newton"]].to_numpy(float)
        row.update(_tests(group["delta"].to_numpy(float), ours, mode, "", len(group)))
        paper = group["paper_delta"].to_numpy(float)
        if not np.isnan(paper).any():
            cited = group[["paper_baseline", "paper_newton"]].to_numpy(float)
            row.update(_tests(paper, cited, mode, "paper_", len(group)))
        rows.append(row)
    return pd.DataFrame(rows)


def paired_cost(done: pd.DataFrame) -> pd.DataFrame:
    """Training time per step per variant, and its ratio to the baseline of the same seed."""
    steps = done["param_steps"].astype(float) if "param_steps" in done else done["final_step"].astype(float)
    per_step = (done["final_time_total"].astype(float) - done["final_time_eval"].astype(float)) / steps
    frame = done.assign(
        _per_step=per_step, _loss_share=done["final_time_loss"].astype(float) / done["final_time_total"].astype(float)
    )
    rows = []
    for setting, group in by_setting(frame, setting_columns(frame)):
        base = group[group["param_variant"] == "baseline"].set_index("param_seed")["_per_step"]
        for (variant, lam), cell in group.groupby(
            ["param_variant", group["param_lam"].astype("Float64")], dropna=False, sort=False
        ):
            ours = cell.set_index("param_seed")["_per_step"]
            common = ours.index.intersection(base.index)
            ratio = ours[common] / base[common]
            rows.append(
                {
                    **setting,
                    "variant": variant,
                    "lam": lam,
                    "trials": len(cell),
                    "train_s_per_step": ours.mean(),
                    "ratio_to_baseline_mean": ratio.mean() if len(common) else NAN,
                    "ratio_to_baseline_std": ratio.std(ddof=1) if len(common) > 1 else NAN,
                    "time_loss_share": cell["_loss_share"].mean(),
                    "time_total_s": cell["final_time_total"].astype(float).mean(),
                }
            )
    return pd.DataFrame(rows)


def wall_seconds(done: pd.DataFrame) -> float:
    start, end = pd.to_datetime(done["start_time"]), pd.to_datetime(done["end_time"])
    return float((end.max() - start.min()).total_seconds()) if len(done) else NAN


_PER_SEED = {"seed", "baseline", "newton", "delta", "ratio"}


def _tests(delta: np.ndarray, values: np.ndarray, mode: str | None, prefix: str, n: int) -> dict[str, float]:
    """Paired t-test and exact sign test of the differences (variant − baseline) over seeds; a spread, or a
    difference, within rounding of the ``values`` it comes from counts as none (``decisions.no_spread``), in the
    sign test and in "better in" alike."""
    out = {f"{prefix}pairs": n, f"{prefix}mean_delta": float(delta.mean())}
    spread = delta.std(ddof=1) if len(delta) > 1 else 0.0
    out[f"{prefix}t_p"] = float(stats.ttest_1samp(delta, 0.0).pvalue) if not no_spread(spread, values) else NAN
    nonzero = delta[~no_spread(np.abs(delta), values)]
    out[f"{prefix}sign_p"] = (
        float(stats.binomtest(int((nonzero < 0).sum()), len(nonzero)).pvalue) if len(nonzero) else NAN
    )
    if mode in ("min", "max"):
        better = (nonzero < 0) if mode == "min" else (nonzero > 0)
        out[f"{prefix}better_in"] = f"{int(better.sum())} of {len(delta)}"
    return out


def _newton_cells(group: pd.DataFrame):
    newton = group[group["param_variant"] != "baseline"]
    return newton.groupby(["param_variant", newton["param_lam"].astype("Float64")], dropna=False, sort=False)


def _by_seed(frame: pd.DataFrame, metric: str) -> pd.Series:
    return frame.set_index("param_seed")[f"final_{metric}"].astype(float)


def _same(a, b) -> bool:
    return a is not None and not pd.isna(a) and bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0))


HEADERS = {
    "newton": "variant",
    "delta": "Δ",
    "paper_baseline": "paper: baseline",
    "paper_newton": "paper: variant",
    "paper_delta": "paper: Δ",
    "mean_delta": "mean Δ",
    "t_p": "paired t p",
    "sign_p": "sign test p",
    "better_in": "better in",
    "paper_pairs": "paper: pairs",
    "paper_mean_delta": "paper: mean Δ",
    "paper_t_p": "paper: paired t p",
    "paper_sign_p": "paper: sign test p",
    "paper_better_in": "paper: better in",
    "train_s_per_step": "training s / step",
    "ratio_to_baseline_mean": "ratio to baseline (mean)",
    "ratio_to_baseline_std": "(std)",
    "time_loss_share": "time_loss / time_total",
    "time_total_s": "time_total (s)",
}


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers rounded for reading (p-values to 3 significant digits, the rest to 3 decimals, NaN blank), the
    columns named for reading."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            digits = "{:.3g}" if column.endswith("_p") else "{:.3f}"
            out[column] = out[column].map(lambda v, f=digits: "" if pd.isna(v) else f.format(v))
    if "lam" in out:
        out["lam"] = frame["lam"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    return out.rename(columns=HEADERS)
