"""Name -> constructor tables for the YAML names of losses and tasks (one per extension point)."""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable


class Registry:
    """A table of constructors keyed by the name study files use."""

    def __init__(self, kind: str):
        self.kind = kind
        self._table: dict[str, Callable] = {}

    def register(self, name: str):
        """Decorator: ``@LOSSES.register("neuralsort")``."""
        def add(obj):
            if name in self._table:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._table[name] = obj
            return obj
        return add

    def names(self) -> list[str]:
        return sorted(self._table)

    def get(self, name: str) -> Callable:
        if name not in self._table:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}{hint} (valid: {', '.join(self.names())})")
        return self._table[name]

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


LOSSES = Registry("loss")
