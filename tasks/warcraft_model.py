"""CombResnet18 (Vlastelica et al. 2020; SPEC 5): the first block of ResNet18 -> a 12 x 12 cost map.

conv1 (3->64, 7x7, stride 2, pad 3, no bias) -> bn1 -> ReLU -> maxpool(3, 2, 1) -> layer1 (two basic
blocks of 64 channels) -> AdaptiveMaxPool2d((12, 12)) -> mean over channels. Written with torch layers
(no torchvision); inputs are normalised per channel with the training maps' mean and std.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with batch norm and an identity shortcut."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class CombResnet18(nn.Module):
    """(B, 96, 96, 3) uint8 maps -> (B, 12, 12) predicted vertex costs (unconstrained sign)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, grid: int = 12):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(), BasicBlock())
        self.pool = nn.AdaptiveMaxPool2d((grid, grid))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        x = (maps.permute(0, 3, 1, 2).float() - self.mean) / self.std
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.pool(self.layer1(x)).mean(1)


def channel_stats(maps, chunk: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std of (N, H, W, 3) uint8 training maps.

    From each channel's exact counts of the 256 byte values, taken ``chunk`` maps at a time: no float64 copy of
    the maps (2.2 GB for the full set, in every trial), and the same float32 numbers as the mean and std of that
    copy (the mean is exact before its one rounding; the std differs far below float32's resolution).
    """
    array = maps.cpu().numpy() if torch.is_tensor(maps) else np.asarray(maps)
    if array.dtype != np.uint8:
        x = torch.as_tensor(np.asarray(array, dtype=np.float64)).reshape(-1, 3)
        return x.mean(0).float(), x.std(0).float()
    counts = np.zeros((3, 256), np.int64)
    for start in range(0, len(array), chunk):
        part = array[start : start + chunk]
        for channel in range(3):
            counts[channel] += np.bincount(part[..., channel].ravel(), minlength=256)
    counts = counts.astype(np.float64)  # exact: below 2**53
    values = np.arange(256.0)
    mean = counts @ values / counts[0].sum()
    var = (counts * (values - mean[:, None]) ** 2).sum(1) / (counts[0].sum() - 1)
    return torch.from_numpy(mean).float(), torch.from_numpy(np.sqrt(var)).float()
