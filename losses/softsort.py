"""SoftSort (Prillo & Eisenschlos, ICML 2020) relaxed sorting, as a per-sample ranking loss."""
from __future__ import annotations

import torch

from .permutation import PermutationLoss
from .registry import LOSSES


def softsort(s: torch.Tensor, tau: float) -> torch.Tensor:
    """SoftSort's matrix ``softmax(-|sort(s)_r - s_j| / tau)`` row-wise, sorted descending."""
    sorted_s = torch.sort(s, dim=-1, descending=True).values
    return torch.softmax(-(sorted_s.unsqueeze(-1) - s.unsqueeze(-2)).abs() / tau, dim=-1)


@LOSSES.register("softsort")
class SoftSortLoss(PermutationLoss):
    """BCE of SoftSort's relaxed permutation against the true one (paper: tau = 0.1)."""

    def __init__(self, tau: float = 0.1):
        self.tau = tau

    def permutation(self, scores: torch.Tensor) -> torch.Tensor:
        # Descending rows of softsort(-s) are ascending ranks of s; transpose to [element, rank].
        return softsort(-scores, self.tau).transpose(-2, -1)
