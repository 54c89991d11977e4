"""The appendix-G task (cvxpylayers ReLU network): the contract, the layer, the Fisher step on the parameters
against its closed form, determinism, exact resume, errors."""

import io

import pytest
import torch

from tasks import TASKS, Task, check_task, cvxpy_relu

from .helpers import collect as run_collect

pytest.importorskip("cvxpylayers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # cvxpylayers' numpy 2 copy keyword

TINY = {"samples": 6, "steps": 4, "eval_every": 2}


def collect(config, resume=None, stop_after=None):
    return run_collect(cvxpy_relu.train, config, resume, stop_after)


def test_registered_and_meets_the_contract():
    assert TASKS.get("cvxpy_relu") is cvxpy_relu
    check_task("cvxpy_relu", cvxpy_relu)
    assert isinstance(cvxpy_relu, Task)
    assert cvxpy_relu.describe({})["loss"] == "mse" and cvxpy_relu.total_steps({"steps": 7}) == 7
    paper = cvxpy_relu.PAPER_PER_SEED
    assert paper["metric"] in cvxpy_relu.REPORT_METRICS and sorted(paper["values"]) == [1, 2, 3, 4, 5]


def test_the_relu_layer_is_relu_and_the_draws_are_the_notebooks():
    """The convex problem's solution is relu(W x + b) up to the solver's tolerance; seed 0 draws the notebook's
    network and data (its first printed loss is 1.0796713829040527, in float32)."""
    model, X, Y = cvxpy_relu.data_and_model(0, 300)
    layer = model.relu1
    W, b = 0.3 * torch.randn(20, 20, dtype=torch.float64), 0.3 * torch.randn(20, dtype=torch.float64)
    layer.W.data, layer.b.data = W, b
    with torch.no_grad():
        assert (layer(X[:20]) - torch.relu(X[:20] @ W.T + b)).abs().max() < 1e-3
    model, X, Y = cvxpy_relu.data_and_model(0, 300)
    with torch.no_grad():
        assert abs((model(X) - Y).pow(2).mean().item() - 1.0796713829040527) < 1e-4


@pytest.mark.parametrize("lam", [0.1, 1e3])
def test_the_fisher_gradient_of_a_layer_is_the_regularised_fisher_step_on_its_per_sample_gradients(lam):
    """With g_i the gradient of sample i's squared error in the first layer's (W, b) (flattened, P = 420) and
    F = mean_i g_i g_i^T, the shared parameters must receive (F + lam I)^-1 mean_i g_i. The per-sample gradients
    come from leaf copies through the same solver, so both sides see identical solutions."""
    n = 5
    model, X, Y = cvxpy_relu.data_and_model(3, n)
    for p in model.parameters():
        p.data += 0.2 * torch.randn_like(p)  # away from the tiny initial weights, so that the ReLUs are active
    copies = [p.detach().expand(n, *p.shape).clone().requires_grad_() for p in (model.relu1.W, model.relu1.b)]
    hidden = model.relu1.layer(*copies, X)[0]
    (model.linear(model.relu2(hidden)) - Y).pow(2).mean().backward()
    g = n * torch.cat([c.grad.flatten(1) for c in copies], dim=1)  # (n, P) per-sample gradients
    expected = torch.linalg.solve(g.T @ g / n + lam * torch.eye(g.shape[1], dtype=g.dtype), g.mean(0))
    (model(X, lam=None) - Y).pow(2).mean().backward()  # the baseline: the sum of the copies' gradients
    plain = torch.cat([model.relu1.W.grad.flatten(), model.relu1.b.grad])
    assert torch.allclose(plain, g.mean(0), rtol=1e-6, atol=1e-12)
    model.zero_grad()
    (model(X, lam=lam) - Y).pow(2).mean().backward()
    got = torch.cat([model.relu1.W.grad.flatten(), model.relu1.b.grad])
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-12 * expected.abs().max().item())


def test_same_seed_same_metrics_and_fisher_differs_from_the_baseline():
    short = {**TINY, "steps": 2, "eval_every": 1}
    first, _ = collect({**short, "variant": "fisher", "lam": 0.1})
    again, _ = collect({**short, "variant": "fisher", "lam": 0.1})
    base, _ = collect({**short, "variant": "baseline"})
    assert [m["step"] for m in first] == [1, 2] and first == again
    assert first[0]["train_loss"] == base[0]["train_loss"]  # the same first forward: same draws
    assert all(f["mse"] != b["mse"] for f, b in zip(first, base))
    other, _ = collect({**short, "steps": 1, "variant": "fisher", "lam": 0.1, "seed": 2})
    assert other[0]["train_loss"] != first[0]["train_loss"]


@pytest.mark.parametrize("variant, extra", [("baseline", {}), ("fisher", {"lam": 0.1, "fisher_layers": "all"})])
def test_resumed_run_ends_with_the_uninterrupted_metrics(variant, extra):
    config = {**TINY, "variant": variant, **extra}
    full, _ = collect(config)
    head, states = collect(config, stop_after=2)
    buffer = io.BytesIO()
    torch.save(states[-1], buffer)
    buffer.seek(0)
    tail, _ = collect(config, resume=torch.load(buffer, weights_only=True))
    assert head + tail == full


@pytest.mark.parametrize(
    "config, error, message",
    [
        ({"variant": "hessian", "lam": 0.1}, ValueError, "no Hessian variant"),
        ({"variant": "fisher"}, ValueError, "lam"),
        ({"variant": "fisher", "lam": -1.0}, ValueError, "lam"),
        ({"fisher_layers": "some"}, ValueError, "fisher_layers must be one of cvxpy, all"),
        ({"samples": 0}, ValueError, "samples must be a positive integer"),
        ({"step": 3}, KeyError, "did you mean 'steps'"),
    ],
)
def test_bad_configs_are_one_clear_error(config, error, message):
    with pytest.raises(error, match=message):
        cvxpy_relu.check(config)


def test_without_cvxpylayers_the_error_says_what_to_install(monkeypatch):
    real = cvxpy_relu.importlib.util.find_spec
    monkeypatch.setattr(
        cvxpy_relu.importlib.util, "find_spec", lambda name: None if name == "cvxpylayers" else real(name)
    )
    with pytest.raises(ImportError, match=r"pip install 'newton-losses-tuner\[cvxpy\]'"):
        cvxpy_relu.check({})
