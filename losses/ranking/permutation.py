"""Shared pieces of the ranking losses: the hard permutation matrix, BCE, and ranking metrics.

Orientation (one for all four ranking losses, diffsort's): ``P[b, i, r]`` is the probability
that element i of set b has ascending rank r, so ``P @ one_hot`` rows sum over ranks and
``x_sorted = x @ P`` is ascending.

The loss is the BCE between P and the true permutation Q, averaged over the n x n entries. Where the
relaxation saturates (an entry of P rounds to 0 or 1 while Q says the opposite: a confidently wrong network)
the BCE must keep its gradient, since that is where training needs one most:

- NeuralSort and SoftSort give P as row-wise softmaxes of logits, so ``log p`` and ``log(1 - p)`` are computed
  exactly from the logits (relative to each row's maximum: ``per_set_bce_from_logits``); the loss
  and its first two derivatives stay finite and correct at any margin.
- The sorting networks give P itself (products of comparator mixings). Their BCE is
  ``torch.nn.functional.binary_cross_entropy``, exactly what ``diffsort``'s experiments train with
  (``torch.nn.BCELoss``): logs clamped at -100, and the gradient ``(p - q) / max(p (1 - p), 1e-12)``, which
  stays non-zero for a saturated wrong entry; it has a double backward, for the Hessian variant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def true_permutation(values: torch.Tensor) -> torch.Tensor:
    """(N, n) values -> (N, n, n) hard permutation matrix, ``Q[b, i, r] = 1`` iff element i has rank r.

    Ties are ranked stably (the earlier element gets the lower rank).
    """
    order = torch.argsort(values, dim=-1, stable=True)  # order[b, r] = element at rank r
    ranks = torch.argsort(order, dim=-1, stable=True)  # ranks[b, i] = rank of element i
    dtype = values.dtype if values.is_floating_point() else torch.float32
    # a comparison, not one_hot: it also works under torch.func transforms
    return (ranks.unsqueeze(-1) == torch.arange(values.shape[-1], device=values.device)).to(dtype)


def per_set_bce(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """BCE between relaxed P and hard Q given as probabilities, ``torch.nn.BCELoss``'s semantics, averaged over
    the n x n entries of each set -> (N,)."""
    return F.binary_cross_entropy(p, q, reduction="none").mean((-2, -1))


def per_set_bce_from_logits(logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """BCE between ``softmax(logits, -1)`` (row-stochastic, (N, n, n)) and hard Q of the same orientation,
    averaged over the n x n entries -> (N,), with exact logs. Each row is taken relative to its maximum c (held
    constant) at its argmax a: ``d = l - c`` (``d_a = 0``, exactly 0 for a tie too), ``s = logsumexp_{k != a} d_k``
    and ``t = logaddexp(d_a, s) = d_a + softplus(s - d_a) = logsumexp_k l_k - c``:

        log p_j      = d_j - t
        log(1 - p_j) = log1p(-p_j)      for j != a, where p_j <= 1/2 (d_j <= d_a and t >= logaddexp(d_j, d_a))
        log(1 - p_a) = s - t

    No difference of nearly equal numbers at any scale; O(n^2) per set; the same function as the log-sum-exp
    over each row's other entries.
    """
    argmax = logits.argmax(-1, keepdim=True)
    is_argmax = torch.arange(logits.shape[-1], device=logits.device) == argmax  # not one_hot: works under torch.func
    d = logits - logits.amax(-1, keepdim=True).detach()  # a constant shift cancels in every line above
    s = d.masked_fill(is_argmax, float("-inf")).logsumexp(-1, keepdim=True)
    d_a = d.gather(-1, argmax)  # 0, but it carries l_a's derivative
    t = d_a + F.softplus(s - d_a)  # logaddexp(d_a, s); torch's logaddexp has no stable second derivative
    log_p = d - t
    # p = 0 at the argmax keeps log1p's unused branch finite there, and so its gradient
    log_1mp = torch.where(is_argmax, s - t, torch.log1p(-log_p.exp().masked_fill(is_argmax, 0)))
    return -(q * log_p + (1 - q) * log_1mp).mean((-2, -1))


class PermutationLoss:
    """A ranking loss: per-set BCE between a relaxed permutation of the scores and the true permutation.

    Subclasses give the relaxation, either as ``permutation(scores)`` (N, n, n) probabilities, or, when P is a
    row-wise softmax, as ``rank_logits(scores)``: logits L with ``P[b, i, r] = softmax(L[b, r, :])[i]`` (rows
    of L are ranks), from which the BCE is computed with exact logs. ``loss(scores, values)`` maps (N, n)
    scores and values to (N,) losses.
    """

    task_kind = "ranking"
    variants = ("baseline", "hessian", "fisher")

    def permutation(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.rank_logits(scores), dim=-1).transpose(-2, -1)

    def rank_logits(self, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        q = true_permutation(values).to(scores.dtype)
        if type(self).rank_logits is not PermutationLoss.rank_logits:
            return per_set_bce_from_logits(self.rank_logits(scores), q.transpose(-2, -1))
        return per_set_bce(self.permutation(scores), q)


def ranking_accuracy(scores: torch.Tensor, values: torch.Tensor) -> tuple[float, float]:
    """Exact-match and element-wise ranking accuracy (diffsort's metric).

    ``acc = argsort(values) == argsort(scores)``; exact match is ``acc.all(-1).mean()``,
    element-wise is ``acc.mean()``.
    """
    acc = torch.argsort(values, dim=-1, stable=True) == torch.argsort(scores, dim=-1, stable=True)
    return acc.all(-1).float().mean().item(), acc.float().mean().item()
