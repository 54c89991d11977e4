"""Squared error per sample, the loss of the appendix-G network (``tasks/cvxpy_relu.py``)."""

from __future__ import annotations

import torch

from ..registry import LOSSES


@LOSSES.register("mse")
class MSELoss:
    """``l_i(y_i) = mean_k (y_ik - t_ik)^2``; the training loss ``mean_i l_i`` is ``torch.nn.MSELoss()(y, t)``."""

    task_kind = "regression"

    def __call__(self, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, m) outputs and targets -> (N,) per-sample losses."""
        return (y - target).pow(2).mean(1)
