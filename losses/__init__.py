"""Newton losses and the algorithmic losses they wrap (Petersen et al., NeurIPS 2024).

Every module of this package is imported here, so a loss file that registers itself (``@LOSSES.register``) is
all it takes to add a built-in loss family.
"""
import importlib
import pkgutil

from .newton import (CURVATURES, fisher_solve, inject_fisher, mean_hessian, newton_loss, newton_objective, newton_target,
                     newton_target_from, per_sample_gradients)
from .permutation import per_set_bce, ranking_accuracy, true_permutation
from .registry import LOSSES, Registry
from .shortest_path import shortest_paths
from .variants import VARIANTS, make_objective

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # fill the registry

__all__ = [
    "CURVATURES", "LOSSES", "Registry", "VARIANTS", "fisher_solve", "inject_fisher", "make_objective",
    "mean_hessian", "newton_loss", "newton_objective", "newton_target", "newton_target_from", "per_sample_gradients",
    "per_set_bce", "ranking_accuracy", "shortest_paths", "true_permutation",
]
