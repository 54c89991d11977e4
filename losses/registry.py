"""The loss registry: the names study files give losses (built-ins, import paths, entry points)."""

from __future__ import annotations

from registry import Registry


def check_loss(name: str, loss) -> None:
    """A loss is a callable (class or factory) whose keyword parameters are its study parameters; ``variants``,
    if declared, lists some of baseline / hessian / fisher; ``task_kind``, if declared, is a string."""
    if not callable(loss):
        raise TypeError(
            f"loss {name!r} must be a class or a function that builds the per-sample loss, got {type(loss).__name__}"
        )
    unknown = sorted(set(getattr(loss, "variants", ())) - {"baseline", "hessian", "fisher"})
    if unknown:
        raise TypeError(f"loss {name!r} declares unknown variants {unknown} (valid: baseline, hessian, fisher)")
    kind = getattr(loss, "task_kind", None)
    if kind is not None and not isinstance(kind, str):
        raise TypeError(f"loss {name!r}: task_kind must be a string naming the task kind it serves, got {kind!r}")


LOSSES = Registry("loss", "newton_losses.losses", check_loss)
