"""The ranking losses of the paper's Table 1: a relaxed permutation matrix compared with the true one by BCE.

NeuralSort and SoftSort (row-wise softmaxes) and the logistic and Cauchy differentiable sorting networks
(``diffsort``), all in one orientation (``permutation.py``). Each file registers one loss.
"""

from .permutation import per_set_bce, ranking_accuracy, true_permutation

__all__ = ["per_set_bce", "ranking_accuracy", "true_permutation"]
