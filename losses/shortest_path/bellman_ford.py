"""Relaxed Bellman-Ford on the grid (paper Section 4.2.1, Table 2, App. C), written with AlgoVision's primitives.

From the paper (App. C): AlgoVision's relaxation with inverse temperature ``beta`` = 10, ``n_iter`` = 18 ("number
iterations in for loop / max num iteration in algovision while loop"), t-conorm ``probabilistic``, a For or a
While loop; the relaxed path is compared with the true one by L1 or squared L2 (Table 2); variants baseline and
NL Fisher (the paper found the Hessian too expensive).

From the authors' AlgoVision example where the paper is silent (``Felix-Petersen/algovision`` at edbe2d2,
``examples/shortest_path.py``, ``get_shortest_path``):

- Distances, always a For loop of ``n_iter`` iterations: the start (top-left) is at distance 0, every other cell
  and the border at ``INF``. Each iteration gives every cell the soft minimum of its 8 neighbours' distances
  (the softmin(beta)-weighted mean, as AlgoVision's ``Min``; the cell's own distance does not take part) plus its
  own cost, then resets the start's distance to 0, so the start's cost enters nothing.
- Traceback, where the For/While switch acts: a unit mass starts at the goal (bottom-right). Each step first
  joins the mass into the path by the t-conorm (``probabilistic`` a + b - ab, ``yager_1`` min(1, a + b),
  ``hamacher`` (a + b + (p - 2)ab) / (1 + (p - 1)ab)), then moves each cell's mass to its neighbours by the softmin
  weights of the last distance iteration. The start's weights are not reset: mass that reaches the start moves on
  to the start's nearest neighbour and back. ``for``: ``n_iter`` steps. ``while``: AlgoVision's relaxed ``While``
  (the output mixes the states after each iteration by the probability that the loop stopped there; it stops
  early once that probability is below AlgoVision's 1e-5) on ``LEq`` (the start's path entry <= 1), i.e. it fades
  out once the path has reached the start.

Assumed: the While loop's cap is ``n_iter`` (App. C; the example leaves AlgoVision's default of 1024); the
predicted costs are clamped at 0 as for the other shortest-path losses (the example does not clamp); the loss
refuses ``n_iter`` below H - 1 (cells left at ``INF``: in float32 they lose their costs and, in the example too,
the gradients are NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from algovision import Algorithm, ArgMin, For, Input, LEq, Let, Output, Var, While

from ..registry import LOSSES

INF = 1e12  # the example's "infinite" distance; finite, since the soft minimum multiplies it by weights of 0
# (dy, dx) of the 8 neighbours, row by row: the example's order, so soft minima sum in the same order
NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
T_CONORMS = ("probabilistic", "yager_1", "hamacher")
LOOPS = ("for", "while")


def t_conorm_of(name: str, p: float | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """S(a, b) of the named t-conorm; ``yager_1`` is written 1 - relu(1 - a - b), whose gradient at a + b = 1 is 0
    as in the example."""
    if name == "probabilistic":
        return lambda a, b: a + b - a * b
    if name == "yager_1":
        return lambda a, b: 1 - F.relu(1 - a - b)
    if name == "hamacher":
        return lambda a, b: (a + b + (p - 2) * a * b) / (1 + (p - 1) * a * b)
    raise ValueError(f"t_conorm must be one of {', '.join(T_CONORMS)}, got {name!r}")


def _neighbours(t: torch.Tensor, fill: float) -> list[torch.Tensor]:
    """The 8 neighbours' values of every cell of (B, H, W), ``fill`` beyond the border."""
    h, w = t.shape[-2:]
    padded = F.pad(t, (1, 1, 1, 1), value=fill)
    return [padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in NEIGHBOURS]


def _start_at_zero(dist: torch.Tensor) -> torch.Tensor:
    """``dist`` (..., H, W) with the start's entry 0 and no gradient to it."""
    keep = torch.ones_like(dist)
    keep[..., 0, 0] = 0
    return dist * keep


def _one_hot_goal(costs: torch.Tensor) -> torch.Tensor:
    """(H, W): 1 at the goal, the bottom-right cell."""
    goal = costs.new_zeros(costs.shape[1:])
    goal[-1, -1] = 1
    return goal


