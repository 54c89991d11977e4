"""The grid graph of the Warcraft benchmark (SPEC 3 and 5): cells of an H x W map, each linked to its 8 neighbours;
paths go from the top-left to the bottom-right cell and cost the sum of the cells they visit, both ends included."""

# (dy, dx) of the 8 neighbours; among equally good ones the first listed is walked back to (both solvers).
NEIGHBOURS = ((-1, -1), (-1, 0), (0, -1), (-1, 1), (1, -1), (1, 0), (0, 1), (1, 1))
