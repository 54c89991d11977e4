"""Differentiable top-k classification loss (Petersen et al., "Differentiable Top-k Classification Learning",
ICML 2022): the class scores go through a differentiable sorting network, which gives for every class the
probability of each rank; the loss is the BCE of the probability that the true class is among the k best."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffsort import get_sorting_network, sort


class DiffSortTopKLoss:
    """Per-sample ``-log P(true class ranks among the top k)`` through an odd-even differentiable sorting network.

    ``loss(scores, labels)``: scores (N, C) class scores (the model's output), labels (N, C) one-hot; returns
    (N,). ``P[b, i, r]`` (diffsort) is the probability that class i lands at ascending rank r, so the top k are
    the ranks C - k .. C - 1. The BCE is torch's (``torch.nn.BCELoss``), which keeps a gradient where the
    network saturates.
    """

    task_kind = "topk_classification"  # held to tasks of this kind (a loss declaring none fits any)
    variants = ("baseline", "hessian", "fisher")  # every Newton variant applies: the loss is smooth in the scores

    def __init__(self, k: int = 2, beta: float = 10.0, distribution: str = "logistic"):
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if distribution not in ("logistic", "cauchy"):
            raise ValueError(f"distribution must be 'logistic' or 'cauchy', got {distribution!r}")
        self.k, self.beta, self.distribution = k, beta, distribution
        self._networks: dict[tuple[int, str], list] = {}

    def top_k_probability(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        classes = scores.shape[-1]
        if self.k > classes:
            raise ValueError(f"k = {self.k} exceeds the {classes} classes")
        key = (classes, str(scores.device))
        if key not in self._networks:
            self._networks[key] = get_sorting_network("odd_even", classes, scores.device)
        _, p = sort(self._networks[key], scores, steepness=self.beta, distribution=self.distribution)
        in_top_k = p[..., classes - self.k :].sum(-1)  # (N, C): probability that class i is among the k best
        return (in_top_k * labels).sum(-1).clamp(0.0, 1.0)

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        p = self.top_k_probability(scores, labels)
        return F.binary_cross_entropy(p, torch.ones_like(p), reduction="none")
