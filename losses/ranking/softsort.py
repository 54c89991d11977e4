"""SoftSort (Prillo & Eisenschlos, ICML 2020) relaxed sorting, as a per-sample ranking loss."""

from __future__ import annotations

import torch

from ..registry import LOSSES
from .permutation import PermutationLoss


def softsort_logits(s: torch.Tensor, tau: float) -> torch.Tensor:
    """SoftSort's logits ``-|sort(s)_r - s_j| / tau`` (sorted descending); the row-wise softmax is its matrix."""
    sorted_s = torch.sort(s, dim=-1, descending=True).values
    return -(sorted_s.unsqueeze(-1) - s.unsqueeze(-2)).abs() / tau


def softsort(s: torch.Tensor, tau: float) -> torch.Tensor:
    """SoftSort's matrix ``softmax(-|sort(s)_r - s_j| / tau)`` row-wise, sorted descending."""
    return torch.softmax(softsort_logits(s, tau), dim=-1)


@LOSSES.register("softsort")
class SoftSortLoss(PermutationLoss):
    """BCE of SoftSort's relaxed permutation against the true one (paper: tau = 0.1)."""

    def __init__(self, tau: float = 0.1):
        self.tau = tau

    def rank_logits(self, scores: torch.Tensor) -> torch.Tensor:
        # Descending rows of softsort(-s) are ascending ranks of s.
        return softsort_logits(-scores, self.tau)
