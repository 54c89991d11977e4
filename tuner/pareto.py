"""Pareto fronts of trials with several objectives (``metric: [a, b]``, ``mode: [max, min]``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_mask(values: Sequence[Sequence[float]], modes: Sequence[str]) -> list[bool]:
    """Which points are non-dominated. Point ``a`` dominates ``b`` when it is at least as good in every objective
    and strictly better in one ("max": larger is better, "min": smaller). Equal points do not dominate each
    other, so every copy of a non-dominated point is kept; a point with a NaN objective is never on the front."""
    points = np.asarray(values, dtype=float).reshape(len(values), len(modes))
    signs = np.array([1.0 if mode == "max" else -1.0 for mode in modes])
    better = points * signs  # larger is better in every column
    finite = np.isfinite(better).all(axis=1)
    mask = []
    for i, point in enumerate(better):
        if not finite[i]:
            mask.append(False)
            continue
        others = better[finite]
        dominated = ((others >= point).all(axis=1) & (others > point).any(axis=1)).any()
        mask.append(not dominated)
    return mask
