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
            lines.append(f"{int(other.sum())} of {len(done)} trials ran code other than the driver's (code hash "
                         f"{shipped_code}): a node with another checkout or installed version of this project")
    return lines
