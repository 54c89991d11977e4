"""Were the trials a table compares run alike? Library versions, Python, CUDA/cuDNN, GPU and device per trial
(the ``env.*`` and ``device`` tags); a difference is a warning in the report, since library defaults and kernels
change between versions and devices."""

from __future__ import annotations

import pandas as pd

from ..environment import COMPARED


def mixed_environments(trials: pd.DataFrame, shipped_code: str = "") -> list[str]:
    """One line per environment field whose value differs between the finished trials, with the counts; and one
    when trials ran other code than the driver shipped (``shipped_code``: the driver's ``env.code_hash``)."""
    done = trials[trials["status"] == "FINISHED"]
    columns = [c.replace(".", "_") for c in COMPARED] + ["device"]
    lines = []
    for column in columns:
        if column not in done:
            continue
        counts = done[column].fillna("unknown").value_counts()
        if len(counts) > 1:
            spread = ", ".join(f"{value} ({n} trials)" for value, n in counts.items())
            lines.append(f"trials compared here ran with different {column.removeprefix('env_')}: {spread}")
    if shipped_code and "env_code_hash" in done:
        other = done["env_code_hash"].fillna("unknown") != shipped_code
        if other.any():
            lines.append(
                f"{int(other.sum())} of {len(done)} trials ran code other than the driver's (code hash "
                f"{shipped_code}): a node with another checkout or installed version of this project"
            )
    return lines


def gpu_sharing(trials: pd.DataFrame) -> pd.Series:
    """Per trial, how many trials (itself included) held its GPU at once at the busiest moment of its run: from the
    GPU ids Ray gave each trial (``ray_gpu_ids``) and the runs' start and end times. 0 for a trial that had no GPU."""
    ids = trials.get("ray_gpu_ids", pd.Series("", index=trials.index)).fillna("").astype(str)
    start, end = pd.to_datetime(trials["start_time"]), pd.to_datetime(trials["end_time"])
    counts = pd.Series(0, index=trials.index, dtype=int)
    for i in trials.index:
        mine = set(filter(None, ids[i].split(",")))
        if not mine or pd.isna(start[i]) or pd.isna(end[i]):
            continue
        others = [
            j
            for j in trials.index
            if set(filter(None, ids[j].split(","))) & mine
            and not pd.isna(start[j])
            and not pd.isna(end[j])
            and start[j] < end[i]
            and start[i] < end[j]
        ]
        # the busiest moment is at some run's start: count the runs live at each start inside this run
        moments = [start[j] for j in others if start[i] <= start[j] < end[i]] + [start[i]]
        counts[i] = max(sum(start[j] <= t < end[j] for j in others) for t in moments)
    return counts


def shared_gpu_timings(trials: pd.DataFrame, time_metrics: list[str]) -> list[str]:
    """A warning when time objectives were measured while trials shared a GPU (fractional ``resources.gpu``)."""
    if not time_metrics:
        return []
    sharing = gpu_sharing(trials[trials["status"] == "FINISHED"])
    if sharing.empty or sharing.max() <= 1:
        return []
    return [
        f"{', '.join(time_metrics)} were measured while trials shared a GPU: up to {int(sharing.max())} trials "
        f"on one GPU at once ({int((sharing > 1).sum())} of {len(sharing)} trials shared theirs); their times "
        f"depend on what ran beside them"
    ]
