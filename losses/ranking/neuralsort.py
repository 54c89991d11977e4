"""NeuralSort (Grover et al., ICLR 2019) relaxed sorting, as a per-sample ranking loss."""

from __future__ import annotations

import torch

from ..registry import LOSSES
from .permutation import PermutationLoss


def neuralsort_logits(s: torch.Tensor, tau: float) -> torch.Tensor:
    """NeuralSort's logits for (N, n) scores: ``((n + 1 - 2 (r + 1)) s - A_s 1) / tau`` in row r, with
    ``A_s[i, j] = |s_i - s_j|``; the row-wise softmax is NeuralSort's matrix."""
    n = s.shape[-1]
    pairwise = (s.unsqueeze(-1) - s.unsqueeze(-2)).abs().sum(-1)  # (A_s 1)_j
    scale = n + 1 - 2 * torch.arange(1, n + 1, dtype=s.dtype, device=s.device)
    return (scale.view(n, 1) * s.unsqueeze(-2) - pairwise.unsqueeze(-2)) / tau


def neuralsort(s: torch.Tensor, tau: float) -> torch.Tensor:
    """NeuralSort's unimodal row-stochastic matrix; row r approaches the one-hot of the (r + 1)-th *largest*
    score (descending)."""
    return torch.softmax(neuralsort_logits(s, tau), dim=-1)


@LOSSES.register("neuralsort")
class NeuralSortLoss(PermutationLoss):
    """BCE of NeuralSort's relaxed permutation against the true one (paper: tau = 1.0)."""

    def __init__(self, tau: float = 1.0):
        self.tau = tau

    def rank_logits(self, scores: torch.Tensor) -> torch.Tensor:
        # Descending rows of neuralsort(-s) are ascending ranks of s.
        return neuralsort_logits(-scores, self.tau)
