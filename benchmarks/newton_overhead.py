"""Cost of the Newton targets against the plain loss gradient, per ranking loss (issue 2).

For each loss at n in {5, 10} and batch 100: median time of (a) the baseline loss gradient,
(b) the Fisher Newton gradient (inject_fisher), (c) the Hessian Newton target, and the Hessian
computed three ways (our vmapped double backward, a per-coordinate loop, torch.func
vmap(hessian)) to justify the implementation. Ratios are measured in one process, methods
interleaved within each repetition, medians after warm-up.

    python benchmarks/newton_overhead.py [--reps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from losses import LOSSES, inject_fisher, mean_hessian, newton_target, per_sample_gradients

RANKING = ["neuralsort", "softsort", "logistic_dsn", "cauchy_dsn"]


def hessian_vmapped(y, per_sample_loss):
    """Ours: m Hessian-vector products in one vmapped double backward (``mean_hessian``)."""
    y, grad = per_sample_gradients(y, per_sample_loss, create_graph=True)
    return mean_hessian(y, grad)


def hessian_loop(y, per_sample_loss):
    """Per-coordinate double backward: m backward passes over the whole batch."""
    y, grad = per_sample_gradients(y, per_sample_loss, create_graph=True)
    rows = [torch.autograd.grad(grad[:, k].sum(), y, retain_graph=True)[0].mean(0) for k in range(y.shape[1])]
    return torch.stack(rows)


def hessian_func(y, loss, values):
    """torch.func: vmap over the per-sample Hessian of a single set's loss."""
    single = lambda s, v: loss(s.unsqueeze(0), v.unsqueeze(0))[0]
    return torch.func.vmap(torch.func.hessian(single))(y, values).mean(0)


def methods(loss, values):
    per_sample = lambda v: loss(v, values)

    def baseline(y):
        y = y.clone().requires_grad_(True)
        loss(y, values).mean().backward()

    def fisher(y):
        y = y.clone().requires_grad_(True)
        loss(inject_fisher(y, 0.1), values).mean().backward()

    def hessian(y):
        newton_target(y, per_sample, curvature="hessian", lam=0.1)

    def hessian_matrix_vmapped(y):
        hessian_vmapped(y, per_sample)

    def hessian_matrix_loop(y):
        hessian_loop(y, per_sample)

    def hessian_matrix_func(y):
        hessian_func(y, loss, values)

    return {
        "baseline": baseline,
        "fisher": fisher,
        "hessian": hessian,
        "H vmapped": hessian_matrix_vmapped,
        "H loop": hessian_matrix_loop,
        "H torch.func": hessian_matrix_func,
    }


def interleaved_medians(table: dict, y: torch.Tensor, reps: int, warmup: int = 5) -> dict[str, float]:
    """Median seconds of each ``table`` callable on ``y``, the callables interleaved within each repetition."""
    times = {k: [] for k in table}
    for rep in range(warmup + reps):
        for key, fn in table.items():
            start = time.perf_counter()
            fn(y)
            if rep >= warmup:
                times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(n: int, name: str, reps: int) -> dict[str, float]:
    torch.manual_seed(0)
    y, values = torch.randn(100, n), torch.randn(100, n)
    return interleaved_medians(methods(LOSSES.build(name), values), y, reps)


def settings(doc: str) -> argparse.Namespace:
    """``--reps`` and ``--threads`` (set for torch here)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def machine_line(args: argparse.Namespace) -> str:
    """The line every table of these benchmarks starts with."""
    return (
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
        f"batch 100, median of {args.reps} after warm-up; times in ms"
    )


def main():
    args = settings(__doc__)
    print(machine_line(args) + ", ratios to the baseline gradient")
    print("| loss | n | baseline ms | fisher | hessian target | H: vmapped | H: loop | H: torch.func |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (5, 10):
        for name in RANKING:
            t = measure(n, name, args.reps)
            b = t["baseline"]
            print(
                f"| {name} | {n} | {b * 1e3:.2f} | {t['fisher'] / b:.2f}x | {t['hessian'] / b:.2f}x | "
                f"{t['H vmapped'] / b:.2f}x | {t['H loop'] / b:.2f}x | {t['H torch.func'] / b:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
