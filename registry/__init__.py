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
against the task contract). Entry points are imported only when a study names them, so a broken plugin that a
study does not use never breaks it. This module knows nothing of the packages that use it (losses, tasks).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import warnings
from typing import Any, Callable


class PluginError(ImportError):
    """User code named in a study cannot be imported or found; the message names the module and the cause."""


class ShadowedPluginWarning(UserWarning):
    """An installed package declares an entry point with the name of a built-in, which wins."""


class Registry:
    """A table of constructors keyed by the name study files use, open to import paths and entry points."""

    def __init__(self, kind: str, group: str, check: Callable[[str, Any], None] | None = None):
        self.kind, self.group = kind, group
        self._check = check
        self._table: dict[str, Any] = {}
        self._targets: dict[str, str] = {}  # resolved user-code name -> its "module:attr" import path
        self._aliases: set[str] = set()  # names the driver resolved for this process (a worker's entry points)
        self._warned: set[str] = set()

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
        driver's entry points this way); ``name`` is then one of ``names()`` here as it is on the driver."""
        if name not in self._table:
            self._table[name] = self._load(target, name)
            self._targets[name] = target
        if not is_import_path(name):
            self._aliases.add(name)

    def names(self) -> list[str]:
        """Every name a study may use without an import path: built-ins, installed entry points, and the names
        aliased for this process (import paths are not listed)."""
        builtins = [n for n in self._table if n not in self._targets]
        return sorted({*builtins, *self._aliases, *self._entry_points()})

    def loaded(self) -> list[str]:
        """The names resolved in this process so far (built-ins included): what a hint may inspect without
        importing anyone's plugin."""
        return sorted(self._table)

    def get(self, name: str) -> Any:
        if name in self._table:
            self._warn_if_shadowed(name)
            return self._table[name]
        target = name if is_import_path(name) else self._entry_points().get(name)
        if target is None:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}{hint} (valid: {', '.join(self.names())}; or an import "
                f"path package.module:attribute)"
            )
        obj = self._load(target, name)
        self._table[name], self._targets[name] = obj, target
        return obj

    def target(self, name: str) -> str | None:
        """The import path ``name`` resolves to when it is user code; None for a built-in."""
        self.get(name)
        return self._targets.get(name)

    def parameters(self, name: str) -> dict[str, Any]:
        """The keyword parameters the constructor takes, with their defaults."""
        signature = inspect.signature(self.get(name))
        return {
            p.name: p.default
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def check_params(self, name: str, params: dict[str, Any]) -> None:
        """Raise a clear error for a parameter the constructor does not take."""
        accepted = self.parameters(name)
        for key in params:
            if key not in accepted:
                close = difflib.get_close_matches(key, list(accepted), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(
                    f"{self.kind} {name!r} takes no parameter {key!r}{hint} (it takes: {', '.join(accepted) or 'none'})"
                )

    def build(self, name: str, **params):
        self.check_params(name, params)
        return self.get(name)(**params)

    def _entry_points(self) -> dict[str, str]:
        return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=self.group)}

    def _warn_if_shadowed(self, name: str) -> None:
        if name in self._targets or name in self._warned:
            return
        other = self._entry_points().get(name)
        if other is not None:
            self._warned.add(name)
            warnings.warn(
                f"{self.kind} {name!r} is built in, and an installed package also declares an entry point "
                f"{name!r} -> {other} (group {self.group}); the built-in is used: rename the entry point, "
                f"or name that code by its import path",
                ShadowedPluginWarning,
                stacklevel=3,
            )

    def _load(self, target: str, name: str):
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001 - any failure of user code to import is the user's to see
            raise PluginError(
                f"{self.kind} {name!r}: cannot import module {module_name!r} ({type(error).__name__}: {error})"
            ) from None
        obj = module
        for part in filter(None, attribute.split(".")):
            if not hasattr(obj, part):
                raise PluginError(f"{self.kind} {name!r}: module {module_name!r} has no attribute {attribute!r}")
            obj = getattr(obj, part)
        if self._check is not None:
            self._check(name, obj)
        return obj


def is_import_path(name: str) -> bool:
    """``package.module:attribute`` or a dotted ``package.module`` (registry keys have neither ':' nor '.')."""
    return isinstance(name, str) and (":" in name or "." in name)
