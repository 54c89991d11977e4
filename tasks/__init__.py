"""Task trainables: one file per task, each with ``train(config, report, resume=None)``."""
from losses.registry import Registry

from . import ranking, shortest_path

TASKS = Registry("task")
TASKS.register("ranking")(ranking)
TASKS.register("shortest_path")(shortest_path)

__all__ = ["TASKS", "ranking", "shortest_path"]
