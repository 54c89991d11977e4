"""The README's plain-PyTorch example (examples/plain_training_loop.py): each variant trains in a few lines."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plain_training_loop.py"


def example():
    spec = importlib.util.spec_from_file_location("plain_training_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", ["baseline", "fisher", "hessian"])
def test_each_variant_learns_the_ranking(variant):
    first, last = example().train(variant, steps=120)
    assert last < 0.5 * first, (first, last)


def test_the_script_runs_as_the_readme_says():
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, cwd=EXAMPLE.parents[1]
    )
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["baseline", "fisher", "hessian"]
