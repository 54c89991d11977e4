"""``studies/table9_cvxpylayers.yaml`` at its smoke scale through the real CLI: Ray Tune, MLflow, then the report
with its per-seed paired table beside the paper's Table 9; the smoke run's losses pinned."""

import pandas as pd
import pytest

from tuner.export import study_tables
from tuner.state import load_state

from .helpers import REPO, run_tuner

pytest.importorskip("cvxpylayers")
pytestmark = pytest.mark.slow

# final MSE of the smoke scale (4 steps on 30 points), per (variant, seed); the solver's tolerance is 1e-4
PINNED = {("baseline", 1): 0.907811, ("baseline", 2): 0.524728, ("fisher", 1): 0.914866, ("fisher", 2): 0.536124}


def test_table9_smoke_runs_and_reports_the_paired_seeds(tmp_path):
    store = tmp_path / "store"
    run = run_tuner(
        "run",
        REPO / "studies" / "table9_cvxpylayers.yaml",
        "--scale",
        "smoke",
        "--storage",
        store,
        timeout=900,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    state = load_state(store / "table9_cvxpylayers-smoke")
    trials, _ = study_tables(state.mlflow_uri, state.experiment_id, state.execution_id)
    assert (trials["status"] == "FINISHED").all() and len(trials) == 4
    final = {(v, int(s)): m for v, s, m in zip(trials["param_variant"], trials["param_seed"], trials["final_mse"])}
    assert final == pytest.approx(PINNED, abs=1e-3)

    report = run_tuner("report", "table9_cvxpylayers-smoke", "--storage", store, timeout=600, cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    folder = store / "table9_cvxpylayers-smoke" / "report"
    pairs = pd.read_csv(folder / "paired_seeds.csv")
    assert pairs["seed"].tolist() == [1, 2] and pairs["paper_baseline"].tolist() == [0.322, 0.186]
    assert pairs["newton"].tolist() == pytest.approx([PINNED["fisher", 1], PINNED["fisher", 2]], abs=1e-3)
    assert len(pd.read_csv(folder / "paired_summary.csv")) == 1
    cost = pd.read_csv(folder / "paired_cost.csv").set_index("variant")
    assert cost.loc["baseline", "ratio_to_baseline_mean"] == pytest.approx(1.0)
    assert "Per seed, paired with the baseline (`mse`, beside the paper's Table 9" in (folder / "report.md").read_text()
