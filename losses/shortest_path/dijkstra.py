"""The shortest-path solver on the CPU: Dijkstra per grid, compiled (numba), one thread.

Same result as ``solver.solve_by_relaxation`` (the torch solver that runs on GPUs), bit for bit:
both compute the same float64 distances (the least sum, added left to right along the path, over all paths), and
both pick the path from those distances by the same rule (``solver.canonical_path``'s docstring).

numba is imported and the kernel compiled (or loaded from numba's cache) on the first call, so a process that
never solves a grid (a ranking trial, the tuner's driver) does not pay ~100 MB and a second for it.
"""

from __future__ import annotations

import functools

import numpy as np

from .grid import NEIGHBOURS

_MOVES = np.array(NEIGHBOURS, dtype=np.int64)


def solve_grids(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, W) float64 non-negative costs -> (B, H, W) uint8 path masks and (B,) path costs."""
    costs = np.ascontiguousarray(costs, dtype=np.float64)
    paths = np.zeros(costs.shape, dtype=np.uint8)
    path_costs = np.empty(costs.shape[0], dtype=np.float64)
    _kernel()(costs, _MOVES, paths, path_costs)
    return paths, path_costs


@functools.lru_cache(maxsize=1)
def _kernel():
    from numba import njit

    return njit(cache=True, nogil=True)(_solve)


def _solve(costs, moves, paths, path_costs):  # pragma: no cover (compiled by _kernel; tested through solve_grids)
    b_count, h, w = costs.shape
    n = h * w
    dist = np.empty(n)
    hops = np.empty(n, dtype=np.int64)
    done = np.empty(n, dtype=np.bool_)
    heap_key = np.empty(8 * n + 1)
    heap_node = np.empty(8 * n + 1, dtype=np.int64)
    queue = np.empty(n, dtype=np.int64)
    for b in range(b_count):
        c = costs[b]
        # Dijkstra with a binary heap (stale entries skipped when popped)
        dist[:] = np.inf
        done[:] = False
        dist[0] = c[0, 0]
        heap_key[0], heap_node[0], size = dist[0], 0, 1
        while size:
            key, v = heap_key[0], heap_node[0]
            size -= 1
            last_key, last_node, i = heap_key[size], heap_node[size], 0
            while True:  # sift the last entry down from the root
                child = 2 * i + 1
                if child >= size:
                    break
                if child + 1 < size and heap_key[child + 1] < heap_key[child]:
                    child += 1
                if heap_key[child] >= last_key:
                    break
                heap_key[i], heap_node[i] = heap_key[child], heap_node[child]
                i = child
            if size:
                heap_key[i], heap_node[i] = last_key, last_node
            if done[v]:
                continue
            done[v] = True
            vy, vx = v // w, v % w
            for k in range(8):
                uy, ux = vy + moves[k, 0], vx + moves[k, 1]
                if 0 <= uy < h and 0 <= ux < w:
                    u = uy * w + ux
                    candidate = key + c[uy, ux]
                    if not done[u] and candidate < dist[u]:
                        dist[u] = candidate
                        j = size  # sift up
                        size += 1
                        while j > 0 and heap_key[(j - 1) // 2] > candidate:
                            heap_key[j], heap_node[j] = heap_key[(j - 1) // 2], heap_node[(j - 1) // 2]
                            j = (j - 1) // 2
                        heap_key[j], heap_node[j] = candidate, u
        # fewest cells from the start over tight moves (dist[v] + c[u] == dist[u]): breadth-first
        hops[:] = -1
        hops[0], queue[0], head, tail = 0, 0, 0, 1
        while head < tail:
            v = queue[head]
            head += 1
            vy, vx = v // w, v % w
            for k in range(8):
                uy, ux = vy + moves[k, 0], vx + moves[k, 1]
                if 0 <= uy < h and 0 <= ux < w:
                    u = uy * w + ux
                    if hops[u] < 0 and dist[v] + c[uy, ux] == dist[u]:
                        hops[u] = hops[v] + 1
                        queue[tail] = u
                        tail += 1
        # walk back from the goal: each cell's first neighbour (NEIGHBOURS order) that is tight and one hop closer
        v = n - 1
        paths[b, h - 1, w - 1] = 1
        while v != 0:
            vy, vx = v // w, v % w
            for k in range(8):
                uy, ux = vy + moves[k, 0], vx + moves[k, 1]
                if 0 <= uy < h and 0 <= ux < w:
                    u = uy * w + ux
                    if hops[u] == hops[v] - 1 and dist[u] + c[vy, vx] == dist[v]:
                        break
            v = u
            paths[b, uy, ux] = 1
        path_costs[b] = dist[n - 1]
