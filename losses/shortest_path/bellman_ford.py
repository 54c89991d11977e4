"""Relaxed Bellman-Ford on the grid (paper Section 4.2.1, Table 2), written with AlgoVision's primitives.

Distances: ``dist`` starts at the start cell's cost and is relaxed ``n_iter`` times (``For``) or until it stops
changing (``While``, a relaxed condition on the largest change) by AlgoVision's soft ``Min`` (inverse
temperature beta) over staying and the 8 neighbours plus the cell's cost. Path: a probability mass starts at
the goal and walks back ``n_iter`` steps, each step spreading it over the neighbours by AlgoVision's soft
``ArgMin`` of their distances; the relaxed path is the mass that visited each cell (capped at 1). Paths longer
than ``n_iter`` cells are cut short (paper: beta 10, n_iter 18). The loss compares the relaxed path with the
true one by L1 or squared L2; variants baseline and fisher (the paper found the Hessian too expensive).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from algovision import Algorithm, ArgMin, For, GT, Input, Let, Min, Output, Var, While

from ..registry import LOSSES
from .grid import NEIGHBOURS

FAR = 1e4  # distance of cells not reached yet, and of the border (finite: 0 * inf would be nan)


def _shifted(t: torch.Tensor, fill: float) -> list[torch.Tensor]:
    """The 8 neighbours' values of every cell of (B, H, W), ``fill`` beyond the border."""
    h, w = t.shape[-2:]
    padded = F.pad(t, (1, 1, 1, 1), value=fill)
    return [padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in NEIGHBOURS]


def relaxed_bellman_ford(beta: float = 10.0, n_iter: int = 18, loop: str = "for", grid: int = 12) -> Algorithm:
    """An AlgoVision ``Algorithm``: (B, grid, grid) costs -> (B, grid, grid) relaxed shortest path."""
    soft_min, soft_argmin = Min(beta=beta), ArgMin(beta=beta)
    start = torch.zeros(grid, grid)
    start[0, 0] = 1.0
    goal = torch.zeros(grid, grid)
    goal[-1, -1] = 1.0

    def relax(dist, costs):
        new = soft_min(dist, *[n + costs for n in _shifted(dist, FAR)])
        return torch.where(start.bool().to(costs.device), costs, new), (new - dist).abs().amax((1, 2))

    def walk_back(position, path, dist):
        # weights[k, b, y, x]: share of the mass at (y, x) that moves to its k-th neighbour
        weights = soft_argmin(*_shifted(dist, FAR)).permute(3, 0, 1, 2)
        at_start = start.to(position.device)
        mobile = position * (1 - at_start)  # mass that reached the start stays there
        moved = position * at_start
        h, w = position.shape[-2:]
        for k, (dy, dx) in enumerate(NEIGHBOURS):
            flow = F.pad(mobile * weights[k], (1, 1, 1, 1))  # send mass from (y, x) to (y + dy, x + dx)
            moved = moved + flow[:, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        return moved, torch.clamp(path + moved, max=1.0)

    relaxation = Let(["dist", "change"], relax)
    distances = (For("i", n_iter, relaxation) if loop == "for" else
                 While(GT("change", lambda change: torch.full_like(change, 1e-3)), relaxation, max_iter=grid * grid))
    return Algorithm(
        Input("costs"),
        Var("dist", torch.full((grid, grid), FAR)),
        Var("change", torch.ones(())),
        Var("position", goal),
        Var("path", goal),
        Let("dist", lambda dist, costs: torch.where(start.bool().to(costs.device), costs, dist)),
        distances,
        For("j", n_iter, Let(["position", "path"], walk_back)),
        Output("path"),
        beta=beta,
    )


@LOSSES.register("bellman_ford")
class BellmanFordLoss:
    """Per-sample L1 (``norm="l1"``) or squared L2 (``"l2"``) between the relaxed and the true path."""

    task_kind = "shortest_path"
    variants = ("baseline", "fisher")

    def __init__(self, beta: float = 10.0, n_iter: int = 18, loop: str = "for", norm: str = "l1"):
        if loop not in ("for", "while"):
            raise ValueError(f"loop must be 'for' or 'while', got {loop!r}")
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2' (squared L2), got {norm!r}")
        self.beta, self.n_iter, self.loop, self.norm = beta, n_iter, loop, norm
        self._algorithms: dict[int, Algorithm] = {}

    def path(self, costs: torch.Tensor) -> torch.Tensor:
        """(N, H*W) costs -> (N, H*W) relaxed path."""
        side = math.isqrt(costs.shape[1])
        if side not in self._algorithms:
            self._algorithms[side] = relaxed_bellman_ford(self.beta, self.n_iter, self.loop, side)
        return self._algorithms[side](costs.clamp_min(0).view(-1, side, side)).reshape(costs.shape)

    def __call__(self, costs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = self.path(costs) - target
        return diff.abs().sum(1) if self.norm == "l1" else diff.pow(2).sum(1)
