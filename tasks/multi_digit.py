"""Sets of four-digit MNIST numbers (SPEC 5, after diffsort's experiment code).

Each of the 4 positions draws a digit image uniformly with replacement; the value is
sum_k 10^(3-k) digit_k (leading zeros allowed, so values are uniform on 0..9999); images are
scaled to [0, 1] and concatenated along the width into 28 x 112.
"""

from __future__ import annotations

import torch

PLACE_VALUES = torch.tensor([1000.0, 100.0, 10.0, 1.0], dtype=torch.float32)


class MultiDigitSets:
    """Draws (S, n, 1, 28, 112) image sets and their (S, n) values from one digit pool."""

    def __init__(self, images, labels, device: torch.device):
        self.images = torch.as_tensor(images, dtype=torch.float32, device=device) / 255.0
        self.labels = torch.as_tensor(labels, dtype=torch.float32, device=device)
        self.device = device

    def draw(self, num_sets: int, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.compose(self.draw_digits(num_sets, n, generator))

    def draw_digits(self, num_sets: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """(S, n, 4) indices into the pool: the four digits of each number of each set."""
        return torch.randint(len(self.labels), (num_sets, n, 4), generator=generator).to(self.device)

    def compose(self, digits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, n, 4) digit indices -> (S, n, 1, 28, 112) images and (S, n) values."""
        values = self.labels[digits] @ PLACE_VALUES.to(self.device)
        images = self.images[digits].permute(0, 1, 3, 2, 4).reshape(*digits.shape[:2], 1, 28, 112)
        return images, values


class FixedSets:
    """The same evaluation sets at every evaluation and in every run with this data seed, kept as digit indices
    (the reference's 10 000 test sets of 10 numbers are 1.3 GB as images) and composed a chunk at a time."""

    def __init__(self, pool: MultiDigitSets, num_sets: int, n: int, data_seed: int, split: str):
        generator = torch.Generator().manual_seed(hash_seed(data_seed, split))
        self.pool, self.digits = pool, pool.draw_digits(num_sets, n, generator)
        self.values = pool.labels[self.digits] @ PLACE_VALUES.to(pool.device)

    def chunks(self, size: int):
        """(images, values) of consecutive chunks of at most ``size`` sets."""
        for digits in self.digits.split(size):
            yield self.pool.compose(digits)


def hash_seed(seed: int, salt: str) -> int:
    """A stable (non-randomised) 63-bit seed from an int and a label."""
    value = seed * 1_000_003
    for char in salt:
        value = (value * 131 + ord(char)) % (2**63 - 1)
    return value
