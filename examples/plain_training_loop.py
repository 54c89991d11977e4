"""Newton losses in your own PyTorch training loop, without the tuner (paper Algorithms 1 and 2).

Any per-sample loss ``loss(y, target) -> (N,)`` of the model's outputs y (N, m) works. The two variants need
one line each:

- Fisher (Algorithm 2): ``loss(inject_fisher(y, lam), target).mean()`` and backpropagate as usual. The forward
  pass is unchanged; the backward pass replaces the gradient G reaching y by ``G (N G^T G + lam I)^-1``.
- Hessian (Algorithm 1): ``newton_loss(y, lambda v: loss(v, target), curvature="hessian", lam=lam)``, the
  convex ``mean_i 1/2 ||z_i - y_i||^2`` towards the regularised Newton target z; backpropagate it instead.

Run: ``python examples/plain_training_loop.py`` (a few seconds on a CPU): a linear model learns to rank
4-element sets through NeuralSort, once per variant, and prints the loss before and after.
"""

from __future__ import annotations

import torch

from losses import LOSSES, inject_fisher, newton_loss


def train(variant: str, lam: float = 1.0, steps: int = 200, seed: int = 0) -> tuple[float, float]:
    """Train a linear scorer on synthetic sets for ``steps`` Adam steps; returns (first, last) mean loss."""
    torch.manual_seed(seed)
    features, n = 8, 4
    truth = torch.randn(features)  # values are a hidden linear function of the features
    model = torch.nn.Linear(features, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    loss = LOSSES.build("neuralsort", tau=1.0)  # or any per-sample loss (y, target) -> (N,)
    history = []
    for _ in range(steps):
        x = torch.randn(32, n, features)
        values = x @ truth  # (32, n): only their order supervises
        y = model(x).squeeze(-1)  # (32, n) scores: the model's outputs
        if variant == "baseline":
            objective = loss(y, values).mean()
        elif variant == "fisher":  # Algorithm 2: one call in front of the loss
            objective = loss(inject_fisher(y, lam), values).mean()
        else:  # Algorithm 1: train on the Newton loss instead
            objective = newton_loss(y, lambda v: loss(v, values), curvature="hessian", lam=lam)
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
        history.append(loss(y.detach(), values).mean().item())  # the algorithmic loss, for every variant
    return sum(history[:10]) / 10, sum(history[-10:]) / 10


if __name__ == "__main__":
    for variant in ("baseline", "fisher", "hessian"):
        first, last = train(variant)
        print(f"{variant:8s} loss {first:.3f} -> {last:.3f}")
