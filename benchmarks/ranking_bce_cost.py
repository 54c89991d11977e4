"""What the exact-log BCE of NeuralSort and SoftSort costs (docs/performance.md, "Loss level").

Their loss is the BCE between a row-wise softmax P and the true permutation, computed from the logits with exact
logs (``losses/ranking/permutation.py``), so it stays right where P saturates (a float32 p of 1 - 1e-13 rounds to
1, and ``torch.nn.BCELoss`` would clamp its log(1 - p) to -100). The cheaper alternative without that guarantee
is softmax then ``torch.nn.functional.binary_cross_entropy``. For each loss and n: median time of the loss
gradient and of the mean Hessian (our vmapped double backward, and the per-coordinate loop) with either BCE,
batch 100, methods interleaved in one process, medians after warm-up; and the largest difference of the two
losses, which is where saturation makes them disagree.

    python benchmarks/ranking_bce_cost.py [--reps 30] [--threads 1]
"""

from __future__ import annotations

import torch
from newton_overhead import hessian_loop, hessian_vmapped, interleaved_medians, machine_line, settings

from losses import LOSSES
from losses.ranking.permutation import per_set_bce, true_permutation


def per_sample_losses(loss, values):
    """The loss as the library computes it (exact logs) and as softmax + BCELoss: per-sample callables."""
    q = true_permutation(values).transpose(-2, -1)  # rows of the logits are ranks

    def exact(y):
        return loss(y, values)

    def softmax_then_bce(y):
        return per_set_bce(torch.softmax(loss.rank_logits(y), -1), q)

    return {"exact": exact, "softmax+BCELoss": softmax_then_bce}


def gradient(y, per_sample):
    y = y.clone().requires_grad_(True)
    per_sample(y).mean().backward()


def measure(name: str, n: int, reps: int) -> tuple[dict[str, float], float]:
    torch.manual_seed(0)
    y, values = torch.randn(100, n), torch.randn(100, n)
    losses = per_sample_losses(LOSSES.build(name), values)
    table = {
        f"{what} {bce}": lambda y, method=method, per_sample=per_sample: method(y, per_sample)
        for bce, per_sample in losses.items()
        for what, method in (("gradient", gradient), ("H vmapped", hessian_vmapped), ("H loop", hessian_loop))
    }
    difference = float((losses["exact"](y) - losses["softmax+BCELoss"](y)).abs().max())
    return interleaved_medians(table, y, reps), difference


def main():
    args = settings(__doc__)
    print(machine_line(args))
    print(
        "| loss | n | gradient: exact / softmax+BCELoss | H vmapped: exact / softmax+BCELoss "
        "| H loop ÷ H vmapped: exact / softmax+BCELoss | max loss difference |"
    )
    print("|---|---|---|---|---|---|")
    for name in ("neuralsort", "softsort"):
        for n in (5, 10, 15, 20):
            t, difference = measure(name, n, args.reps)
            ex, sm = "exact", "softmax+BCELoss"
            print(
                f"| {name} | {n} | {t[f'gradient {ex}'] * 1e3:.2f} / {t[f'gradient {sm}'] * 1e3:.2f} "
                f"({t[f'gradient {ex}'] / t[f'gradient {sm}']:.1f}×) "
                f"| {t[f'H vmapped {ex}'] * 1e3:.1f} / {t[f'H vmapped {sm}'] * 1e3:.1f} "
                f"| {t[f'H loop {ex}'] / t[f'H vmapped {ex}']:.2f}× / {t[f'H loop {sm}'] / t[f'H vmapped {sm}']:.2f}× "
                f"| {difference:.2g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
