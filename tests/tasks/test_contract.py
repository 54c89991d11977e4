"""The task contract: the built-in tasks meet it, and a task that does not is refused with what it lacks."""

import types

import pytest

from registry import Registry
from tasks import TASKS, Task, check_task, ranking, shortest_path


@pytest.mark.parametrize("task", [ranking, shortest_path])
def test_built_in_tasks_meet_the_contract(task):
    check_task(task.__name__, task)
    assert isinstance(task, Task)
    assert set(task.REPORT_METRICS) <= set(task.METRICS) and task.LOSS_KIND in ("ranking", "shortest_path")


def fake_task(**overrides):
    task = types.SimpleNamespace(
        LOSS_KIND="k",
        DEFAULTS={"loss": "x", "variant": "baseline", "lam": None, "seed": 0},
        METRICS=("a", "b"),
        REPORT_METRICS=("a",),
        describe=lambda c: c,
        check=lambda c: None,
        total_steps=lambda c: 1,
        train=lambda config, report, resume=None: {},
    )
    for key, value in overrides.items():
        if value is None:
            delattr(task, key)
        else:
            setattr(task, key, value)
    return task


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"METRICS": None, "total_steps": None}, r"METRICS \(missing\); total_steps\(\) \(missing\)"),
        ({"DEFAULTS": ["loss"]}, r"DEFAULTS \(a dict, got list\)"),
        ({"REPORT_METRICS": ("c",)}, r"REPORT_METRICS 'c' is not in METRICS"),
        ({"DEFAULTS": {"loss": "x", "variant": "baseline"}}, r"DEFAULTS lacks 'lam'; DEFAULTS lacks 'seed'"),
        ({"train": lambda config, report: {}}, r"train\(\) takes no `resume` argument"),
        ({"PERCENT_METRICS": "a"}, r"PERCENT_METRICS \(a tuple or list, got str\)"),
    ],
)
def test_a_task_that_misses_the_contract_is_refused_naming_what_it_lacks(overrides, message):
    with pytest.raises(
        TypeError, match=r"task 'mine' does not meet the task contract \(tasks/contract.py\): .*" + message
    ):
        check_task("mine", fake_task(**overrides))


def test_registering_checks_the_contract():
    registry = Registry("task", "newton_losses.tests_only", check_task)
    registry.register("good")(fake_task())
    with pytest.raises(TypeError, match="train\\(\\) \\(missing\\)"):
        registry.register("bad")(fake_task(train=None))
    assert registry.names() == ["good"]


def test_the_registry_holds_the_built_ins():
    assert TASKS.get("ranking") is ranking and TASKS.get("shortest_path") is shortest_path
    from tuner.plugins import code_source

    assert TASKS.target("ranking") is None and code_source(TASKS, "ranking")["origin"] == "builtin"
