"""Shared pieces of the ranking losses: the hard permutation matrix, BCE, and ranking metrics.

Orientation (one for all four ranking losses, diffsort's): ``P[b, i, r]`` is the probability
that element i of set b has ascending rank r, so ``P @ one_hot`` rows sum over ranks and
``x_sorted = x @ P`` is ascending.
"""
from __future__ import annotations

import torch

BCE_FLOOR = 1e-12


def true_permutation(values: torch.Tensor) -> torch.Tensor:
    """(N, n) values -> (N, n, n) hard permutation matrix, ``Q[b, i, r] = 1`` iff element i has rank r.

    Ties are ranked stably (the earlier element gets the lower rank).
    """
    order = torch.argsort(values, dim=-1, stable=True)  # order[b, r] = element at rank r
    ranks = torch.argsort(order, dim=-1, stable=True)   # ranks[b, i] = rank of element i
    dtype = values.dtype if values.is_floating_point() else torch.float32
    # a comparison, not one_hot: it also works under torch.func transforms
    return (ranks.unsqueeze(-1) == torch.arange(values.shape[-1], device=values.device)).to(dtype)


def per_set_bce(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """BCE between relaxed P and hard Q, averaged over the n x n entries of each set -> (N,).

    Written out (not ``F.binary_cross_entropy``) so it is twice differentiable. Entries are
    floored at ``BCE_FLOOR`` = 1e-12 (torch's own BCE gradient clamp) before the log: saturated
    entries (common for sharp sorting networks) then give a finite loss and zero gradient, and
    the second derivative ``1/p^2`` stays finite in float32 (with a smaller floor the Hessian of
    the logistic DSN at n = 10 overflows).
    """
    return -(q * p.clamp_min(BCE_FLOOR).log() + (1 - q) * (1 - p).clamp_min(BCE_FLOOR).log()).mean((-2, -1))


class PermutationLoss:
    """A ranking loss: per-set BCE between ``self.permutation(scores)`` (N, n, n) and the true permutation.

    Subclasses give the relaxation; ``loss(scores, values)`` maps (N, n) scores and values to (N,) losses.
    """

    def permutation(self, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return per_set_bce(self.permutation(scores), true_permutation(values))


def ranking_accuracy(scores: torch.Tensor, values: torch.Tensor) -> tuple[float, float]:
    """Exact-match and element-wise ranking accuracy (diffsort's metric).

    ``acc = argsort(values) == argsort(scores)``; exact match is ``acc.all(-1).mean()``,
    element-wise is ``acc.mean()``.
    """
    acc = torch.argsort(values, dim=-1, stable=True) == torch.argsort(scores, dim=-1, stable=True)
    return acc.all(-1).float().mean().item(), acc.float().mean().item()
