"""The four ranking losses of Table 1: closed forms, orientation against torch.argsort, gradients, and the BCE
against independent references (``torch.nn.BCELoss`` on ``diffsort``'s own network, softplus closed forms) from
calm to fully saturated relaxations."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffsort import DiffSortNet

from losses import LOSSES, make_objective, ranking_accuracy, true_permutation

RANKING = ["neuralsort", "softsort", "logistic_dsn", "cauchy_dsn"]
SHARP = {
    "neuralsort": {"tau": 1e-3},
    "softsort": {"tau": 1e-3},
    "logistic_dsn": {"beta": 1e4},
    "cauchy_dsn": {"beta": 1e6},
}


def test_registry_holds_the_four_ranking_losses():
    assert set(RANKING) <= set(LOSSES.names())


def test_true_permutation_orientation_and_stable_ties():
    """values (3, 1, 2, 1): ascending ranks (3, 0, 2, 1) with the tie broken by position."""
    q = true_permutation(torch.tensor([[3.0, 1.0, 2.0, 1.0]]))[0]
    assert q.argmax(1).tolist() == [3, 0, 2, 1]
    assert torch.equal(q.sum(0), torch.ones(4)) and torch.equal(q.sum(1), torch.ones(4))


@pytest.mark.parametrize("name", RANKING)
@pytest.mark.parametrize("n", [5, 10])
def test_sharp_relaxation_gives_the_argsort_permutation(name, n):
    """With well-separated scores and a sharp temperature each relaxed P is the hard matrix of argsort."""
    torch.manual_seed(n)
    scores = torch.randperm(n * 4).float().view(4, n) * 3.0
    p = LOSSES.build(name, **SHARP[name]).permutation(scores)
    ranks = torch.argsort(torch.argsort(scores, dim=-1), dim=-1)
    assert torch.equal(p.argmax(-1), ranks)
    torch.testing.assert_close(p, true_permutation(scores), rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "name, cdf",
    [
        ("neuralsort", lambda d, k: torch.sigmoid(k * d)),
        ("softsort", lambda d, k: torch.sigmoid(k * d)),
        ("logistic_dsn", lambda d, k: torch.sigmoid(k * d)),
        ("cauchy_dsn", lambda d, k: torch.atan(k * d) / math.pi + 0.5),
    ],
)
def test_two_element_loss_in_closed_form(name, cdf):
    """n = 2, values (0, 1): P = [[a, 1-a], [1-a, a]] with a = F(k (s2 - s1)), so the mean BCE over the
    four entries is -log a. NeuralSort: row 1 of neuralsort(-s) is softmax(-s / tau) -> a = sigmoid((s2-s1)/tau);
    SoftSort gives the same a; a single DSN comparator swaps with probability F(beta (s2 - s1))."""
    k = 2.5
    params = {"tau": 1 / k} if "sort" in name and "dsn" not in name else {"beta": k}
    s = torch.tensor([[0.3, -0.1], [-1.0, 0.4], [0.2, 0.2]], dtype=torch.float64)
    values = torch.tensor([[0.0, 1.0]] * 3, dtype=torch.float64)
    expected = -torch.log(cdf(s[:, 1] - s[:, 0], k))
    torch.testing.assert_close(LOSSES.build(name, **params)(s, values), expected)


@pytest.mark.parametrize("name", RANKING)
def test_gradients_match_finite_differences(name):
    """First and second derivatives against central differences, away from saturation (P entries of
    ~1e-16 lose their digits to cancellation inside the sorting network, which breaks finite differences)."""
    torch.manual_seed(0)
    s = (0.1 * torch.randn(3, 5, dtype=torch.float64)).requires_grad_(True)
    values = torch.randn(3, 5, dtype=torch.float64)
    loss = LOSSES.build(name)
    assert torch.autograd.gradcheck(lambda v: loss(v, values), (s,))
    assert torch.autograd.gradgradcheck(lambda v: loss(v, values), (s,))


@pytest.mark.parametrize("name", RANKING)
@pytest.mark.parametrize("variant", ["baseline", "hessian", "fisher"])
def test_contract_over_the_registry(name, variant):
    """Every loss x variant: finite value, gradient of the output's shape, same seed -> same value."""

    def run():
        torch.manual_seed(11)
        y = torch.randn(20, 5, requires_grad=True)
        value = make_objective(LOSSES.build(name), variant, 0.1)(y, torch.randn(20, 5))
        value.backward()
        return value.detach(), y.grad

    (v1, g1), (v2, g2) = run(), run()
    assert torch.isfinite(v1) and g1.shape == (20, 5) and torch.isfinite(g1).all() and g1.abs().sum() > 0
    assert torch.equal(v1, v2) and torch.equal(g1, g2)


