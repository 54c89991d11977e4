"""Newton losses and the algorithmic losses they wrap (Petersen et al., NeurIPS 2024).

The Newton-loss core is ``newton.py`` (Algorithms 1 and 2), ``variants.py`` (baseline / hessian / fisher behind
one callable) and ``system_monitor.py``; the loss families live in ``ranking/`` and ``shortest_path/``. Every
module below this package is imported here, so a loss file that registers itself (``@LOSSES.register``) is all
it takes to add a built-in loss.
"""

import importlib
import pkgutil

from .newton import (
    CURVATURES,
    fisher_solve,
    inject_fisher,
    mean_hessian,
    newton_loss,
    newton_objective,
    newton_target,
    newton_target_from,
    per_sample_gradients,
)
from .parameters import inject_fisher_per_sample
from .ranking import per_set_bce, ranking_accuracy, true_permutation
from .registry import LOSSES
from .shortest_path import shortest_paths
from .variants import VARIANTS, make_objective

for _module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
    importlib.import_module(_module.name)  # fill the registry

__all__ = [
    "CURVATURES",
    "LOSSES",
    "VARIANTS",
    "fisher_solve",
    "inject_fisher",
    "inject_fisher_per_sample",
    "make_objective",
    "mean_hessian",
    "newton_loss",
    "newton_objective",
    "newton_target",
    "newton_target_from",
    "per_sample_gradients",
    "per_set_bce",
    "ranking_accuracy",
    "shortest_paths",
    "true_permutation",
]
