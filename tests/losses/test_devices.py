"""Every loss and variant runs on a device other than the CPU, with its finite checks deferred to that device:
forward and backward on PyTorch's ``meta`` device (shapes and dtypes only, no data, and no way back to the host:
any host round trip in the loss or the Newton step fails there). The stochastic shortest-path losses call the exact
solver, whose Dijkstra and relaxation loops depend on the data, so they cannot run on ``meta``; their noise is
drawn on the device (checked with a device generator's own stream below)."""

import pytest
import torch

from losses import LOSSES, make_objective
from losses.finite import FiniteWatch, deferred_checks
from losses.shortest_path.smoothing import noise

DATA_DEPENDENT = {"ss_loss", "ss_algorithm", "po_fy"}  # the exact solver inside: not on meta
CASES = [
    (name, variant)
    for name in LOSSES.names()
    if name not in DATA_DEPENDENT
    for variant in getattr(LOSSES.get(name), "variants", ("baseline", "hessian", "fisher"))
]


def shapes(name: str) -> tuple[int, int, torch.dtype]:
    kind = getattr(LOSSES.get(name), "task_kind", None)
    return {"ranking": (8, 5, torch.float32), "shortest_path": (4, 144, torch.float64)}.get(kind, (8, 1, torch.float32))


def test_every_loss_is_covered():
    assert {name for name, _ in CASES} | DATA_DEPENDENT == set(LOSSES.names())
    assert len(CASES) >= 15


@pytest.mark.parametrize("name, variant", CASES)
def test_forward_and_backward_on_the_meta_device_without_a_host_round_trip(name, variant):
    n, m, dtype = shapes(name)
    objective = make_objective(LOSSES.build(name), variant, None if variant == "baseline" else 0.1)
    y = torch.randn(n, m, device="meta", dtype=dtype, requires_grad=True)
    target = torch.rand(n, m, device="meta", dtype=dtype)
    with deferred_checks() as watch:
        watch.step = 1
        value = objective(y, target)
        (grad,) = torch.autograd.grad(value, y)
    assert value.device.type == grad.device.type == "meta" and grad.shape == (n, m)
    if objective.monitor is not None:
        assert objective.monitor._kept and objective.monitor._kept[0].device.type == "meta"


def test_deferred_checks_name_the_first_failing_step_and_its_cause():
    """Eager checks raise at once; deferred ones record per kind the first step, on the device, and a singular
    system at a step is reported before the non-finite values it causes."""
    watch = FiniteWatch()
    with deferred_checks(watch):
        for step, y in enumerate([torch.ones(2, 2), torch.full((2, 2), float("nan")), torch.ones(2, 2)], start=1):
            watch.step = step
            objective = make_objective(lambda v, t: -(v**2).sum(1) / 4, "hessian", 0.5)  # M + lam I = 0: singular
            leaf = y.clone().requires_grad_(True)
            objective(leaf, y)
    assert watch.failure() == ("singular Newton system", 1)
    with pytest.raises(torch.linalg.LinAlgError, match="singular"):
        objective(torch.ones(2, 2, requires_grad=True), torch.ones(2, 2))


def test_noise_comes_from_the_device_generator_when_one_is_given():
    like = torch.zeros(2, 3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(5)
    expected = torch.randn((4, 2, 3), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.equal(noise((4, 2, 3), generator, like), expected)
