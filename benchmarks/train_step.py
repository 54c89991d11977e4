"""One ranking training step per loss x variant, as ratios to the baseline step (issue 3, paper Table 6).

A step is: model forward, loss (+ Newton step), backward, Adam. Variants are interleaved within
each repetition (each with its own model and optimizer from the same init), so drift on the
machine hits all of them alike; medians after warm-up. Also reports the data pipeline's images/s
against the model's (forward + backward), which must stay far apart.

    python benchmarks/train_step.py [--reps 20] [--n 5 10] [--batch 100]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch

from losses import LOSSES, make_objective
from tasks.mnist_digits import load_digits
from tasks.multi_digit import MultiDigitSets
from tasks.ranking import RankingCNN

RANKING = ["neuralsort", "softsort", "logistic_dsn", "cauchy_dsn"]
LAM = {"hessian": 0.1, "fisher": 0.1}


def step_fn(model, optimizer, objective):
    def step(images, values):
        t0 = time.perf_counter()
        scores = model.score(images)
        y = scores.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(y, values), y)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        scores.backward(grad)
        optimizer.step()
        return time.perf_counter() - t0, t1 - t0

    return step


def measure(name, n, batch, reps, warmup, pool):
    torch.manual_seed(0)
    base = RankingCNN()
    steps = {}
    for variant in ("baseline", "fisher", "hessian"):
        model = copy.deepcopy(base)
        steps[variant] = step_fn(
            model,
            torch.optim.Adam(model.parameters(), 1e-3),
            make_objective(LOSSES.build(name), variant, LAM.get(variant)),
        )
    generator = torch.Generator().manual_seed(0)
    times = {v: [] for v in steps}
    for rep in range(warmup + reps):
        images, values = pool.draw(batch, n, generator)
        for variant, step in steps.items():
            total, _ = step(images, values)
            if rep >= warmup:
                times[variant].append(total)
    return {v: statistics.median(t) for v, t in times.items()}


def data_vs_model(pool, n, batch, reps=10):
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(reps):
        images, values = pool.draw(batch, n, generator)
    data = reps * batch * n / (time.perf_counter() - start)
    model = RankingCNN()
    start = time.perf_counter()
    for _ in range(3):
        model.score(images).sum().backward()
    return data, 3 * batch * n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--n", type=int, nargs="+", default=[5, 10])
    args = parser.parse_args()
    digits = load_digits(None)
    pool = MultiDigitSets(*digits.train, torch.device("cpu"))
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, "
        f"batch {args.batch} sets, median of {args.reps} steps after {args.warmup} warm-up, variants interleaved"
    )
    for n in args.n:
        data, model = data_vs_model(pool, n, args.batch)
        print(f"# n={n}: data pipeline {data:,.0f} images/s vs model forward+backward {model:,.0f} images/s")
    print("| loss | n | baseline step (s) | fisher / baseline | hessian / baseline |")
    print("|---|---|---|---|---|")
    for n in args.n:
        for name in RANKING:
            t = measure(name, n, args.batch, args.reps, args.warmup, pool)
            print(
                f"| {name} | {n} | {t['baseline']:.3f} | {t['fisher'] / t['baseline']:.3f}x | "
                f"{t['hessian'] / t['baseline']:.3f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
