"""The grid solver against scipy's Dijkstra, as a property over thousands of grids from several regimes.

The property (for any non-negative vertex costs, zeros and ties included): the returned distance is scipy's,
and the mask is the cell set of a simple 8-neighbour path from (0, 0) to the goal whose cost is that distance.
Both solvers are checked on every grid: the compiled Dijkstra that ``shortest_paths`` runs on the CPU, and the
torch relaxation it runs on GPUs (run here on the CPU); they must return the same paths, bit for bit.
"""

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from losses import shortest_paths
from losses.shortest_path.solver import solve_by_relaxation

# The 8-neighbourhood, written out here rather than imported from the code under test.
MOVES = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


@functools.lru_cache(maxsize=None)
def edges(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = [], []
    for y in range(h):
        for x in range(w):
            for dy, dx in MOVES:
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    rows.append(y * w + x)
                    cols.append((y + dy) * w + x + dx)
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def scipy_distance(costs: np.ndarray) -> float:
    """Vertex costs as the weight of every edge into a cell (explicit zeros are edges to scipy), plus the
    start cell's own cost."""
    h, w = costs.shape
    rows, cols = edges(h, w)
    graph = csr_matrix((costs.reshape(-1)[cols], (rows, cols)), shape=(h * w, h * w))
    return float(dijkstra(graph, indices=0)[-1] + costs[0, 0])


def scipy_path(costs: np.ndarray) -> np.ndarray:
    """scipy's own path mask (its predecessors), for grids whose optimum is unique."""
    h, w = costs.shape
    rows, cols = edges(h, w)
    graph = csr_matrix((costs.reshape(-1)[cols], (rows, cols)), shape=(h * w, h * w))
    _, pred = dijkstra(graph, indices=0, return_predecessors=True)
    mask, node = np.zeros(h * w), h * w - 1
    while node >= 0:
        mask[node] = 1
        node = pred[node]
    return mask.reshape(h, w)


def is_simple_path(mask: np.ndarray) -> bool:
    """Can the marked cells be visited one after the other, each an 8-neighbour of the last, from (0, 0) to the
    goal, each exactly once? (Depth-first search over the marked cells; masks here are path-shaped, so it is
    quick.)"""
    h, w = mask.shape
    cells = {(int(y), int(x)) for y, x in zip(*np.nonzero(mask))}
    start, goal = (0, 0), (h - 1, w - 1)
    if start not in cells or goal not in cells:
        return False
    if start == goal:
        return cells == {start}

    def extend(cell, seen):
        if cell == goal:
            return len(seen) == len(cells)
        for dy, dx in MOVES:
            nxt = (cell[0] + dy, cell[1] + dx)
            if nxt in cells and nxt not in seen:
                seen.add(nxt)
                if extend(nxt, seen):
                    return True
                seen.discard(nxt)
        return False

    return extend(start, {start})


def check_grids(costs: torch.Tensor) -> None:
    paths, path_costs = shortest_paths(costs)
    relaxed_paths, relaxed_costs = solve_by_relaxation(costs)
    assert torch.equal(paths, relaxed_paths) and torch.equal(path_costs, relaxed_costs), "the two solvers differ"
    assert paths.shape == costs.shape and path_costs.shape == costs.shape[:1]
    assert set(paths.unique().tolist()) <= {0.0, 1.0}
    scale = float(costs.abs().max()) * costs.shape[1] * costs.shape[2] + 1e-300
    for b in range(len(costs)):
        grid, mask = costs[b].numpy(), paths[b].numpy()
        expected = scipy_distance(grid)
        assert path_costs[b].item() == pytest.approx(expected, rel=1e-12, abs=1e-12 * scale), f"distance, grid {b}"
        assert float((mask * grid).sum()) == pytest.approx(path_costs[b].item(), rel=1e-12, abs=1e-12 * scale), (
            f"the path's cost is not the distance, grid {b}:\n{grid}\n{mask}"
        )
        assert is_simple_path(mask), f"not a simple path from start to goal, grid {b}:\n{grid}\n{mask}"


def regime(name: str, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Random non-negative costs of one kind."""
    u = torch.rand(shape, generator=g, dtype=torch.float64)
    if name == "clamped":  # what training solves: predicted (or perturbed) costs clamped at 0
        return torch.randn(shape, generator=g, dtype=torch.float64).clamp_min(0)
    if name == "sparse_zeros":
        return torch.where(u < 0.6, 0.0, 10 * torch.rand(shape, generator=g, dtype=torch.float64))
    if name == "integer_ties":
        return torch.randint(0, 3, shape, generator=g).double()
    if name == "terrain":
        return torch.tensor([0.8, 1.2, 5.3, 7.7, 9.2], dtype=torch.float64)[torch.randint(5, shape, generator=g)]
    if name == "terrain_float16":  # the real set's weights are float16
        costs = torch.tensor([0.8, 1.2, 5.3, 7.7, 9.2])[torch.randint(5, shape, generator=g)]
        return costs.half().double()
    if name == "continuous":
        return 0.1 + 10 * u
    if name == "tiny":
        return 1e-9 * u
    if name == "huge":
        return 1e9 * u
    if name == "all_zero":
        return torch.zeros(shape, dtype=torch.float64)
    raise ValueError(name)


REGIMES = [
    "clamped",
    "sparse_zeros",
    "integer_ties",
    "terrain",
    "terrain_float16",
    "continuous",
    "tiny",
    "huge",
    "all_zero",
]


@pytest.mark.parametrize("name", REGIMES)
def test_paths_are_exact_on_random_12x12_grids(name):
    """500 grids of 12 x 12 per regime (4 500 in all)."""
    g = torch.Generator().manual_seed(REGIMES.index(name))
    check_grids(regime(name, (500, 12, 12), g))


@pytest.mark.parametrize("name", REGIMES)
def test_paths_are_exact_on_random_shapes(name):
    """Non-square and degenerate grids (1 x 1, single rows and columns)."""
    g = torch.Generator().manual_seed(100 + REGIMES.index(name))
    for shape in [(1, 1), (1, 7), (6, 1), (2, 2), (3, 9), (9, 4), (16, 16)]:
        check_grids(regime(name, (40, *shape), g))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 9).flatmap(
        lambda h: st.integers(1, 9).flatmap(
            lambda w: st.lists(
                st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.0, 0.5, 1e-3, 7.7]), min_size=w, max_size=w),
                min_size=h,
                max_size=h,
            )
        )
    )
)
def test_paths_are_exact_on_hypothesis_grids(grid):
    """Hypothesis looks for a counter-example among small grids built of zeros and a few repeated costs."""
    check_grids(torch.tensor([grid], dtype=torch.float64))


def test_the_audit_grid_whose_walk_back_cycled():
    """Reported: the least-distance walk back cycled between zero-cost cells and returned 4 cells, not
    containing (0, 0), of cost 1 for a distance of 2. The only optimal path is (0,0) (1,0) (2,1) (1,2) (2,3)
    (3,3): costs 1 + 0 + 0 + 0 + 0 + 1 = 2."""
    costs = torch.tensor([[[1, 5, 0, 0], [0, 5, 0, 0], [5, 0, 5, 0], [0, 5, 5, 1]]], dtype=torch.float64)
    paths, path_costs = shortest_paths(costs)
    assert path_costs.item() == 2.0
    assert (paths[0] * costs[0]).sum().item() == 2.0
    assert is_simple_path(paths[0].numpy())


@pytest.mark.parametrize("shape", [(12, 12), (5, 9), (1, 4), (3, 1)])
def test_equal_to_dijkstras_own_path_when_the_optimum_is_unique(shape):
    """Continuous random costs: the optimum is unique (almost surely), so the masks themselves must match."""
    torch.manual_seed(sum(shape))
    costs = torch.rand(64, *shape, dtype=torch.float64) * 10 + 0.1
    paths, _ = shortest_paths(costs)
    for b in range(len(costs)):
        np.testing.assert_array_equal(paths[b].numpy(), scipy_path(costs[b].numpy()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_lower_precision_inputs_keep_their_dtype(dtype):
    costs = torch.rand(8, 12, 12).to(dtype)
    paths, path_costs = shortest_paths(costs)
    assert paths.dtype == dtype and path_costs.dtype == dtype
    check_grids(costs.double())


def test_hand_made_grid():
    """A 3x3 grid whose cheap cells form a diagonal: path = diagonal, cost 1 + 1 + 1."""
    costs = torch.full((1, 3, 3), 9.0)
    costs[0, [0, 1, 2], [0, 1, 2]] = 1.0
    paths, path_costs = shortest_paths(costs)
    assert paths[0].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]] and path_costs.item() == 3.0


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(12, 12), r"costs must be \(B, H, W\)"),
        (-torch.rand(1, 3, 3), "non-negative"),
        (torch.full((1, 2, 2), float("nan")), "finite"),
    ],
)
def test_bad_costs(bad, message):
    with pytest.raises(ValueError, match=message):
        shortest_paths(bad)
