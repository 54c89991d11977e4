"""The shortest-path losses of the paper's Tables 2 and 3 on the Warcraft grid, and the exact solver they use.

``solver.py`` is the exact batched solver (``dijkstra.py`` on the CPU, a min-plus relaxation elsewhere);
``bellman_ford.py`` is the relaxed Bellman-Ford of Table 2; ``ss_loss.py``, ``ss_algorithm.py`` and
``po_fy.py`` are the stochastic losses of Table 3, which estimate their own gradient and curvature
(``estimated.py``, ``smoothing.py``). Each loss file registers one loss.
"""

from .solver import shortest_paths

__all__ = ["shortest_paths"]
