"""Exact shortest paths on grids with vertex costs (the Warcraft benchmark's solver, SPEC 3 and 5).

Paths go from the top-left to the bottom-right cell over the 8-neighbourhood; a path's cost is the
sum of the costs of the cells it visits, both end cells included; a path is a 0/1 mask. The solver is
batched: the stochastic losses call it on (batch x samples) grids at every training step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# (dy, dx) of the 8 neighbours, in the order ties are broken when walking back.
NEIGHBOURS = ((-1, -1), (-1, 0), (0, -1), (-1, 1), (1, -1), (1, 0), (0, 1), (1, 1))


def shortest_paths(costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shortest (0,0) -> (H-1,W-1) paths for (B, H, W) non-negative vertex costs.

    Distances come from a min-plus (Bellman-Ford) relaxation of all grids at once, run until no
    distance changes; the path is then walked back from the goal through the neighbour of least
    distance, in all grids at once.

    Returns:
        paths: (B, H, W) 0/1 masks in ``costs``' dtype, both end cells marked.
        path_costs: (B,) costs of those paths, both end cells included.
    """
    if costs.dim() != 3:
        raise ValueError(f"costs must be (B, H, W), got shape {tuple(costs.shape)}")
    if not torch.isfinite(costs).all() or (costs < 0).any():
        raise ValueError("costs must be finite and non-negative")
    c = costs.detach().to(torch.float64)
    dist = distances(c)
    paths = _walk_back(dist)
    return paths.to(costs.dtype), dist[:, -1, -1].to(costs.dtype)


def distances(c: torch.Tensor) -> torch.Tensor:
    """(B, H, W) cost of the cheapest path from (0, 0) to every cell, both ends included."""
    b, h, w = c.shape
    dist = torch.full_like(c, float("inf"))
    dist[:, 0, 0] = c[:, 0, 0]
    for _ in range(h * w):  # a shortest path visits each cell at most once: <= H*W rounds
        best = _neighbour_min(dist)[0]
        updated = torch.minimum(dist, best + c)
        if torch.equal(updated, dist):
            break
        dist = updated
    return dist


def _neighbour_min(dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per cell, the least distance among its 8 neighbours and which neighbour (index into NEIGHBOURS)."""
    b, h, w = dist.shape
    padded = F.pad(dist, (1, 1, 1, 1), value=float("inf"))
    stacked = torch.stack([padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in NEIGHBOURS])
    return stacked.min(0)


def _walk_back(dist: torch.Tensor) -> torch.Tensor:
    b, h, w = dist.shape
    _, choice = _neighbour_min(dist)
    offsets = torch.tensor(NEIGHBOURS, device=dist.device)
    rows = torch.arange(b, device=dist.device)
    y = torch.full((b,), h - 1, device=dist.device)
    x = torch.full((b,), w - 1, device=dist.device)
    paths = torch.zeros_like(dist, dtype=torch.bool)
    paths[rows, y, x] = True
    for _ in range(h * w):
        active = (y != 0) | (x != 0)
        if not active.any():
            break
        step = offsets[choice[rows, y, x]]
        y = torch.where(active, y + step[:, 0], y)
        x = torch.where(active, x + step[:, 1], x)
        paths[rows, y, x] = True
    return paths
