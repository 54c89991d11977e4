"""User code the way users write it: a task given as an instance, a loss as a ``functools.partial``, namespace
packages and single-file plugins with siblings, broken or colliding entry points elsewhere in the environment, and
a task that breaks the contract only at run time. Each is validated before Ray starts, shipped whole, or refused
in one line that names the cause."""

import sys
import textwrap
import warnings

import pytest
import torch

from losses import LOSSES
from registry import Registry, ShadowedPluginWarning
from tasks import ranking
from tuner.errors import StudyError
from tuner.plugins import code_hash, code_source, shippable
from tuner.state import TrialContext
from tuner.study_file import load_study
from tuner.trainable import FirstReportCheck, TaskContractError

from .helpers import tiny_study


def install(tmp_path, monkeypatch, files: dict, entry_points: str = "", name: str = "dist") -> None:
    """Files under ``tmp_path`` on sys.path, with an installed-looking distribution declaring ``entry_points``."""
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture
def forget_modules():
    before = set(sys.modules)
    yield
    for module in set(sys.modules) - before:
        if module.split(".")[0] in ("instlab", "nslab", "single_loss", "single_helper", "brokenlab"):
            del sys.modules[module]


TASK_CLASS = '''
    from tasks import ranking

    class Ranking:
        """The ranking task, as an instance of a class (the contract allows any object)."""
        LOSS_KIND, DEFAULTS, METRICS, REPORT_METRICS = (ranking.LOSS_KIND, ranking.DEFAULTS, ranking.METRICS,
                                                        ranking.REPORT_METRICS)

        def describe(self, config):
            return ranking.describe(config)

        def check(self, config):
            ranking.check(config)

        def total_steps(self, config):
            return ranking.total_steps(config)

        def train(self, config, report, resume=None):
            return ranking.train(config, report, resume)

    TASK = Ranking()
'''
PARTIAL_LOSS = """
    import functools
    from losses.ranking.softsort import SoftSortLoss

    SHARP = functools.partial(SoftSortLoss, tau=0.05)
"""


def test_an_instance_task_and_a_partial_loss_validate_and_are_described(tmp_path, monkeypatch, forget_modules):
    install(
        tmp_path,
        monkeypatch,
        {"instlab/__init__.py": "", "instlab/tasks.py": TASK_CLASS, "instlab/losses.py": PARTIAL_LOSS},
    )
    path = tiny_study(
        tmp_path,
        name="inst",
        task="instlab.tasks:TASK",
        params={"n": 3, "steps": 4, "batch_size": 4, "eval_every": 2, "eval_sets": 6, "loss": "instlab.losses:SHARP"},
    )
    study = load_study(path)  # validation also describes the code and prepares what would be shipped
    task_source = code_source(__import__("tasks").TASKS, "instlab.tasks:TASK")
    loss_source = code_source(LOSSES, "instlab.losses:SHARP")
    assert task_source["target"] == "instlab.tasks:TASK" and task_source["file"].endswith("instlab/tasks.py")
    assert loss_source["target"] == "instlab.losses:SHARP" and loss_source["file"].endswith("instlab/losses.py")
    assert shippable("instlab.tasks:TASK") == [str(tmp_path / "instlab")]
    assert LOSSES.parameters("instlab.losses:SHARP")["tau"] == 0.05 and study.task == "instlab.tasks:TASK"


def test_every_portion_of_a_namespace_package_is_shipped(tmp_path, monkeypatch, forget_modules):
    install(
        tmp_path / "a",
        monkeypatch,
        {
            "nslab/losses.py": "from nslab.helpers import SCALE\n"
            "from losses.ranking.softsort import SoftSortLoss as Loss\n"
        },
        name="nsa",
    )
    install(tmp_path / "b", monkeypatch, {"nslab/helpers.py": "SCALE = 2\n"}, name="nsb")
    LOSSES.get("nslab.losses:Loss")
    assert sorted(shippable("nslab.losses:Loss")) == sorted(
        [str(tmp_path / "a" / "nslab"), str(tmp_path / "b" / "nslab")]
    )


def test_a_single_file_plugin_ships_with_the_siblings_it_imported(tmp_path, monkeypatch, forget_modules):
    install(
        tmp_path,
        monkeypatch,
        {
            "single_helper.py": "TAU = 0.2\n",
            "single_loss.py": "import functools\nfrom single_helper import TAU\n"
            "from losses.ranking.softsort import SoftSortLoss\n"
            "Loss = functools.partial(SoftSortLoss, tau=TAU)\n",
        },
    )
    LOSSES.get("single_loss:Loss")
    assert shippable("single_loss:Loss") == [str(tmp_path / "single_loss.py"), str(tmp_path / "single_helper.py")]
    before = code_hash(("single_loss:Loss",))
    (tmp_path / "single_helper.py").write_text("TAU = 0.3\n")
    from tuner.plugins import _hash_files

    _hash_files.cache_clear()
    assert code_hash(("single_loss:Loss",)) != before  # the hash covers the sibling the plugin runs


