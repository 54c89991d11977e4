"""The MLflow dashboard of the quickstart study, in a real headless Chromium (Debian's chromium + chromedriver).

Runs the real quickstart study file at its `tiny` scale (`tuner run studies/quickstart.yaml --scale tiny`: the
same grid and search, 20 steps a trial instead of 100, about a minute), builds its report, serves the store with
`tuner ui`, then checks in the browser that the child runs are listed under the study's parent run with their λ
and variant, and that the report's plots are among the parent run's artifacts.
"""

import shutil
import time

import pytest

from tuner.state import load_state

from .helpers import REPO, TUNER, free_port, run_tuner, serving

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.timeout(1800),
    pytest.mark.xdist_group("test_dashboard_browser"),
]  # one worker runs the module: its fixture once
STUDY = "quickstart-tiny"  # the quickstart study at its tiny scale
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync --disable-dev-shm-usage --window-size=1600,1200"
).split()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver (installed by .ci/run)")
    folder = tmp_path_factory.mktemp("dashboard")
    store = folder / "store"
    run = run_tuner("run", REPO / "studies" / "quickstart.yaml", "--scale", "tiny", "--storage", store, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    report = run_tuner("report", STUDY, "--storage", store, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    port = free_port()
    with serving([TUNER, "ui", STUDY, "--storage", str(store), "--port", str(port)], f"http://127.0.0.1:{port}"):
        yield f"http://127.0.0.1:{port}", load_state(store / STUDY)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for_text(driver, *texts, timeout=60):
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    while time.time() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if all(t in body for t in texts):
            return body
        time.sleep(0.5)
    driver.save_screenshot("/tmp/dashboard-failure.png")
    raise AssertionError(f"not all of {texts} on {driver.current_url} (screenshot /tmp/dashboard-failure.png)")


def test_child_runs_are_listed_under_the_study_run(dashboard, browser):
    from mlflow.tracking import MlflowClient
    from selenium.webdriver.common.by import By

    url, state = dashboard
    children = MlflowClient(state.mlflow_uri).search_runs([state.experiment_id], "tags.role = 'trial'")
    assert len(children) == 6
    # the page `tuner ui` prints: the study's runs table (MLflow 3.17 opens an experiment's bare link on its GenAI
    # overview whatever the experiment's kind, as the browser showed: its GenAI/Model-training switch is global)
    browser.get(f"{url}/#/experiments/{state.experiment_id}/runs")
    wait_for_text(browser, f"{STUDY} study", "7 matching runs")
    expand = browser.find_element(
        By.XPATH, f"//a[contains(., '{STUDY} study')]/ancestor::div[contains(@class,'ag-cell')]//button"
    )
    expand.click()
    wait_for_text(browser, *[run.info.run_name for run in children])
    names = {run.info.run_name for run in children}  # named by what they are, not run_trial_07e22_00001
    assert {"neuralsort baseline seed 0", "neuralsort hessian λ=0.01 seed 0", "neuralsort fisher λ=0.1 seed 0"} <= names


def test_each_child_run_page_shows_its_lambda_and_variant(dashboard, browser):
    from mlflow.tracking import MlflowClient

    url, state = dashboard
    for run in MlflowClient(state.mlflow_uri).search_runs([state.experiment_id], "tags.role = 'trial'"):
        params = run.data.params
        browser.get(f"{url}/#/experiments/{state.experiment_id}/runs/{run.info.run_id}")
        body = wait_for_text(browser, run.info.run_name, "variant", params["variant"], "lam")
        if params["variant"] != "baseline":
            assert params["lam"] in body


def test_report_plots_are_artifacts_of_the_study_run(dashboard, browser):
    from selenium.webdriver.common.by import By

    url, state = dashboard
    browser.get(f"{url}/#/experiments/{state.experiment_id}/runs/{state.parent_run_id}/artifacts")
    wait_for_text(browser, "report", "quickstart.yaml")
    browser.find_element(By.XPATH, "//*[normalize-space(text())='report']").click()
    wait_for_text(browser, "curves_steps.png", "report.md", "search_history.png")
