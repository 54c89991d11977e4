"""Monotonic Cauchy differentiable sorting network (diffsort, odd-even, distribution "cauchy")."""

from ..registry import LOSSES
from .sorting_network import SortingNetworkLoss


@LOSSES.register("cauchy_dsn")
class CauchyDSNLoss(SortingNetworkLoss):
    """Per-sample BCE through a Cauchy odd-even sorting network; paper: beta = 10 (n = 5), 100 (n = 10)."""

    distribution = "cauchy"
