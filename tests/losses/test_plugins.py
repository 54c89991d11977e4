"""User code in a study: losses and tasks by import path or by entry point, validated like the built-ins."""

import sys
import textwrap

import pytest
import torch

from losses import LOSSES, make_objective
from registry import PluginError
from tasks import TASKS, ranking
from tuner.plugins import _distributions, code_source, shippable


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A package ``mylab_<id>`` outside this repository, on sys.path, with an installed-looking distribution that
    declares entry points (a ``.dist-info`` folder, as ``pip install`` writes one)."""
    name = f"mylab_{tmp_path.name.replace('-', '_').lower()}"[:40]
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "losses.py").write_text(
        textwrap.dedent('''
        import torch

        class MarginLoss:
            """Pairwise hinge on adjacent true ranks: a ranking loss the platform does not ship."""
            variants = ("baseline", "hessian", "fisher")

            def __init__(self, margin: float = 1.0):
                self.margin = margin

            def __call__(self, scores, values):
                order = values.argsort(-1)
                s = scores.gather(-1, order)
                return torch.nn.functional.softplus(self.margin - (s[:, 1:] - s[:, :-1])).sum(-1)

        class PathOnly(MarginLoss):
            task_kind = "shortest_path"
        ''')
    )
    (package / "broken.py").write_text("1 / 0\n")
    info = tmp_path / f"{name}-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3.0\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    (info / "entry_points.txt").write_text(f"[newton_losses.losses]\n{name}_margin = {name}.losses:MarginLoss\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _distributions.cache_clear()  # a process scans installed distributions once; this one was installed just now
    yield name
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def test_a_loss_by_import_path_is_built_and_described(user_package):
    path = f"{user_package}.losses:MarginLoss"
    assert LOSSES.parameters(path) == {"margin": 1.0}
    loss = LOSSES.build(path, margin=0.5)
    assert loss.margin == 0.5
    source = code_source(LOSSES, path)
    assert source["origin"] == "import path" and source["target"] == path
    assert source["distribution"] == f"{user_package} 0.3.0" and source["file"].endswith("losses.py")
    assert shippable(path) == [str((sys.modules[user_package].__path__[0]))]


def test_a_loss_by_entry_point(user_package):
    name = f"{user_package}_margin"
    assert name in LOSSES.names()
    assert LOSSES.target(name) == f"{user_package}.losses:MarginLoss"
    assert code_source(LOSSES, name)["origin"] == "entry point"


def test_a_user_loss_without_task_kind_trains_in_any_task_with_its_own_parameters(user_package):
    """A loss that declares no task kind is accepted by the ranking task (the user knows their problem), and the
    task routes the loss's own parameter ``margin`` from the config; an unknown one is a clear error."""
    path = f"{user_package}.losses:MarginLoss"
    config = {"loss": path, "margin": 0.25, "variant": "fisher", "lam": 0.1, "n": 3}
    ranking.check(config)
    assert ranking.describe(config)["margin"] == 0.25
    with pytest.raises(KeyError, match=r"has no config key 'margn'; did you mean 'margin'\?"):
        ranking.check({**config, "margn": 1.0})
    objective = make_objective(LOSSES.build(path, margin=0.25), "hessian", 1.0)
    y = torch.randn(6, 3, requires_grad=True)
    objective(y, torch.randn(6, 3)).backward()
    assert torch.isfinite(y.grad).all()


def test_a_user_loss_declaring_a_kind_is_held_to_it(user_package):
    with pytest.raises(ValueError, match=r"ranking: loss '.*PathOnly' is a shortest_path loss, not a ranking one"):
        ranking.check({"loss": f"{user_package}.losses:PathOnly"})


@pytest.mark.parametrize(
    "suffix, message",
    [
        (
            "broken:Anything",
            r"loss '{p}.broken:Anything': cannot import module '{p}.broken' \(ZeroDivisionError: "
            r"division by zero\)",
        ),
        ("losses:Nothing", r"loss '{p}.losses:Nothing': module '{p}.losses' has no attribute 'Nothing'"),
        ("missing:X", r"cannot import module '{p}.missing' \(ModuleNotFoundError: No module named '{p}.missing'\)"),
    ],
)
def test_user_code_that_fails_is_one_line_naming_module_and_cause(user_package, suffix, message):
    with pytest.raises(PluginError, match=message.format(p=user_package)) as error:
        LOSSES.get(f"{user_package}.{suffix}")
    assert "\n" not in str(error.value)


def test_unknown_names_list_the_built_ins_and_mention_import_paths():
    with pytest.raises(
        KeyError,
        match=r"unknown task 'rankin'; did you mean 'ranking'\? \(valid: .*ranking, "
        r"shortest_path.*; or an import path package.module:attribute\)",
    ):
        TASKS.get("rankin")


def test_a_user_task_module_by_import_path_must_meet_the_contract(user_package):
    with pytest.raises(TypeError, match=r"task '.*losses' does not meet the task contract"):
        TASKS.get(f"{user_package}.losses")
