"""Throughput of the grid solver vs scipy's Dijkstra called per graph (issues 5 and 14).

12 x 12 Warcraft-like grids (the five terrain costs), batches of 70 x {1, 3, 10, 30} grids (a training
batch times the stochastic losses' sample counts). Paths/s on one CPU thread, median of repeated runs after
warm-up, both in this process: ``shortest_paths`` (compiled Dijkstra on the CPU), the torch relaxation it uses
on GPUs (``solve_by_relaxation``, here on the CPU), and scipy per graph.

    python benchmarks/shortest_path_solver.py
"""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from losses import shortest_paths
from losses.shortest_path.grid import NEIGHBOURS
from losses.shortest_path.solver import solve_by_relaxation

TERRAIN = torch.tensor([0.8, 1.2, 5.3, 7.7, 9.2])


def grid_edges(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge lists of the 8-neighbourhood grid, built once (so scipy's timing is the solve, not Python loops)."""
    rows, cols = [], []
    for y in range(h):
        for x in range(w):
            for dy, dx in NEIGHBOURS:
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    rows.append(y * w + x)
                    cols.append((y + dy) * w + x + dx)
    return np.array(rows), np.array(cols)


EDGES = grid_edges(12, 12)


def scipy_solve(costs: np.ndarray) -> None:
    """One graph: edge weight = cost of the cell entered; Dijkstra with predecessors (for the path)."""
    rows, cols = EDGES
    graph = csr_matrix((costs.reshape(-1)[cols], (rows, cols)), shape=(costs.size, costs.size))
    dijkstra(graph, indices=0, return_predecessors=True)


def timed(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    torch.set_num_threads(1)
    print(f"# {platform.machine()}, 1 thread, torch {torch.__version__}; paths/s (median)")
    print(
        "| grids per call | shortest_paths (CPU: compiled Dijkstra) | torch relaxation (the GPU path), on the CPU "
        "| scipy dijkstra per graph | speed-up over scipy |"
    )
    print("|---|---|---|---|---|")
    for samples in (1, 3, 10, 30):
        costs = TERRAIN[torch.randint(5, (70 * samples, 12, 12), generator=torch.Generator().manual_seed(samples))]
        ours = len(costs) / timed(lambda: shortest_paths(costs), 7)
        relaxation = len(costs) / timed(lambda: solve_by_relaxation(costs), 3)
        subset = costs[:70].numpy()
        theirs = len(subset) / timed(lambda: [scipy_solve(c) for c in subset], 5)
        print(f"| {len(costs)} | {ours:,.0f} | {relaxation:,.0f} | {theirs:,.0f} | {ours / theirs:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
