"""InjectFisher on a model's parameters (appendix G), not on its output.

Algorithm 2 acts on an (N, m) matrix whose row i only row i of the batch depends on. A shared parameter has no
such rows, so it is given some: ``n`` per-sample copies, one per sample (how a ``CvxpyLayer`` receives batched
parameters anyway), flattened and, for several tensors (a layer's weight and bias), concatenated into an (n, P)
matrix on which ``inject_fisher`` runs. Autograd's ``expand`` then sums the n transformed rows into the shared
parameter's gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .newton import _check_lam, inject_fisher


def inject_fisher_per_sample(param: torch.Tensor | Sequence[torch.Tensor], n: int, lam: float):
    """Per-sample copies of ``param`` whose backward is InjectFisher (Algorithm 2) on their flattened gradients.

    Forward: ``n`` copies of each tensor, stacked as (n, *shape); sample i of the batch must use copy i only.
    Backward, for a loss that is the *mean* over the n samples: the copies' gradients, flattened and concatenated
    over the tensors, form G (n, P) with row i = grad_theta l_i / n, and each tensor's gradient becomes the sum of
    the rows of ``G (n G^T G + lam I_P)^-1``. With g_i = n G_i the per-sample gradients and
    F = (1/n) sum_i g_i g_i^T the empirical Fisher, that sum is ``(F + lam I)^-1 mean_i g_i``: the
    Tikhonov-regularised Fisher Newton step on the mean loss (Definition 2 in parameter space; large λ gives the
    plain gradient / λ). The n x n Woodbury form (App. F) is used when n < P. A sum-reduced loss would need
    ``lam * n`` for the same step.

    Args:
        param: one tensor (e.g. a layer's weight), or several (weight and bias) treated as one vector.
        n: the batch size, >= 1.
        lam: Tikhonov strength, > 0.
    Returns:
        the copies, (n, *param.shape); a tuple of them, one per tensor, when ``param`` is a sequence.
    """
    _check_lam(lam)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (the batch size) must be a positive integer, got {n!r}")
    single = isinstance(param, torch.Tensor)
    params = [param] if single else list(param)
    if not params or not all(isinstance(p, torch.Tensor) for p in params):
        raise ValueError("param must be a tensor or a non-empty sequence of tensors")
    flat = torch.cat([p.reshape(1, -1).expand(n, -1) for p in params], dim=1)  # (n, P): row i is sample i's copy
    rows = inject_fisher(flat, lam).split([p.numel() for p in params], dim=1)
    copies = tuple(row.reshape(n, *p.shape) for row, p in zip(rows, params))
    return copies[0] if single else copies
