"""The user code a study names: what to ship to Ray workers, where it came from, and a hash of what runs.

- ``plugins(study)``: the import paths the driver resolved the study's user names to (entry points included), so
  that trials on workers without the user's package resolve them the same way.
- ``user_code_dirs(study)``: what to ship (Ray's ``py_modules``): every portion of a (namespace) package, or a
  single-file module together with the sibling modules it imported from its folder.
- ``code_source`` / ``code_tags``: where each task and loss came from (origin, import path, distribution, file).
- ``code_hash()``: a content hash of the code that runs in this process: this project's packages as imported
  here and the user's modules. The driver records its own on the parent run; every trial records the one of
  its worker (``env.code_hash``), so a node with another checkout shows up in the report's warning.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import sys
from pathlib import Path
from typing import Any

from losses import LOSSES
from registry import Registry, is_import_path
from tasks import TASKS

from .study import Study

OWN_PACKAGES = ("losses", "registry", "tasks", "tuner")  # this project's: installed on every node, never shipped


def plugins(study: Study) -> dict[str, dict[str, str]]:
    """The study's names that resolve to user code, with their import paths."""
    found = {
        "tasks": {study.task: TASKS.target(study.task)},
        "losses": {name: LOSSES.target(name) for name in study.loss_names()},
    }
    return {kind: {name: target for name, target in names.items() if target} for kind, names in found.items()}


def user_code_dirs(study: Study) -> list[str]:
    """Folders and files of the user's code that the study names, shipped to every Ray worker."""
    targets = [TASKS.target(study.task)] + [LOSSES.target(name) for name in study.loss_names()]
    shipped = [path for target in targets if target for path in shippable(target)]
    return list(dict.fromkeys(shipped))


def shippable(target: str) -> list[str]:
    """What to ship for one user import path: every portion of its top-level package, or its module file and
    the sibling modules it loaded from its folder; nothing for this project's own packages."""
    top = target.split(":")[0].split(".")[0]
    if top in OWN_PACKAGES:
        return []
    module = sys.modules[top]
    portions = list(getattr(module, "__path__", []))
    if portions:  # a package; a namespace package may have several portions, each shipped
        return [str(Path(p).resolve()) for p in portions]
    folder = Path(module.__file__).resolve().parent
    siblings = [m for m in list(sys.modules.values()) if _top_level_in(m, folder)]
    return [str(Path(module.__file__).resolve())] + sorted(_module_path(m) for m in siblings if m is not module)


def _top_level_in(module: Any, folder: Path) -> bool:
    """A top-level module (or package) loaded from ``folder``: a sibling a single-file plugin may import."""
    name, file = getattr(module, "__name__", ""), getattr(module, "__file__", None)
    if "." in name or not file or name in OWN_PACKAGES:
        return False
    path = Path(file).resolve()
    where = path.parent.parent if path.name == "__init__.py" else path.parent
    return where == folder


def _module_path(module: Any) -> str:
    path = Path(module.__file__).resolve()
    return str(path.parent if path.name == "__init__.py" else path)


def code_source(registry: Registry, name: str) -> dict[str, str]:
    """Where ``name``'s code comes from: origin, import path, file, and its distribution and version. Works for
    whatever the registry holds: a class, a function, a module, an instance, a ``functools.partial``."""
    obj, target = registry.get(name), registry.target(name)
    # user code: the module its import path names (a partial's own module is functools); built-ins: the object's
    module = sys.modules.get(target.split(":")[0]) if target else None
    module = module or inspect.getmodule(obj) or inspect.getmodule(type(obj))
    origin = "builtin" if target is None else ("import path" if is_import_path(name) else "entry point")
    qualified = (
        getattr(obj, "__qualname__", None)
        or getattr(getattr(obj, "func", None), "__qualname__", None)
        or type(obj).__qualname__
    )
    own = obj.__name__ if inspect.ismodule(obj) else f"{getattr(module, '__name__', '?')}:{qualified}"
    info = {"origin": origin, "target": target or own, "file": str(getattr(module, "__file__", "") or "")}
    top = (target or getattr(module, "__name__", "")).split(":")[0].split(".")[0]
    distribution = _distributions().get(top, [None])[0]
    if distribution:
        info["distribution"] = f"{distribution} {importlib.metadata.version(distribution)}"
    return info


def describe_code(source: dict[str, str]) -> str:
    """One tag value for where a task's or loss's code came from: origin | import path | distribution | file."""
    return " | ".join(filter(None, [source["origin"], source["target"], source.get("distribution"), source["file"]]))


def code_tags(study: Study) -> dict[str, str]:
    """Which code the study's task and losses are, and which version, as MLflow tags."""
    tags = {"code.task": describe_code(code_source(TASKS, study.task))}
    tags.update({f"code.loss.{name}": describe_code(code_source(LOSSES, name)) for name in study.loss_names()})
    return tags


def code_hash(user_targets: tuple[str, ...] = ()) -> str:
    """SHA-256 (first 16 hex digits) over the Python files of this project's packages as this process imports
    them and of the user modules named by ``user_targets`` (import paths), keyed by their paths relative to
    their package's folder: the same code gives the same hash wherever it is installed or shipped to."""
    roots = [_module_path(sys.modules[name]) for name in OWN_PACKAGES if name in sys.modules]
    for target in user_targets:
        top = target.split(":")[0].split(".")[0]
        if top in sys.modules and top not in OWN_PACKAGES:
            roots += shippable(target)
    return _hash_files(tuple(sorted(set(roots))))


@functools.lru_cache(maxsize=8)
def _hash_files(roots: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for root in map(Path, roots):
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            if "__pycache__" in path.parts:
                continue
            relative = path.relative_to(root.parent).as_posix()
            digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> installed distributions; scanning every installed package takes ~1 s, and each trial
    asks (its run records which code it ran), so a process scans once."""
    return importlib.metadata.packages_distributions()
