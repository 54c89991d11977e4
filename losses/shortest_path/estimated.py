"""Shared pieces of the shortest-path loss families: the solver on flattened predicted costs."""

from __future__ import annotations

import math

import torch

from .solver import shortest_paths


def solve_flat(costs: torch.Tensor) -> torch.Tensor:
    """(K, H*W) predicted costs -> (K, H*W) 0/1 shortest paths on the square grid.

    Predicted (and perturbed) costs may be negative; the solver needs non-negative vertex costs, so
    they are clamped at 0 (a cell can be free, never rewarding) before solving.
    """
    side = math.isqrt(costs.shape[1])
    if side * side != costs.shape[1]:
        raise ValueError(f"shortest-path losses take flattened square grids, got {costs.shape[1]} outputs")
    paths, _ = shortest_paths(costs.detach().clamp_min(0).view(-1, side, side))
    return paths.view(costs.shape)


class EstimatedLoss:
    """A loss that estimates its own gradient and curvature: ``estimates(y, target, hessian)`` returns
    (values (N,), gradient (N, m), mean Hessian (m, m) or None). ``variants`` lists the methods it supports."""

    task_kind = "shortest_path"
    variants: tuple[str, ...] = ("baseline", "hessian", "fisher")

    def __init__(self, sigma: float = 0.1, samples: int = 10):
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        if not (isinstance(samples, int) and samples >= 1):
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        self.sigma, self.samples = sigma, samples

    def estimates(self, y, target, hessian=False):
        raise NotImplementedError

    def __call__(self, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.estimates(y, target)[0]