def test_a_misspelled_key_does_not_import_every_installed_plugin(tmp_path, monkeypatch, forget_modules):
    """An unrelated installed plugin that fails to import must not break the validation of a built-in study."""
    install(
        tmp_path,
        monkeypatch,
        {"brokenlab/__init__.py": "raise RuntimeError('this plugin is broken')\n"},
        entry_points="[newton_losses.losses]\nbroken_loss = brokenlab:Loss\n",
        name="brokenlab",
    )
    with pytest.raises(KeyError, match=r"has no config key 'tua'; did you mean 'tau'\?"):
        ranking.check({"loss": "neuralsort", "tua": 1.0})
    assert "brokenlab" not in sys.modules
    assert "broken_loss" in LOSSES.names()  # still listed; imported only when a study names it


def test_an_entry_point_named_like_a_built_in_is_not_silently_shadowed(tmp_path, monkeypatch):
    install(
        tmp_path,
        monkeypatch,
        {},
        entry_points="[newton_losses.losses]\nsoftsort = elsewhere:SoftSort\n",
        name="shadowlab",
    )
    registry = Registry("loss", "newton_losses.losses")
    registry.register("softsort")(object)
    with pytest.warns(
        ShadowedPluginWarning,
        match=r"loss 'softsort' is built in, and an installed package also "
        r"declares an entry point 'softsort' -> elsewhere:SoftSort",
    ):
        assert registry.get("softsort") is object
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.get("softsort")  # said once per process


def test_names_aliased_for_a_worker_are_names_there_too():
    registry = Registry("loss", "newton_losses.tests_only")
    registry.alias("user_softsort", "losses.ranking.softsort:SoftSortLoss")
    assert "user_softsort" in registry.names()
    registry.alias("losses.ranking.neuralsort:NeuralSortLoss", "losses.ranking.neuralsort:NeuralSortLoss")
    assert registry.names() == ["user_softsort"]  # import paths are not names


def context(objectives=("valid_elementwise",)):
    return TrialContext(
        study="s",
        task="mytask",
        phase="grid",
        execution_id="e",
        mlflow_uri="sqlite:////x",
        experiment_id="1",
        git_commit="c",
        git_dirty="False",
        code_hash="h",
        objectives=objectives,
    )


class _Task:
    REPORT_METRICS = ("test_exact",)


class _NotPlain:
    pass


@pytest.mark.parametrize(
    "metrics, state, message",
    [
        ({"step": 2, "valid_elementwise": 0.5}, {}, r"it reports no test_exact \(declared"),
        ({"step": 2, "test_exact": 0.5}, {}, r"it reports no valid_elementwise"),
        ({"step": 2.0, "test_exact": 0.5, "valid_elementwise": 0.5}, {}, r"metrics\['step'\] must be an int, got 2.0"),
        (
            {"step": 2, "test_exact": 0.5, "valid_elementwise": 0.5},
            {"rng": _NotPlain()},
            r"its report state does not load with torch.load\(weights_only=True\)",
        ),
    ],
)
def test_the_first_report_holds_the_task_to_its_contract(metrics, state, message):
    check = FirstReportCheck(context(), _Task())
    with pytest.raises(
        TaskContractError,
        match=r"task 'mytask' breaks the task contract \(tasks/contract.py\) at its "
        r"first report: .*" + message,
    ):
        check.check(metrics, state)


def test_a_contract_keeping_report_passes_once_and_is_not_checked_again():
    check = FirstReportCheck(context(), _Task())
    check.check({"step": 2, "test_exact": 0.5, "valid_elementwise": 0.5}, {"model": {"w": torch.ones(2)}, "step": 2})
    check.check({"step": 4}, {"anything": _NotPlain()})  # later reports cost nothing


def test_a_study_whose_user_code_cannot_be_described_is_one_line_at_validation(tmp_path, monkeypatch, forget_modules):
    install(tmp_path, monkeypatch, {"instlab/__init__.py": "", "instlab/tasks.py": TASK_CLASS})
    path = tiny_study(tmp_path, name="gone", task="instlab.tasks:TASK")
    monkeypatch.setattr("tuner.plugins.code_tags", lambda study: (_ for _ in ()).throw(AttributeError("no name")))
    with pytest.raises(StudyError, match=r"cannot be described or shipped to Ray workers \(AttributeError: no name\)"):
        load_study(path)
