"""Paper Figure 6 (appendix H): a ranking loss's gradient along one input, against the gradient of its
empirical-Fisher Newton loss, at a small and at a larger spread of the inputs.

The input is one set of n = 5 scores whose true order is 0 < 1 < 2 < 3 < 4: ``x_k = spread * k`` for every k but
one (``x_1``), which is swept over ``spread * [-1.5, 5.5]``, so that it passes every other input while
``x_0, x_2, x_3, x_4`` stay in their correct order (the paper's setting). Each panel draws the n components of a
gradient against ``x_1``: the loss's own ``grad l(x)`` (the baseline), and the gradient that InjectFisher
(Algorithm 2) gives this one sample (a batch of N = 1): ``g (g^T g + lam I)^-1 = g / (lam + |g|^2)``
(Sherman-Morrison). At N = 1 it keeps the baseline's direction and rescales it: a gradient of norm r becomes one of
norm ``r / (lam + r^2)``, at most ``1 / (2 sqrt(lam))`` (at r = sqrt(lam)), and about ``1 / r`` for large r.

Bound for any batch. With the per-sample gradients g_i (rows of N G, Algorithm 2's convention) and the empirical
Fisher F = (1/N) sum_i g_i g_i^T with eigenvalues mu_k, the rows InjectFisher returns are ``(F + lam I)^-1 g_i / N``,
so their squared Frobenius norm is ``(1/N^2) sum_i g_i^T (F + lam I)^-2 g_i = (1/N) tr((F + lam I)^-2 F)
= (1/N) sum_k mu_k / (mu_k + lam)^2 <= rank(F) / (4 N lam)``. The Fisher Newton loss's gradient is therefore
bounded by ``sqrt(min(N, m) / (4 N lam))`` whatever the loss, the spread or the steepness; the baseline's is not
(``fisher_bound``, tested over random inputs in ``tests/losses/test_fisher_bound.py``).

    python -m tuner.report.gradients --loss neuralsort --loss logistic_dsn --out docs/

writes ``figure6_gradients.png`` (rows: small spread, larger spread, the Fisher Newton loss at the larger spread;
one column per loss) and prints the largest gradient norm of each panel.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

N_ITEMS, MOVED = 5, 1
SWEEP = (-1.5, 5.5)  # x_1 / spread: from below the smallest input to above the largest


def sweep(spread: float, points: int = 701, n: int = N_ITEMS, moved: int = MOVED):
    """``(x1, inputs, values)``: the swept coordinate (points,), the inputs (points, n) and their true values."""
    x1 = torch.linspace(SWEEP[0], SWEEP[1], points, dtype=torch.float64) * spread
    inputs = (spread * torch.arange(n, dtype=torch.float64)).repeat(points, 1)
    inputs[:, moved] = x1
    return x1, inputs, torch.arange(n, dtype=torch.float64).repeat(points, 1)


def baseline_gradients(loss, inputs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Row i: grad of the per-sample loss l_i at inputs[i] (rows are independent samples)."""
    x = inputs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(x, values).sum(), x)
    return grad


def fisher_gradients(loss, inputs: torch.Tensor, values: torch.Tensor, lam: float) -> torch.Tensor:
    """Row i: the gradient InjectFisher gives inputs[i] as a batch of one (Algorithm 2 with N = 1)."""
    from losses import inject_fisher

    rows = []
    for x, v in zip(inputs, values):
        x = x.view(1, -1).detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(inject_fisher(x, lam), v.view(1, -1)).mean(), x)
        rows.append(grad)
    return torch.cat(rows)


def fisher_bound(n: int, m: int, lam: float) -> float:
    """``sqrt(min(N, m) / (4 N lam))``: the largest Frobenius norm InjectFisher's (N, m) gradient can have."""
    return math.sqrt(min(n, m) / (4 * n * lam))


def figure(losses: list[str], spreads: tuple[float, float], lam: float, out: Path, points: int = 701) -> dict:
    """Draw the six-panel figure (for two losses) into ``out``; returns the largest gradient norm of each panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from losses import LOSSES

    small, large = spreads
    rows = [
        (f"spread {small:g}", small, False),
        (f"spread {large:g}", large, False),
        (f"NL Fisher (λ = {lam:g}), spread {large:g}", large, True),
    ]
    fig, axes = plt.subplots(len(rows), len(losses), figsize=(4.6 * len(losses), 3.0 * len(rows)), squeeze=False)
    peaks = {}
    for column, name in enumerate(losses):
        loss = LOSSES.build(name)
        if getattr(loss, "task_kind", None) != "ranking":
            raise ValueError(f"loss {name!r} is not a ranking loss (the figure sweeps one of {N_ITEMS} scores)")
        for row, (title, spread, fisher) in enumerate(rows):
            x1, inputs, values = sweep(spread, points)
            grad = fisher_gradients(loss, inputs, values, lam) if fisher else baseline_gradients(loss, inputs, values)
            peaks[(name, spread, "fisher" if fisher else "baseline")] = grad.norm(dim=1).max().item()
            ax = axes[row][column]
            for k in range(N_ITEMS):
                ax.plot(x1 / spread, grad[:, k], lw=1, label=f"∂ℓ/∂x{k}")
            for k in range(N_ITEMS):
                if k != MOVED:
                    ax.axvline(k, color="0.85", lw=0.8, zorder=0)
            if fisher:
                bound = fisher_bound(1, N_ITEMS, lam)
                ax.axhspan(-bound, bound, color="0.95", zorder=-1, label="|·| ≤ 1/(2√λ)")
            ax.set_title(f"({chr(97 + 2 * row + column)}) {name}: {title}", fontsize=9)
            ax.set_xlabel(f"x{MOVED} / spread")
    axes[0][0].legend(fontsize=7, loc="best")
    axes[-1][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Gradient along x{MOVED} (n = {N_ITEMS}; other inputs at spread × (0, 2, 3, 4))", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return peaks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tuner.report.gradients",
        description=__doc__.split("\n\n")[0],
        epilog="example: python -m tuner.report.gradients --loss neuralsort --loss logistic_dsn --out docs/",
    )
    parser.add_argument(
        "--loss",
        action="append",
        help="a ranking loss of losses.LOSSES (repeatable; default: neuralsort and logistic_dsn, the paper's)",
    )
    parser.add_argument(
        "--spread", action="append", type=float, help="the small and the larger spread (twice; default 0.3 and 3)"
    )
    parser.add_argument(
        "--lam",
        type=float,
        default=0.1,
        help="λ of the Fisher Newton loss (default 0.1, the paper's Table 4 value for both losses at n = 5)",
    )
    parser.add_argument("--points", type=int, default=701, help="points along the sweep (default 701)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for figure6_gradients.png")
    args = parser.parse_args(argv)
    spreads = tuple(args.spread or (0.3, 3.0))
    if len(spreads) != 2 or not all(s > 0 for s in spreads):
        parser.error("give --spread twice, two positive numbers (the small and the larger spread)")
    if not (args.lam > 0 and math.isfinite(args.lam)):
        parser.error("--lam must be a positive number")
    out = args.out / "figure6_gradients.png"
    peaks = figure(args.loss or ["neuralsort", "logistic_dsn"], spreads, args.lam, out, args.points)
    print(f"wrote {out}")
    print(f"largest gradient norm per panel (the Fisher bound at N = 1 is {fisher_bound(1, N_ITEMS, args.lam):.3f}):")
    for (name, spread, kind), peak in peaks.items():
        print(f"  {name:14s} spread {spread:<6g} {kind:9s} {peak:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
