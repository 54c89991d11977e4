"""The four ranking losses of Table 1: closed forms, orientation against torch.argsort, gradients."""
import math

import pytest
import torch

from losses import LOSSES, make_objective, ranking_accuracy, true_permutation

RANKING = ["neuralsort", "softsort", "logistic_dsn", "cauchy_dsn"]
SHARP = {"neuralsort": {"tau": 1e-3}, "softsort": {"tau": 1e-3}, "logistic_dsn": {"beta": 1e4}, "cauchy_dsn": {"beta": 1e6}}


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


@pytest.mark.parametrize("name, cdf", [
    ("neuralsort", lambda d, k: torch.sigmoid(k * d)),
    ("softsort", lambda d, k: torch.sigmoid(k * d)),
    ("logistic_dsn", lambda d, k: torch.sigmoid(k * d)),
    ("cauchy_dsn", lambda d, k: torch.atan(k * d) / math.pi + 0.5),
])
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
