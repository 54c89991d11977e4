"""Differentiable sorting networks (Petersen et al., 2021/2022) through the ``diffsort`` library."""

from __future__ import annotations

import torch
from diffsort import get_sorting_network, sort

from .permutation import PermutationLoss


class SortingNetworkLoss(PermutationLoss):
    """BCE of an odd-even differentiable sorting network's permutation against the true one.

    diffsort returns ``P[b, i, r]`` = probability that element i lands at ascending rank r,
    the orientation of :mod:`losses.permutation`.
    """

    distribution: str

    def __init__(self, beta: float = 10.0):
        self.beta = beta
        self._networks: dict[tuple[int, str], list] = {}

    def permutation(self, scores: torch.Tensor) -> torch.Tensor:
        key = (scores.shape[-1], str(scores.device))
        if key not in self._networks:
            self._networks[key] = get_sorting_network("odd_even", key[0], scores.device)
        return sort(self._networks[key], scores, steepness=self.beta, distribution=self.distribution)[1]
