"""Helpers for the tuner tests: tiny study files and the real ``tuner`` command."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

TUNER = str(Path(sys.executable).parent / "tuner")
REPO = Path(__file__).resolve().parents[2]

TINY_PARAMS = {"n": 3, "loss": "neuralsort", "steps": 4, "batch_size": 4, "eval_every": 2, "eval_sets": 6}


def tiny_study(folder: Path, name: str = "tiny", **overrides) -> Path:
    """A real ranking study at the smallest size that still trains and evaluates."""
    study = {
        "name": name, "task": "ranking", "metric": "valid_elementwise", "mode": "max",
        "params": dict(TINY_PARAMS),
        "grid": [{"variant": ["baseline"]}, {"variant": ["fisher"], "lam": [0.1]}],
        "seeds": [0, 1],
        "resources": {"cpu": 1}, "max_concurrent": 2, "max_failures": 0,
    }
    study.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def run_tuner(*args, timeout=300, env=None, cwd=None):
    return subprocess.run([TUNER, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


