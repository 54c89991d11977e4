"""What InjectFisher costs on the appendix-G network (paper Table 9): one full-batch training step (both
CvxpyLayers' solves and their backward, the MSE, Adam) with and without InjectFisher on the layers' parameters,
interleaved within each repetition so that the machine's load hits both alike; medians. Also the Fisher
transformation alone: Algorithm 2's backward on a (samples, 420) gradient matrix, the work InjectFisher adds per
layer.

    python benchmarks/cvxpy_fisher_step.py [--reps 5] [--samples 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from losses import inject_fisher
from tasks.cvxpy_relu import data_and_model


def step(model, optimizer, X, Y, lam) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    (model(X, lam) - Y).pow(2).mean().backward()
    optimizer.step()
    return time.perf_counter() - start


def fisher_alone(samples: int, reps: int = 50) -> float:
    """Seconds for one layer's InjectFisher backward on a (samples, 420) gradient (median)."""
    y = torch.randn(samples, 420, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(samples, 420, dtype=torch.float64) / samples
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.autograd.grad(inject_fisher(y, 0.1), y, upstream)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    runs = {}
    for variant, lam in (("baseline", None), ("fisher", 0.1)):
        model, X, Y = data_and_model(1, args.samples)
        runs[variant] = (model, torch.optim.Adam(model.parameters(), lr=1e-2), X, Y, lam)
    times = {variant: [] for variant in runs}
    for rep in range(args.reps + 1):  # the first repetition warms up
        for variant, (model, optimizer, X, Y, lam) in runs.items():
            seconds = step(model, optimizer, X, Y, lam)
            if rep:
                times[variant].append(seconds)
    base, fisher = statistics.median(times["baseline"]), statistics.median(times["fisher"])
    ratios = [f / b for f, b in zip(times["fisher"], times["baseline"])]
    alone = fisher_alone(args.samples)
    print(f"samples {args.samples}, {args.reps} interleaved steps each, torch threads {torch.get_num_threads()}")
    print(
        f"baseline step {base:.3f} s, fisher step {fisher:.3f} s: ratio of medians {fisher / base:.3f}, "
        f"per-repetition ratios {min(ratios):.3f}-{max(ratios):.3f}"
    )
    print(
        f"InjectFisher's backward on ({args.samples}, 420), one layer: {alone * 1e3:.2f} ms "
        f"(two layers per step: {200 * alone / base:.2f} % of the baseline step)"
    )


if __name__ == "__main__":
    main()
