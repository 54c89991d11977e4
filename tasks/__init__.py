"""Task trainables: one file per task, each meeting the task contract (``tasks/contract.py``)."""

from registry import Registry

from .contract import Task, check_task

TASKS = Registry("task", "newton_losses.tasks", check_task)

from . import cvxpy_relu, ranking, shortest_path  # noqa: E402 (they use the losses, which are registered first)

TASKS.register("ranking")(ranking)
TASKS.register("shortest_path")(shortest_path)
TASKS.register("cvxpy_relu")(cvxpy_relu)

__all__ = ["TASKS", "Task", "check_task", "cvxpy_relu", "ranking", "shortest_path"]
