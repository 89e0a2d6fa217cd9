"""A user's network outside the zoo (benchmarks/prune_kd_ga.py --user-net, the pruning tests):
depthwise separable convs, GroupNorm (4 groups), residual adds and an attention-free MLP block."""

from __future__ import annotations

import torch
from torch import nn


class DWBlock(nn.Module):
    """x + pointwise(depthwise(x)), GroupNorm after each conv."""

    def __init__(self, c: int, groups: int = 4):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.gn1 = nn.GroupNorm(groups, c)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.gn2 = nn.GroupNorm(groups, c)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gn2(self.pw(self.act(self.gn1(self.dw(x)))))


class MobileGN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, c: int = 32, hidden: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.GroupNorm(4, c), nn.SiLU())
        self.block1 = DWBlock(c)
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False), nn.GroupNorm(4, 2 * c),
                                  nn.SiLU())
        self.block2 = DWBlock(2 * c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mlp = nn.Sequential(nn.LayerNorm(2 * c), nn.Linear(2 * c, hidden), nn.GELU(), nn.Linear(hidden, 2 * c))
        self.fc = nn.Linear(2 * c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.down(self.block1(self.stem(x))))
        z = self.pool(x).flatten(1)
        return self.fc(z + self.mlp(z))  # an MLP block with its residual add


def mobile_gn() -> nn.Module:
    return MobileGN()
