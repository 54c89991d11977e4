"""Exact shortest paths on grids with vertex costs (the Warcraft benchmark's solver, SPEC 3 and 5).

Paths go from the top-left to the bottom-right cell over the 8-neighbourhood; a path's cost is the
sum of the costs of the cells it visits, both end cells included; a path is a 0/1 mask. The solver is
batched: the stochastic losses call it on (batch x samples) grids at every training step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .grid import NEIGHBOURS

NO_PREDECESSOR = -1


def shortest_paths(costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shortest (0,0) -> (H-1,W-1) paths for (B, H, W) non-negative vertex costs (zeros and ties included).

    On the CPU a compiled Dijkstra per grid (``dijkstra``); on other devices a min-plus relaxation of all
    grids at once (``solve_by_relaxation``). Both return the same paths, bit for bit: distances are computed in
    float64 and are the same least left-to-right sum over paths either way, and ``canonical_path`` picks among
    equally short paths by a rule of the distances alone.

    Returns:
        paths: (B, H, W) 0/1 masks in ``costs``' dtype, both end cells marked.
        path_costs: (B,) costs of those paths, both end cells included.
    """
    if costs.dim() != 3:
        raise ValueError(f"costs must be (B, H, W), got shape {tuple(costs.shape)}")
    if not torch.isfinite(costs).all() or (costs < 0).any():
        raise ValueError("costs must be finite and non-negative")
    c = costs.detach().to(torch.float64)
    if c.device.type == "cpu":
        from .dijkstra import solve_grids  # numba, loaded on the first CPU solve only

        paths, path_costs = solve_grids(c.numpy())
        return torch.from_numpy(paths).to(costs.dtype), torch.from_numpy(path_costs).to(costs.dtype)
    return solve_by_relaxation(costs)


def solve_by_relaxation(costs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``shortest_paths`` with torch operations only (any device): ``distances``, then ``canonical_path``."""
    c = costs.detach().to(torch.float64)
    dist = distances(c)
    return canonical_path(c, dist).to(costs.dtype), dist[:, -1, -1].to(costs.dtype)


def distances(c: torch.Tensor) -> torch.Tensor:
    """(B, H, W) costs -> the cost of the cheapest path from (0, 0) to every cell, both ends included.

    Synchronous relaxation rounds, each on the grids that changed in the previous round only (a grid without
    a strict improvement is at its fixed point). After k rounds a cell holds the least left-to-right float sum
    over paths of at most k moves (rounding is monotone), so the result is the least such sum over all paths:
    what Dijkstra computes too.
    """
    b, h, w = c.shape
    dist = torch.full_like(c, float("inf"))
    dist[:, 0, 0] = c[:, 0, 0]
    active = torch.arange(b, device=c.device)
    for _ in range(h * w):  # a shortest path visits each cell at most once: <= H*W rounds
        everyone = len(active) == b
        d, cost = (dist, c) if everyone else (dist[active], c[active])
        candidate = _shifted(d, float("inf")).amin(0) + cost
        better = candidate < d
        changed = better.flatten(1).any(1)
        if everyone:
            dist = torch.where(better, candidate, d)
        else:
            dist[active] = torch.where(better, candidate, d)
        active = active[changed]
        if not len(active):
            break
    return dist


def canonical_path(c: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """The path that ``shortest_paths`` returns, chosen from the distances alone.

    A move u -> v is *tight* when ``dist[u] + c[v] == dist[v]`` exactly; every cell but the start has a tight
    neighbour (the one it was reached from), and a walk back along tight moves costs exactly ``dist`` (the same
    additions in the same order). Walking back through any tight neighbour can cycle where zero-cost cells touch
    (equal distances), so each cell also gets ``hops``, the fewest cells from the start over tight moves (a
    breadth-first search), and the walk goes to the first neighbour, in NEIGHBOURS order, that is tight and one
    hop closer: hops fall by one per move, so it reaches the start, and the rule depends on nothing but the
    distances (so the CPU and GPU solvers agree).
    """
    b, h, w = c.shape
    big = h * w + 1  # more hops than any path has
    neighbour_dist = _shifted(dist, float("inf"))  # (8, B, H, W): the distance of each cell's k-th neighbour
    tight = neighbour_dist + c == dist
    hops = torch.full((b, h, w), big, dtype=torch.int64, device=c.device)
    hops[:, 0, 0] = 0
    for _ in range(h * w):
        reached = torch.where(tight, _shifted(hops, big) + 1, big).amin(0)
        updated = torch.minimum(hops, reached)
        if torch.equal(updated, hops):
            break
        hops = updated
    closer = tight & (_shifted(hops, big) == (hops - 1))
    predecessor = torch.where(closer.any(0), closer.int().argmax(0), NO_PREDECESSOR)  # first such neighbour
    predecessor[:, 0, 0] = NO_PREDECESSOR
    return _walk_back(predecessor)


def _shifted(values: torch.Tensor, fill) -> torch.Tensor:
    """(B, H, W) -> (8, B, H, W): entry k holds each cell's neighbour NEIGHBOURS[k] (``fill`` off the grid)."""
    b, h, w = values.shape
    padded = F.pad(values, (1, 1, 1, 1), value=fill)
    return torch.stack([padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in NEIGHBOURS])


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
