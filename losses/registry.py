"""Name -> constructor tables for the YAML names of losses and tasks (one per extension point).

A name in a study is one of three things:

- a built-in registry key (``neuralsort``, ``ranking``), registered by ``@LOSSES.register("neuralsort")``;
- an import path ``package.module:attribute`` (``mylab.losses:TopKLoss``) or a dotted ``package.module`` (a task
  may be a whole module), for code that lives outside this repository;
- the name of a Python entry point that an installed package declares in the registry's group
  (``newton_losses.losses`` / ``newton_losses.tasks``), e.g. in its pyproject.toml::

      [project.entry-points."newton_losses.losses"]
      topk = "mylab.losses:TopKLoss"

Whatever the origin, the object is checked by the registry's ``check`` when it is first resolved (a task
against the task contract), and ``source(name)`` says where it came from, for the tracking store.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

OWN_PACKAGES = ("losses", "tasks", "tuner")  # this repository's: never shipped to workers as user code


class PluginError(ImportError):
    """User code named in a study cannot be imported or found; the message names the module and the cause."""


class Registry:
    """A table of constructors keyed by the name study files use, open to import paths and entry points."""

    def __init__(self, kind: str, group: str, check: Callable[[str, Any], None] | None = None):
        self.kind, self.group = kind, group
        self._check = check
        self._table: dict[str, Callable] = {}
        self._targets: dict[str, str] = {}  # resolved name -> "module:attr" of user code

    def register(self, name: str):
        """Decorator: ``@LOSSES.register("neuralsort")``."""
        def add(obj):
            if name in self._table:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if self._check is not None:
                self._check(name, obj)
            self._table[name] = obj
            return obj
        return add

    def alias(self, name: str, target: str) -> None:
        """Resolve ``name`` to the import path ``target`` (a worker without the user's package installed learns the
        driver's entry points this way)."""
        if name not in self._table:
            self._table[name] = self._load(target, name)
            self._targets[name] = target

    def names(self) -> list[str]:
        """Built-in names and the entry-point names of installed packages."""
        return sorted({*(n for n in self._table if n not in self._targets), *self._entry_points()})

    def get(self, name: str) -> Callable:
        if name in self._table:
            return self._table[name]
        target = name if _is_import_path(name) else self._entry_points().get(name)
        if target is None:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}{hint} (valid: {', '.join(self.names())}; or an import "
                           f"path package.module:attribute)")
        obj = self._load(target, name)
        self._table[name], self._targets[name] = obj, target
        return obj

    def target(self, name: str) -> str | None:
        """The import path ``name`` resolves to when it is user code; None for a built-in."""
        self.get(name)
        return self._targets.get(name)

    def source(self, name: str) -> dict[str, str]:
        """Where ``name``'s code comes from: origin, import path, file, and its distribution and version."""
        obj, target = self.get(name), self.target(name)
        module = inspect.getmodule(obj) or sys.modules.get(getattr(obj, "__module__", ""), None)
        origin = "builtin" if target is None else ("import path" if _is_import_path(name) else "entry point")
        own = obj.__name__ if inspect.ismodule(obj) else f"{getattr(module, '__name__', '?')}:{obj.__qualname__}"
        info = {"origin": origin, "target": target or own, "file": str(getattr(module, "__file__", "") or "")}
        top = (target or getattr(module, "__name__", "")).split(":")[0].split(".")[0]
        distribution = _distributions().get(top, [None])[0]
        if distribution:
            info["distribution"] = f"{distribution} {importlib.metadata.version(distribution)}"
        return info

    def user_code_dirs(self, name: str) -> list[str]:
        """The folder of ``name``'s top-level package (or module file) when it is user code, to ship to Ray workers
        that lack it; empty for built-ins."""
        target = self.target(name)
        if target is None:
            return []
        top = target.split(":")[0].split(".")[0]
        if top in OWN_PACKAGES:
            return []
        module = sys.modules[top]
        paths = list(getattr(module, "__path__", []))
        return [str(Path(paths[0]).resolve())] if paths else [str(Path(module.__file__).resolve())]

    def parameters(self, name: str) -> dict[str, Any]:
        """The keyword parameters the constructor takes, with their defaults."""
        signature = inspect.signature(self.get(name))
        return {p.name: p.default for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def check_params(self, name: str, params: dict[str, Any]) -> None:
        """Raise a clear error for a parameter the constructor does not take."""
        accepted = self.parameters(name)
        for key in params:
            if key not in accepted:
                close = difflib.get_close_matches(key, list(accepted), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"{self.kind} {name!r} takes no parameter {key!r}{hint} "
                                f"(it takes: {', '.join(accepted) or 'none'})")

    def build(self, name: str, **params):
        self.check_params(name, params)
        return self.get(name)(**params)

    def _entry_points(self) -> dict[str, str]:
        return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=self.group)}

    def _load(self, target: str, name: str):
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001 - any failure of user code to import is the user's to see
            raise PluginError(f"{self.kind} {name!r}: cannot import module {module_name!r} "
                              f"({type(error).__name__}: {error})") from None
        obj = module
        for part in filter(None, attribute.split(".")):
            if not hasattr(obj, part):
                raise PluginError(f"{self.kind} {name!r}: module {module_name!r} has no attribute {attribute!r}")
            obj = getattr(obj, part)
        if self._check is not None:
            self._check(name, obj)
        return obj


def _is_import_path(name: str) -> bool:
    """``package.module:attribute`` or a dotted module name (registry keys have neither ':' nor '.')."""
    return isinstance(name, str) and (":" in name or "." in name)


def check_loss(name: str, loss) -> None:
    """A loss is a callable (class or factory) whose keyword parameters are its study parameters; ``variants``,
    if declared, lists some of baseline / hessian / fisher; ``task_kind``, if declared, is a string."""
    if not callable(loss):
        raise TypeError(f"loss {name!r} must be a class or a function that builds the per-sample loss, got "
                        f"{type(loss).__name__}")
    unknown = sorted(set(getattr(loss, "variants", ())) - {"baseline", "hessian", "fisher"})
    if unknown:
        raise TypeError(f"loss {name!r} declares unknown variants {unknown} (valid: baseline, hessian, fisher)")
    kind = getattr(loss, "task_kind", None)
    if kind is not None and not isinstance(kind, str):
        raise TypeError(f"loss {name!r}: task_kind must be a string naming the task kind it serves, got {kind!r}")


LOSSES = Registry("loss", "newton_losses.losses", check_loss)


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> installed distributions; scanning every installed package takes ~1 s, and each trial
    asks (its run records which code it ran), so a process scans once."""
    return importlib.metadata.packages_distributions()