def test_ranking_accuracy_counts_exact_and_elementwise():
    """Set 1 fully right; set 2 has two of four elements swapped: exact 1/2, element-wise 6/8."""
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    scores = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.2, 0.1, 0.3, 0.4]])
    assert ranking_accuracy(scores, values) == (0.5, 0.75)


@pytest.mark.parametrize("name", RANKING)
@pytest.mark.parametrize("n", [5, 10])
def test_hessian_target_is_finite_in_float32_at_paper_sizes(name, n):
    """Batch 100 of standard-normal scores, paper temperatures: the Newton target must exist in float32."""
    from losses import newton_target

    torch.manual_seed(0)
    y, values = torch.randn(100, n), torch.randn(100, n)
    loss = LOSSES.build(name)
    z = newton_target(y, lambda v: loss(v, values), curvature="hessian", lam=0.1)
    assert torch.isfinite(z).all()


def diffsort_bce(name: str, scores: torch.Tensor, values: torch.Tensor, beta: float) -> torch.Tensor:
    """What diffsort's experiments compute: ``DiffSortNet`` (odd-even) and ``torch.nn.BCELoss`` against
    ``one_hot(argsort(values)).transpose(-2, -1)``, per set (mean over the n x n entries)."""
    n = scores.shape[-1]
    net = DiffSortNet("odd_even", n, steepness=beta, distribution=name.removesuffix("_dsn"))
    _, p = net(scores)
    q = F.one_hot(torch.argsort(values, dim=-1, stable=True), n).transpose(-2, -1).to(scores.dtype)
    return torch.nn.BCELoss(reduction="none")(p, q).mean((-2, -1))


