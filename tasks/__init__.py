"""Task trainables: one file per task, each with ``train(config, report, resume=None)``."""
from losses.registry import Registry

from . import ranking

TASKS = Registry("task")
TASKS.register("ranking")(ranking)

__all__ = ["TASKS", "ranking"]