def _step_back(position: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Move the mass of (B, H, W) cells to their neighbours by weights (B, H, W, 8); mass sent off the grid is lost."""
    h, w = position.shape[-2:]
    flow = F.pad(position.unsqueeze(-1) * weights, (0, 0, 1, 1, 1, 1))
    moved = 0.0
    for k, (dy, dx) in enumerate(NEIGHBOURS):  # the mass reaching (y, x) left (y - dy, x - dx)
        moved = moved + flow[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w, k]
    return moved


def relaxed_bellman_ford(
    beta: float = 10.0, n_iter: int = 18, loop: str = "for", t_conorm: str = "probabilistic", p: float | None = None
) -> Algorithm:
    """An AlgoVision ``Algorithm``: costs (B, H, W) -> relaxed path (B, H, W) from (0, 0) to (H-1, W-1), every
    tensor it creates on the costs' device and dtype (the module docstring gives the steps)."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be 'for' or 'while', got {loop!r}")
    soft_argmin, join = ArgMin(beta=beta), t_conorm_of(t_conorm, p)

    def relax(dist, costs):
        near = _neighbours(dist, INF)
        weights = soft_argmin(*near)
        return (weights * torch.stack(near, -1)).sum(-1) + costs, weights

    traceback = (
        Let("path", lambda path, position: join(path, position)),
        Let("position", lambda position, weights: _step_back(position, weights)),
    )
    walk = For("step", n_iter, *traceback) if loop == "for" else While(LEq(lambda path: path[:, 0, 0], 1.0), *traceback)
    return Algorithm(
        Input("costs"),
        Var("dist", lambda costs: _start_at_zero(costs.new_full(costs.shape[1:], INF))),
        Var("weights", lambda costs: costs.new_zeros((*costs.shape[1:], len(NEIGHBOURS)))),
        Var("position", _one_hot_goal),
        Var("path", lambda costs: costs.new_zeros(costs.shape[1:])),
        For("iteration", n_iter, Let(["dist", "weights"], relax), Let("dist", _start_at_zero)),
        walk,
        Output("path"),
        beta=beta,
        max_iter=n_iter,
    )


@LOSSES.register("bellman_ford")
class BellmanFordLoss:
    """Per-sample L1 (``norm="l1"``) or squared L2 (``"l2"``) between the relaxed and the true path; ``p`` is the
    Hamacher t-conorm's parameter (>= 0), for ``t_conorm="hamacher"`` only."""

    task_kind = "shortest_path"
    variants = ("baseline", "fisher")

    def __init__(
        self,
        beta: float = 10.0,
        n_iter: int = 18,
        loop: str = "for",
        t_conorm: str = "probabilistic",
        p: float | None = None,
        norm: str = "l1",
    ):
        if loop not in LOOPS:
            raise ValueError(f"loop must be 'for' or 'while', got {loop!r}")
        if t_conorm not in T_CONORMS:
            raise ValueError(f"t_conorm must be one of {', '.join(T_CONORMS)}, got {t_conorm!r}")
        if (t_conorm == "hamacher") != (p is not None):
            raise ValueError(
                f"p is the hamacher t-conorm's parameter: set it for t_conorm='hamacher' only "
                f"(got t_conorm={t_conorm!r}, p={p!r})"
            )
        if p is not None and not (isinstance(p, (int, float)) and p >= 0):
            raise ValueError(f"p must be a number >= 0, got {p!r}")
        if not (isinstance(beta, (int, float)) and 0 < beta < math.inf):
            raise ValueError(f"beta must be a positive number, got {beta!r}")
        if not isinstance(n_iter, int) or isinstance(n_iter, bool) or n_iter < 1:
            raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2' (squared L2), got {norm!r}")
        self.beta, self.n_iter, self.loop, self.t_conorm, self.p, self.norm = beta, n_iter, loop, t_conorm, p, norm
        self.algorithm = relaxed_bellman_ford(beta, n_iter, loop, t_conorm, p)

    def path(self, costs: torch.Tensor) -> torch.Tensor:
        """(N, H*W) costs of square maps -> (N, H*W) relaxed path."""
        side = math.isqrt(costs.shape[1])
        if side * side != costs.shape[1]:
            raise ValueError(f"costs must be (N, H*W) of square maps, got {tuple(costs.shape)}")
        if self.n_iter < side - 1:  # unreached cells keep INF; in float32 that drops their costs, gradients NaN
            raise ValueError(
                f"n_iter = {self.n_iter} leaves cells of a {side} x {side} map unreached (at least "
                f"{side - 1} distance iterations needed)"
            )
        return self.algorithm(costs.clamp_min(0).view(-1, side, side)).reshape(costs.shape)

    def __call__(self, costs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = self.path(costs) - target
        return diff.abs().sum(1) if self.norm == "l1" else diff.pow(2).sum(1)