@pytest.mark.parametrize("name, beta", [("logistic_dsn", 10.0), ("cauchy_dsn", 10.0), ("cauchy_dsn", 100.0)])
@pytest.mark.parametrize("spread", [0.05, 1.0, 30.0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sorting_network_bce_is_diffsorts_with_torch_bceloss(name, beta, spread, dtype):
    """Values and gradients equal diffsort + torch.nn.BCELoss at calm (0.05), typical (1) and saturating (30)
    score scales, n = 5 and 10, in both precisions."""
    for n in (5, 10):
        g = torch.Generator().manual_seed(n)
        scores = (spread * torch.randn(16, n, generator=g, dtype=dtype)).requires_grad_(True)
        values = torch.randn(16, n, generator=g, dtype=dtype)
        ours = LOSSES.build(name, beta=beta)(scores, values)
        reference = diffsort_bce(name, scores, values, beta)
        torch.testing.assert_close(ours, reference)
        (g_ours,) = torch.autograd.grad(ours.sum(), scores)
        (g_ref,) = torch.autograd.grad(reference.sum(), scores)
        torch.testing.assert_close(g_ours, g_ref)


def test_saturated_wrong_pair_of_a_logistic_dsn_keeps_bcelosss_gradient():
    """The audit's case: beta 10, scores (3, 0), values (0, 1), float64. The swap probability is
    sigmoid(-30) = 9.4e-14; torch.nn.BCELoss gives mean -log(9.4e-14) = 30.0 and a gradient of 4 entries x
    (1/4) x beta p (1 - p) / max(p (1 - p), 1e-12) = +-0.94; a floor at 1e-12 gave 27.63 and 0."""
    scores = torch.tensor([[3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    values = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    loss = LOSSES.build("logistic_dsn", beta=10.0)(scores, values)
    (grad,) = torch.autograd.grad(loss.sum(), scores)
    assert loss.item() == pytest.approx(30.0, abs=1e-3)
    expected = 10 * torch.sigmoid(torch.tensor(-30.0, dtype=torch.float64)) / 1e-12
    torch.testing.assert_close(grad, torch.stack([expected, -expected]).view(1, 2), rtol=1e-6, atol=0)
    assert grad[0, 0].item() == pytest.approx(0.94, abs=0.01)


@pytest.mark.parametrize("name", ["neuralsort", "softsort"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("margin", [0.3, 3.0, 30.0, 1e3])
def test_softmax_relaxations_keep_the_exact_gradient_at_any_margin(name, dtype, margin):
    """n = 2, values (0, 1), a pair ranked wrongly (s1 - s2 = margin) or rightly (-margin): P's entries are
    sigmoid(+-(s2 - s1) / tau), so the mean BCE is -log sigmoid((s2 - s1) / tau) = softplus((s1 - s2) / tau)
    exactly, whatever the margin (torch's softplus is the reference). At the paper's tau = 0.1 and margin 3 the
    wrong pair's gradient is 1/tau = 10; a floor at 1e-12 on p made it 0."""
    tau = {"neuralsort": 1.0, "softsort": 0.1}[name]
    scores = torch.tensor([[margin, 0.0], [0.0, margin]], dtype=dtype, requires_grad=True)
    values = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=dtype)
    loss = LOSSES.build(name, tau=tau)(scores, values)
    (grad,) = torch.autograd.grad(loss.sum(), scores)
    reference_scores = scores.detach().clone().requires_grad_(True)
    reference = F.softplus((reference_scores[:, 0] - reference_scores[:, 1]) / tau)
    (reference_grad,) = torch.autograd.grad(reference.sum(), reference_scores)
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, reference_grad)
    if margin / tau >= 30:
        assert abs(grad[0, 0].item()) == pytest.approx(1 / tau, rel=1e-4)  # the corrective gradient is there


@pytest.mark.parametrize("name", ["neuralsort", "softsort"])
@pytest.mark.parametrize("spread", [0.05, 0.2])
def test_softmax_relaxations_equal_bceloss_where_nothing_saturates(name, spread):
    """Away from saturation the exact-log BCE is torch.nn.BCELoss on the relaxed P, value and gradient."""
    for n in (3, 5, 10, 15):
        g = torch.Generator().manual_seed(n)
        scores = (spread * torch.randn(32, n, generator=g, dtype=torch.float64)).requires_grad_(True)
        values = torch.randn(32, n, generator=g, dtype=torch.float64)
        loss = LOSSES.build(name, tau=1.0)
        p = loss.permutation(scores)
        # BCELoss's clamps act below p (1 - p) = 1e-12; its log(1 - p) loses ~1e-16 / (1 - p) relatively
        assert p.min() > 1e-10 and p.max() < 1 - 1e-6
        reference = torch.nn.BCELoss(reduction="none")(p, true_permutation(values)).mean((-2, -1))
        ours = loss(scores, values)
        torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-12)
        (g_ours,) = torch.autograd.grad(ours.sum(), scores)
        (g_ref,) = torch.autograd.grad(reference.sum(), scores)
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", RANKING)
@pytest.mark.parametrize("scale", [1.0, 10.0, 100.0])
def test_hessian_target_is_finite_where_the_relaxation_saturates(name, scale):
    """Scores spread far apart (most entries of P round to 0 or 1 in float32): the Hessian Newton target must
    still exist, and must move the scores (the gradient did not vanish)."""
    from losses import newton_target

    torch.manual_seed(1)
    y, values = scale * torch.randn(100, 5), torch.randn(100, 5)
    loss = LOSSES.build(name)
    z = newton_target(y, lambda v: loss(v, values), curvature="hessian", lam=0.1)
    assert torch.isfinite(z).all() and (z - y).abs().max() > 0


def bce_by_definition(logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The exact-log BCE as defined, O(n^3): log(1 - p_ij) is the log-sum-exp over row i's entries other than j.
    Each row is shifted by its maximum first (a constant: the function does not change): unshifted, float64's
    log-sum-exp of a row tied at 1e17 rounds to 1e17 and loses log 2."""
    n = logits.shape[-1]
    logits = logits - logits.amax(-1, keepdim=True).detach()
    total = logits.logsumexp(-1, keepdim=True)
    others = (
        logits.unsqueeze(-2).expand(*logits.shape[:-1], n, n).masked_fill(torch.eye(n, dtype=torch.bool), -math.inf)
    )
    return -(q * (logits - total) + (1 - q) * (others.logsumexp(-1) - total)).mean((-2, -1))


def logit_regimes(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """(16, n, n) logits from calm to saturated, with ties: rows tied at the maximum (also beyond 2^53, where
    float64's log-sum-exp of a row rounds to its maximum, so a tied entry's p would round to 1), rows all equal,
    tiny and huge scales (a float32 p of 1 - 1e-13 rounds to 1)."""
    base = torch.randn(16, n, n, generator=generator, dtype=torch.float64)
    tied = base.clone()
    tied[..., 1] = tied.max(-1).values  # the maximum appears twice in every row
    return {
        "calm": base,
        "tiny": 1e-6 * base,
        "saturated": 60 * base,
        "huge": 1e4 * base,
        "tied at the maximum": 30 * tied,
        "tied at a huge maximum": 1e17 * tied,
        "all equal": torch.zeros(16, n, n, dtype=torch.float64),
        "one far ahead": torch.where(torch.arange(n) == 0, 200.0, base),
    }


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20])
def test_exact_log_bce_is_scipys_logsumexp_definition_in_every_regime(n):
    """``per_set_bce_from_logits`` against the BCE computed in float64 by scipy's ``logsumexp`` over each row's
    other entries (each row shifted by its maximum, as in ``bce_by_definition``), for float64 and float32 logits.
    Every BCE term is >= 0, so nothing cancels in the mean: the loss is held to its dtype's rounding relative to
    itself, plus float64's absolute rounding of the reference (scipy's log(1 + tiny) is 0)."""
    from scipy.special import logsumexp

    from losses.ranking.permutation import per_set_bce_from_logits

    g = torch.Generator().manual_seed(n)
    for regime, logits64 in logit_regimes(n, g).items():
        q = true_permutation(torch.randn(16, n, generator=g)).to(torch.float64)
        for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
            logits = logits64.to(dtype)
            lg = logits.double().numpy()
            lg = lg - lg.max(-1, keepdims=True)
            total = logsumexp(lg, axis=-1, keepdims=True)
            rest = np.stack([logsumexp(np.delete(lg, j, axis=-1), axis=-1) for j in range(n)], -1) - total
            expected = -(q.numpy() * (lg - total) + (1 - q.numpy()) * rest).mean((-2, -1))
            got = per_set_bce_from_logits(logits, q.to(dtype)).double().numpy()
            tolerance = rtol * np.abs(expected) + 8 * np.finfo(np.float64).eps
            assert (np.abs(got - expected) <= tolerance).all(), (regime, dtype, got, expected)


@pytest.mark.parametrize("n", [2, 5, 10])
def test_exact_log_bce_has_the_definitions_gradient_and_hessian(n):
    """Gradient and Hessian of the O(n^2) BCE against the O(n^3) definition, float64, in every regime: torch.func's
    (reverse, and forward-over-reverse), and the per-set mean Hessian as the Hessian Newton loss takes it
    (``mean_hessian``'s vmapped double backward). The argmax switch and log1p's masked branch add nothing.
    Where P saturates the curvature is far below the absolute tolerance, and the definition's own p - p^2 cancels
    there; so every regime is also held to a property at its own scale: the loss does not change when a row of
    logits is shifted, so each row of the Hessian sums to 0 over the entries of a row of logits, to float64's
    rounding of the Hessian's largest entry (autograd's intermediate terms are of that size); not in the "huge"
    regime, whose whole curvature (below 1e-100) is products whose counterparts underflow to 0."""
    from losses import mean_hessian, per_sample_gradients
    from losses.ranking.permutation import per_set_bce_from_logits

    g = torch.Generator().manual_seed(100 + n)
    for regime, logits in logit_regimes(n, g).items():
        logits = logits[:2]  # two sets: the Hessian is (2 n^2)^2
        q = true_permutation(torch.randn(2, n, generator=g)).to(torch.float64)
        for order, derivative in (("gradient", torch.func.jacrev), ("hessian", torch.func.hessian)):
            ours = derivative(lambda x: per_set_bce_from_logits(x, q).sum())(logits)
            reference = derivative(lambda x: bce_by_definition(x, q).sum())(logits)
            assert torch.isfinite(ours).all(), (regime, order)
            torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-12, msg=f"{regime}, {order}")
        by_row = ours.reshape(2, n, n, 2, n, n)  # [set, row, entry, set', row', entry'], ours is the Hessian here
        rounding = 64 * torch.finfo(torch.float64).eps * by_row.abs().max()
        assert regime == "huge" or (by_row.sum(-1).abs() <= 1e-9 * by_row.abs().sum(-1) + rounding).all(), regime
        m = n * n
        y, grad = per_sample_gradients(
            logits.reshape(2, m), lambda v: per_set_bce_from_logits(v.view(2, n, n), q), create_graph=True
        )
        blocks = reference.reshape(2, m, 2, m)
        torch.testing.assert_close(
            mean_hessian(y, grad), (blocks[0, :, 0] + blocks[1, :, 1]) / 2, rtol=1e-9, atol=1e-12, msg=regime
        )
