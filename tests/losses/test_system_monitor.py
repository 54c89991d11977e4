"""The Hessian variant's watch on ``M + lam I``: exact on known matrices, and what it finds on the real losses."""

import pytest
import torch

from losses import LOSSES, make_objective, newton_target_from
from losses.system_monitor import NewtonSystemMonitor


def test_smallest_eigenvalue_and_indefinite_share_over_the_steps_then_reset():
    monitor = NewtonSystemMonitor()
    y, grad = torch.zeros(3, 2), torch.ones(3, 2)
    newton_target_from(y, grad, torch.diag(torch.tensor([-0.3, 2.0])), 0.1, monitor=monitor)  # eigenvalues -0.2, 2.1
    newton_target_from(y, grad, torch.tensor([[1.0, 0.5], [0.5, 1.0]]), 0.1, monitor=monitor)  # 0.6, 1.6
    stats = monitor.take()
    assert stats["newton_min_eigenvalue"] == pytest.approx(-0.2)
    assert stats["newton_indefinite_share"] == 0.5
    assert monitor.take() == {}  # nothing observed since


def test_only_the_hessian_variant_is_watched_and_a_convex_loss_stays_positive_definite():
    mse = lambda y, target: 0.5 * (y - target).pow(2).sum(1)  # Hessian I: M + lam I has eigenvalues 1 + lam
    assert make_objective(mse, "baseline").monitor is None and make_objective(mse, "fisher", 0.1).monitor is None
    objective = make_objective(mse, "hessian", 0.25)
    objective(torch.randn(8, 4, requires_grad=True), torch.randn(8, 4))
    assert objective.monitor.take() == {"newton_min_eigenvalue": pytest.approx(1.25), "newton_indefinite_share": 0.0}


def test_the_cauchy_dsn_hessian_outgrows_the_papers_lambda():
    """At unit-scale scores the Cauchy DSN's (n = 5, beta 10) mean Hessian has an eigenvalue near -0.18: with the
    paper's lam = 0.1 (Table 4) the regularised system is indefinite and the Newton target goes uphill along it;
    lam = 1 makes it positive definite. The monitor makes this visible per trial."""
    torch.manual_seed(0)
    scores, values = torch.randn(100, 5), torch.rand(100, 5)
    loss = LOSSES.build("cauchy_dsn", beta=10)
    small, large = make_objective(loss, "hessian", 0.1), make_objective(loss, "hessian", 1.0)
    small(scores.clone().requires_grad_(True), values)
    large(scores.clone().requires_grad_(True), values)
    at_small, at_large = small.monitor.take(), large.monitor.take()
    assert at_small["newton_indefinite_share"] == 1.0 and at_small["newton_min_eigenvalue"] < -0.05
    assert at_large["newton_indefinite_share"] == 0.0
    assert at_large["newton_min_eigenvalue"] == pytest.approx(at_small["newton_min_eigenvalue"] + 0.9, abs=1e-5)


def test_watching_does_no_linear_algebra_during_the_step(monkeypatch):
    """observe() only keeps the system: 50 Hessian steps call no eigendecomposition (which would synchronise a
    GPU with the host and be charged to time_loss); take() then makes one batched call, and its result equals
    numpy's eigenvalues of each step's system."""
    import numpy as np

    import losses.system_monitor as module

    calls = []
    real = torch.linalg.eigvalsh
    monkeypatch.setattr(
        module.torch.linalg, "eigvalsh", lambda a, *args, **kw: calls.append(a.shape) or real(a, *args, **kw)
    )
    monitor = NewtonSystemMonitor()
    systems = []
    for step in range(50):
        g = torch.Generator().manual_seed(step)
        a = torch.randn(4, 4, generator=g, dtype=torch.float64)
        systems.append(a + a.T)
        newton_target_from(
            torch.zeros(3, 4, dtype=torch.float64),
            torch.ones(3, 4, dtype=torch.float64),
            systems[-1],
            0.1,
            monitor=monitor,
        )
    assert calls == []
    stats = monitor.take()
    assert calls == [(50, 4, 4)]
    expected = np.array([np.linalg.eigvalsh(s.numpy() + 0.1 * np.eye(4)).min() for s in systems])
    assert stats["newton_min_eigenvalue"] == pytest.approx(expected.min(), rel=1e-12)
    assert stats["newton_indefinite_share"] == pytest.approx((expected <= 0).mean())


def test_memory_is_bounded_by_keeping_evenly_spread_steps():
    """Capacity 4 over 10 steps: the buffer fills twice, so steps 0, 4 and 8 are kept (every fourth). System k is
    diag(k - 5, 1): the kept minimum is -5 (step 0) and two of three kept steps are indefinite."""
    monitor = NewtonSystemMonitor(capacity=4)
    for k in range(10):
        monitor.observe(torch.diag(torch.tensor([k - 5.0, 1.0])))
    assert len(monitor._kept) == 3
    stats = monitor.take()
    assert stats == {"newton_min_eigenvalue": -5.0, "newton_indefinite_share": pytest.approx(2 / 3)}
    monitor.observe(torch.eye(2))  # after take(), every step is kept again
    assert monitor.take() == {"newton_min_eigenvalue": 1.0, "newton_indefinite_share": 0.0}
