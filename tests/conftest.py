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
