"""Logistic differentiable sorting network (diffsort, odd-even, distribution "logistic")."""

from ..registry import LOSSES
from .sorting_network import SortingNetworkLoss


@LOSSES.register("logistic_dsn")
class LogisticDSNLoss(SortingNetworkLoss):
    """Per-sample BCE through a logistic odd-even sorting network; paper: beta = 10 (n = 5, 10)."""

    distribution = "logistic"
