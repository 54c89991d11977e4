"""Suite-wide checks of the test machinery itself."""

import pytest


def pytest_runtest_setup(item):
    """Fail a grouped test when pytest-xdist's `--dist loadgroup` has silently ignored its `xdist_group` mark.

    xdist groups a test by suffixing its node id with `@group` on each worker; pytest 9.2 made the node id
    read-only for that (xdist 3.8 still assigns `item._nodeid`: pytest-dev/pytest-xdist#1386, fix open as #1388),
    so every group was split over both workers and each expensive module fixture ran twice, unnoticed. pyproject
    pins pytest below 9.2; this check keeps a later combination from losing the grouping without a word. The
    suffix test is xdist's own (an `@` after the last `]`: a parameter id may hold an `@`). `loadgroup` is set on
    xdist's workers only, so `-n 0` runs unchecked.
    """
    grouped = item.get_closest_marker("xdist_group")
    suffixed = item.nodeid.rfind("@") > item.nodeid.rfind("]")
    if grouped and getattr(item.config.option, "loadgroup", False) and not suffixed:
        pytest.fail(
            f"pytest-xdist ignored this test's xdist_group mark ({grouped.args or grouped.kwargs}): this pytest/xdist "
            "pair cannot group tests; install the versions pyproject.toml's [test] extra allows",
            pytrace=False,
        )


def pytest_collection_modifyitems(items):
    """Run the `slow` tests first (a stable sort: otherwise in collection order).

    On two xdist workers the suite's time is the busier worker's. xdist hands out tests in collection order (its
    groups first), a few at a time, so in file order the minutes-long end-to-end tests of `tests/tuner/test_r*`
    to `test_u*` came last and one worker could run the final long one while the other had nothing left. Longest
    first, the many second-long tests come last and even out the two workers' ends. Every test still runs."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
