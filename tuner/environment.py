"""Where and with what a trial ran: library versions, Python, CUDA/cuDNN and the GPU, the host, and whether the
code was a clean git commit. Logged as ``env.*`` tags on every trial's run; ``tuner report`` warns when trials
compared in one table differ in any of them (library defaults change between versions: diffsort's
interpolation, Ray's auth mode, MLflow's store)."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path

import torch

LIBRARIES = ("torch", "ray", "optuna", "mlflow", "diffsort", "algovision", "numpy")
# code_hash: the content hash of the code the trial ran (tuner/plugins.py), so a node with another checkout shows
COMPARED = tuple(f"env.{name}" for name in (*LIBRARIES, "python", "cuda", "cudnn", "gpu", "code_hash"))


def environment_tags(device: torch.device | None = None) -> dict[str, str]:
    """``env.*`` tags for this process (a trial's worker): versions, CUDA/cuDNN and GPU when present, the host."""
    tags = {f"env.{name}": _version(name) for name in LIBRARIES}
    tags["env.python"] = platform.python_version()
    tags["env.host"] = socket.gethostname()
    if torch.cuda.is_available():
        tags["env.cuda"] = str(torch.version.cuda)
        tags["env.cudnn"] = str(torch.backends.cudnn.version())
        if device is not None and device.type == "cuda":
            tags["env.gpu"] = torch.cuda.get_device_name(device)
    return tags


def git_state(folder: Path) -> dict[str, str]:
    """The commit of the code the driver runs, and whether its working tree had uncommitted changes."""

    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=folder).stdout.strip()

    try:
        return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": str(bool(git("status", "--porcelain")))}
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
