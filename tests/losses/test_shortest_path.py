"""The batched grid shortest-path solver against scipy's Dijkstra."""
import numpy as np
import pytest
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from losses import shortest_paths
from losses.shortest_path import NEIGHBOURS


def scipy_path(costs: np.ndarray):
    """Vertex costs as edge weights into each cell (plus the start cell): cost and 0/1 path mask."""
    h, w = costs.shape
    index = lambda y, x: y * w + x
    rows, cols, weights = [], [], []
    for y in range(h):
        for x in range(w):
            for dy, dx in NEIGHBOURS:
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    rows.append(index(y, x))
                    cols.append(index(y + dy, x + dx))
                    weights.append(costs[y + dy, x + dx])
    graph = csr_matrix((weights, (rows, cols)), shape=(h * w, h * w))
    dist, pred = dijkstra(graph, indices=0, return_predecessors=True)
    mask = np.zeros((h, w))
    node = index(h - 1, w - 1)
    while node >= 0:
        mask[node // w, node % w] = 1
        node = pred[node]
    return dist[-1] + costs[0, 0], mask


@pytest.mark.parametrize("shape", [(12, 12), (5, 9), (1, 4), (3, 1)])
def test_equal_to_dijkstra_on_random_grids(shape):
    """Continuous random costs: the optimum is unique (almost surely), so costs and paths must match."""
    torch.manual_seed(sum(shape))
    costs = torch.rand(64, *shape, dtype=torch.float64) * 10 + 0.1
    paths, path_costs = shortest_paths(costs)
    for b in range(len(costs)):
        cost, mask = scipy_path(costs[b].numpy())
        assert path_costs[b].item() == pytest.approx(cost, rel=1e-12)
        np.testing.assert_array_equal(paths[b].numpy(), mask)
    torch.testing.assert_close((paths * costs).sum((1, 2)), path_costs)


def test_warcraft_terrain_costs_with_ties():
    """The five terrain costs make ties common: optimal costs must match and the returned path must cost that."""
    torch.manual_seed(0)
    terrain = torch.tensor([0.8, 1.2, 5.3, 7.7, 9.2], dtype=torch.float64)
    costs = terrain[torch.randint(5, (200, 12, 12))]
    paths, path_costs = shortest_paths(costs)
    expected = torch.tensor([scipy_path(c.numpy())[0] for c in costs], dtype=torch.float64)
    torch.testing.assert_close(path_costs, expected)
    torch.testing.assert_close((paths * costs).sum((1, 2)), expected)
    assert paths[:, 0, 0].all() and paths[:, -1, -1].all()


def test_path_is_connected_in_the_8_neighbourhood():
    torch.manual_seed(1)
    paths, _ = shortest_paths(torch.rand(32, 12, 12) + 0.01)
    for mask in paths:
        cells = {tuple(p) for p in mask.nonzero().tolist()}
        reached, frontier = {(0, 0)}, [(0, 0)]
        while frontier:
            y, x = frontier.pop()
            for dy, dx in NEIGHBOURS:
                if (y + dy, x + dx) in cells and (y + dy, x + dx) not in reached:
                    reached.add((y + dy, x + dx))
                    frontier.append((y + dy, x + dx))
        assert reached == cells and (11, 11) in cells


def test_hand_made_grid():
    """A 3x3 grid whose cheap cells form a diagonal: path = diagonal, cost 1 + 1 + 1."""
    costs = torch.full((1, 3, 3), 9.0)
    costs[0, [0, 1, 2], [0, 1, 2]] = 1.0
    paths, path_costs = shortest_paths(costs)
    assert paths[0].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]] and path_costs.item() == 3.0


@pytest.mark.parametrize("bad, message", [(torch.rand(12, 12), r"costs must be \(B, H, W\)"),
                                          (-torch.rand(1, 3, 3), "non-negative"),
                                          (torch.full((1, 2, 2), float("nan")), "finite")])
def test_bad_costs(bad, message):
    with pytest.raises(ValueError, match=message):
        shortest_paths(bad)
