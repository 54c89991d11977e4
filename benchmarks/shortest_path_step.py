"""One shortest-path training step per loss family x variant x samples, as ratios (issue 5, paper Table 8).

A step: CombResnet18 forward on a batch of 70 maps, the loss family's estimates (+ Newton step), backward,
Adam. Ratios to that family's baseline at the same sample count, and of 30 samples to 3 samples (the paper's
Table 8 has 30 samples at ~3.5x the 3-sample step). Variants interleaved within each repetition; medians.

    python benchmarks/shortest_path_step.py [--reps 10] [--families ss_loss po_fy ss_algorithm]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import numpy as np
import torch

from losses import LOSSES, make_objective
from tasks.warcraft_data import cached_generated, load_warcraft
from tasks.warcraft_model import CombResnet18, channel_stats

LAM = {
    "ss_loss": {"hessian": 1000.0, "fisher": 0.1},
    "po_fy": {"hessian": 1000.0, "fisher": 1000.0},
    "ss_algorithm": {"fisher": 1000.0},
    "bellman_ford": {"fisher": 1000.0},
}


def step_fn(model, objective):
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step(maps, target):
        start = time.perf_counter()
        costs = model(maps).flatten(1)
        y = costs.detach().double().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(y, target), y)
        optimizer.zero_grad(set_to_none=True)
        costs.backward(grad.float())
        optimizer.step()
        return time.perf_counter() - start

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--families", nargs="+", default=["bellman_ford", "ss_loss", "po_fy", "ss_algorithm"])
    args = parser.parse_args()
    data = load_warcraft(cached_generated({"train": 700, "val": 10, "test": 10}, seed=0))["train"]
    maps = torch.from_numpy(np.array(data["maps"]))
    paths = torch.from_numpy(np.array(data["paths"], dtype=np.float64)).flatten(1)
    base = CombResnet18(*channel_stats(maps))
    print(
        f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, batch 70 maps, "
        f"median of {args.reps} steps after {args.warmup} warm-up, variants interleaved"
    )
    print("| family | samples | baseline step (s) | hessian / baseline | fisher / baseline |")
    print("|---|---|---|---|---|")
    for family in args.families:
        baseline_by_samples = {}
        for samples in (None,) if family == "bellman_ford" else (3, 10, 30):
            loss = LOSSES.build(family) if samples is None else LOSSES.build(family, samples=samples)
            steps = {
                v: step_fn(copy.deepcopy(base), make_objective(loss, v, LAM[family].get(v))) for v in loss.variants
            }
            times = {v: [] for v in steps}
            generator = torch.Generator().manual_seed(samples or 0)
            for rep in range(args.warmup + args.reps):
                idx = torch.randint(len(maps), (70,), generator=generator)
                for variant, step in steps.items():
                    elapsed = step(maps[idx], paths[idx])
                    if rep >= args.warmup:
                        times[variant].append(elapsed)
            t = {v: statistics.median(x) for v, x in times.items()}
            baseline_by_samples[samples] = t["baseline"]
            ratio = lambda v: f"{t[v] / t['baseline']:.3f}x" if v in t else "—"
            print(
                f"| {family} | {samples or '—'} | {t['baseline']:.3f} | {ratio('hessian')} | {ratio('fisher')} |",
                flush=True,
            )
        if 30 in baseline_by_samples:
            print(f"| {family} | 30 vs 3 | {baseline_by_samples[30] / baseline_by_samples[3]:.2f}x | | |", flush=True)


if __name__ == "__main__":
    main()
