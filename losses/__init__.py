"""Newton losses and the algorithmic losses they wrap (Petersen et al., NeurIPS 2024)."""
from . import (bellman_ford, cauchy_dsn, logistic_dsn, neuralsort, po_fy, softsort, ss_algorithm,  # noqa: F401
               ss_loss)  # (fill the registry)
from .newton import (CURVATURES, fisher_solve, inject_fisher, mean_hessian, newton_loss, newton_objective, newton_target,
                     newton_target_from, per_sample_gradients)
from .permutation import per_set_bce, ranking_accuracy, true_permutation
from .registry import LOSSES, Registry
from .shortest_path import shortest_paths
from .variants import VARIANTS, make_objective

__all__ = [
    "CURVATURES", "LOSSES", "Registry", "VARIANTS", "fisher_solve", "inject_fisher", "make_objective",
    "mean_hessian", "newton_loss", "newton_objective", "newton_target", "newton_target_from", "per_sample_gradients",
    "per_set_bce", "ranking_accuracy", "shortest_paths", "true_permutation",
]
