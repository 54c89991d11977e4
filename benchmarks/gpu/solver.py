"""The exact shortest-path solver on the device against the project's CPU solver: equal paths, and paths/s.

The device solver is ``solve_by_relaxation`` (what ``shortest_paths`` runs off the CPU); the CPU solver is
``shortest_paths`` on CPU tensors (the compiled Dijkstra of ``losses/shortest_path/dijkstra.py``), timed as a GPU
trial would use it: costs copied to the host, solved, paths copied back. On a CPU-only run both sides run on the
CPU, so the comparison of paths still holds and the speeds compare the two algorithms.
"""

from __future__ import annotations

import statistics
import time

import torch

from losses import shortest_paths
from losses.shortest_path.solver import solve_by_relaxation

from .budget import Section

TERRAIN = torch.tensor([0.8, 1.2, 5.3, 7.7, 9.2], dtype=torch.float64)  # the generated maps' cell costs


def draw_costs(kind: str, grids: int, seed: int) -> torch.Tensor:
    """(grids, 12, 12) float64 costs: ``terrain`` (five values: many equally short paths), ``perturbed`` (terrain +
    N(0, 0.1), what the stochastic losses solve) or ``zeros`` (noise clamped at 0: about half the cells free)."""
    generator = torch.Generator().manual_seed(seed)
    terrain = TERRAIN[torch.randint(5, (grids, 12, 12), generator=generator)]
    noise = 0.1 * torch.randn(grids, 12, 12, generator=generator, dtype=torch.float64)
    return {"terrain": terrain, "perturbed": (terrain + noise).clamp_min(0), "zeros": noise.clamp_min(0)}[kind]


def median_seconds(fn, reps: int) -> float:
    """Median wall time of ``fn()`` after one warm-up call (which also compiles the CPU kernel)."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(costs: torch.Tensor, device: torch.device, reps: int) -> dict:
    """Paths and path costs of both solvers, compared exactly, and each one's paths/s."""
    on_device = costs.to(device)
    cpu_paths, cpu_costs = shortest_paths(costs)
    device_paths, device_costs = solve_by_relaxation(on_device)
    differing = int((device_paths.cpu() != cpu_paths).flatten(1).any(1).sum())

    def device_solve():
        solve_by_relaxation(on_device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def cpu_route():
        paths, _ = shortest_paths(on_device.cpu())
        paths.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    device_rate = len(costs) / median_seconds(device_solve, reps)
    cpu_rate = len(costs) / median_seconds(cpu_route, reps)
    return {
        "grids": len(costs),
        "paths_equal": differing == 0,
        "grids_differing": differing,
        "costs_equal": bool(torch.equal(device_costs.cpu(), cpu_costs)),
        "device_paths_per_s": device_rate,
        "cpu_paths_per_s": cpu_rate,
        "faster": "device" if device_rate > cpu_rate else "cpu",
    }


def solver(section: Section, size: dict, device: torch.device) -> None:
    """Each grid count x cost kind; fails (after measuring all) if any path or path cost differs."""
    rows = section.figures = []
    for grids in size["grids"]:
        for kind in ("terrain", "perturbed", "zeros"):
            rows.append({"costs": kind, **compare(draw_costs(kind, grids, seed=grids), device, size["solver_reps"])})
    unequal = [f"{r['grids']} {r['costs']}" for r in rows if not (r["paths_equal"] and r["costs_equal"])]
    if unequal:
        raise AssertionError(f"the device and CPU solvers disagree on: {', '.join(unequal)}")
