"""Exact shortest paths on grids with vertex costs (the Warcraft benchmark's solver, SPEC 3 and 5).

Paths go from the top-left to the bottom-right cell over the 8-neighbourhood; a path's cost is the
sum of the costs of the cells it visits, both end cells included; a path is a 0/1 mask. The solver is
batched: the stochastic losses call it on (batch x samples) grids at every training step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# (dy, dx) of the 8 neighbours; on equal distances the first one listed becomes the predecessor.
NEIGHBOURS = ((-1, -1), (-1, 0), (0, -1), (-1, 1), (1, -1), (1, 0), (0, 1), (1, 1))
NO_PREDECESSOR = -1


def shortest_paths(costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shortest (0,0) -> (H-1,W-1) paths for (B, H, W) non-negative vertex costs (zeros and ties included).

    Distances come from a min-plus (Bellman-Ford) relaxation of all grids at once; a cell's predecessor is
    the neighbour that last *strictly* lowered its distance. With non-negative costs those predecessors form
    a tree rooted at the start (a cycle would need a negative cycle cost; the argument holds in floating point
    too, as rounding is monotone), so walking back from the goal always reaches the start, and the path it
    marks costs exactly the returned distance (the same additions in the same order). Walking back through
    the neighbour of least distance instead can cycle where zero-cost cells touch.

    Returns:
        paths: (B, H, W) 0/1 masks in ``costs``' dtype, both end cells marked.
        path_costs: (B,) costs of those paths, both end cells included.
    """
    if costs.dim() != 3:
        raise ValueError(f"costs must be (B, H, W), got shape {tuple(costs.shape)}")
    if not torch.isfinite(costs).all() or (costs < 0).any():
        raise ValueError("costs must be finite and non-negative")
    c = costs.detach().to(torch.float64)
    dist, predecessor = distances(c)
    return _walk_back(predecessor).to(costs.dtype), dist[:, -1, -1].to(costs.dtype)


def distances(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W) costs -> the cost of the cheapest path from (0, 0) to every cell (both ends included) and each
    cell's predecessor on it (an index into NEIGHBOURS; NO_PREDECESSOR at the start).

    Synchronous relaxation rounds, each on the grids that changed in the previous round only (a grid without
    a strict improvement is at its fixed point).
    """
    b, h, w = c.shape
    dist = torch.full_like(c, float("inf"))
    dist[:, 0, 0] = c[:, 0, 0]
    predecessor = torch.full(c.shape, NO_PREDECESSOR, dtype=torch.int64, device=c.device)
    active = torch.arange(b, device=c.device)
    for _ in range(h * w):  # a shortest path visits each cell at most once: <= H*W rounds
        everyone = len(active) == b
        d, cost = (dist, c) if everyone else (dist[active], c[active])
        best, choice = _neighbour_min(d)
        candidate = best + cost
        better = candidate < d
        changed = better.flatten(1).any(1)
        if everyone:
            dist = torch.where(better, candidate, d)
            predecessor = torch.where(better, choice, predecessor)
        else:
            dist[active] = torch.where(better, candidate, d)
            predecessor[active] = torch.where(better, choice, predecessor[active])
        active = active[changed]
        if not len(active):
            break
    return dist, predecessor


def _neighbour_min(dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per cell, the least distance among its 8 neighbours and which neighbour (index into NEIGHBOURS)."""
    b, h, w = dist.shape
    padded = F.pad(dist, (1, 1, 1, 1), value=float("inf"))
    stacked = torch.stack([padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in NEIGHBOURS])
    return stacked.min(0)


def _walk_back(predecessor: torch.Tensor) -> torch.Tensor:
    """Mark the predecessor chain from the goal to the start of every grid (a tree: it ends at the start)."""
    b, h, w = predecessor.shape
    offsets = torch.tensor(NEIGHBOURS, device=predecessor.device)
    rows = torch.arange(b, device=predecessor.device)
    y = torch.full((b,), h - 1, device=predecessor.device)
    x = torch.full((b,), w - 1, device=predecessor.device)
    paths = torch.zeros(predecessor.shape, dtype=torch.bool, device=predecessor.device)
    paths[rows, y, x] = True
    for _ in range(h * w - 1):
        choice = predecessor[rows, y, x]
        active = choice != NO_PREDECESSOR
        if not active.any():
            return paths
        step = offsets[choice.clamp_min(0)] * active.unsqueeze(1)
        y, x = y + step[:, 0], x + step[:, 1]
        paths[rows, y, x] = True
    if (predecessor[rows, y, x] != NO_PREDECESSOR).any():
        raise RuntimeError("shortest_paths: predecessor chain longer than the grid (a cycle); this is a bug")
    return paths
