"""Figure 6's property (appendix H): the empirical-Fisher Newton loss's gradient stays bounded where the ranking
losses' own gradients grow with the spread of the inputs and with the steepness of the relaxation.

Closed forms (derived in ``tuner/report/gradients.py``): for a batch of N per-sample gradients g_i (m entries) with
F = (1/N) sum_i g_i g_i^T, InjectFisher returns the rows ``(F + lam I)^-1 g_i / N``, whose squared Frobenius norm is
``(1/N) sum_k mu_k / (mu_k + lam)^2`` over the eigenvalues mu_k of F, hence at most ``min(N, m) / (4 N lam)``;
for N = 1 the row is ``g / (lam + |g|^2)`` exactly (Sherman-Morrison). The baseline obeys no such bound: each
relaxation depends on the scores through (difference) / τ or β (difference), so with the steepness multiplied by
c its gradient at x is c times the original one at c x, and for NeuralSort and SoftSort the largest gradient over
random sets grows with the spread.
"""

import itertools

import pytest
import torch

from losses import LOSSES, inject_fisher
from tuner.report.gradients import baseline_gradients, fisher_bound

STEEPNESS = {"neuralsort": "tau", "softsort": "tau", "logistic_dsn": "beta", "cauchy_dsn": "beta"}
SPREADS = [1e-3, 0.1, 10.0, 1e3]


def _sets(generator, count, n, spread, regime):
    """Random scores (count, n) at a spread, and true values with ties in some regimes."""
    scores = spread * torch.randn(count, n, generator=generator, dtype=torch.float64)
    if regime == "ties":
        scores = spread * torch.randint(0, 3, (count, n), generator=generator).double()
    elif regime == "sorted":
        scores = scores.sort(dim=1).values
    values = torch.randn(count, n, generator=generator, dtype=torch.float64)
    if regime in ("ties", "value_ties"):
        values = torch.randint(0, 2, (count, n), generator=generator).double()
    return scores, values


def _fisher_rows(loss, scores, values, lam):
    x = scores.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(inject_fisher(x, lam), values).mean(), x)
    return grad


@pytest.mark.parametrize("name", sorted(STEEPNESS))
@pytest.mark.parametrize("lam", [1e-3, 0.1, 10.0])
def test_the_fisher_gradient_is_bounded_and_is_the_closed_form(name, lam):
    loss = LOSSES.build(name)
    generator = torch.Generator().manual_seed(sorted(STEEPNESS).index(name) * 10 + int(lam * 1000))
    checked = 0
    for spread in SPREADS:
        for regime in ("gaussian", "ties", "sorted", "value_ties"):
            for batch in (1, 16):
                scores, values = _sets(generator, batch, 5, spread, regime)
                got = _fisher_rows(loss, scores, values, lam)
                g = baseline_gradients(loss, scores, values)  # rows: grad l_i
                mu = torch.linalg.eigvalsh(g.T @ g / batch)
                exact = (mu.clamp_min(0) / (mu.clamp_min(0) + lam) ** 2).sum() / batch
                assert got.pow(2).sum().item() == pytest.approx(exact.item(), rel=1e-6, abs=1e-12)
                assert got.norm().item() <= fisher_bound(batch, 5, lam) * (1 + 1e-9)
                if batch == 1:
                    closed = g / (lam + g.pow(2).sum())
                    assert torch.allclose(got, closed, rtol=1e-9, atol=1e-15)
                checked += 1
    assert checked == len(SPREADS) * 4 * 2


@pytest.mark.parametrize("name", sorted(STEEPNESS))
def test_a_steeper_relaxation_scales_the_baseline_gradient_but_not_the_fishers_bound(name):
    """grad l_{c-steeper}(x) = c grad l(c x): exact, so the baseline's gradient grows like c without bound."""
    key = STEEPNESS[name]
    default = LOSSES.parameters(name)[key]
    generator = torch.Generator().manual_seed(7)
    scores, values = _sets(generator, 400, 5, 1.0, "gaussian")
    for c in (3.0, 10.0, 100.0):
        steeper = LOSSES.build(name, **{key: default / c if key == "tau" else default * c})
        lhs = baseline_gradients(steeper, scores, values)
        rhs = c * baseline_gradients(LOSSES.build(name), c * scores, values)
        assert torch.allclose(lhs, rhs, rtol=1e-6, atol=1e-9 * c)
        assert _fisher_rows(steeper, scores[:1], values[:1], 0.1).norm() <= fisher_bound(1, 5, 0.1) * (1 + 1e-9)


@pytest.mark.parametrize("name", ["neuralsort", "softsort"])
def test_the_baselines_largest_gradient_grows_with_the_spread_and_the_fishers_does_not_pass_the_bound(name):
    """Over the same 1 000 random sets scaled by a growing spread, the largest baseline gradient grows (and
    saturates: these BCEs are linear in the logits far from a tie), while every Fisher gradient stays under
    1/(2 sqrt(λ)). (The sorting networks' gradients do not grow: they vanish at large spreads, see the README.)"""
    loss = LOSSES.build(name)
    generator = torch.Generator().manual_seed(3)
    unit, values = _sets(generator, 1000, 5, 1.0, "gaussian")
    peaks = []
    for spread in (0.01, 0.1, 1.0, 10.0):
        peaks.append(baseline_gradients(loss, spread * unit, values).norm(dim=1).max().item())
        worst = max(
            _fisher_rows(loss, spread * unit[i : i + 1], values[i : i + 1], 0.1).norm().item() for i in range(40)
        )
        assert worst <= fisher_bound(1, 5, 0.1) * (1 + 1e-9)
    assert all(b > a for a, b in itertools.pairwise(peaks)) and peaks[-1] > 1.4 * peaks[0]
