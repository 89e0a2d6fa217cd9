"""Conv blocks and stages that `evofusion.genome.build` assembles."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

POOLS = ("max", "avg", "none")


def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class BlendActivation(nn.Module):
    """``old(x) + mix * (new(x) - old(x))`` with a learnable scalar ``mix`` that starts at 0, so an
    activation can be swapped without changing the function (Net2Net-style morphism)."""

    def __init__(self, old: str, new: str):
        super().__init__()
        self.old, self.new = make_activation(old), make_activation(new)
        self.mix = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.old(x)
        return a + self.mix * (self.new(x) - a)


class ConvBlock(nn.Sequential):
    """conv(k, same padding, no bias) -> BatchNorm -> activation (or a blend of two, see ``blend``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, activation: str, blend: str = ""):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            BlendActivation(activation, blend) if blend else make_activation(activation),
        )


class ConvStage(nn.Module):
    """``depth`` conv blocks, an optional residual connection around them, then optional 2x2 pooling.

    With ``skip`` the input is added to the blocks' output (through a 1x1 conv + BN when the widths
    differ), so a stage can be deepened without hurting gradient flow.
    """

    def __init__(self, c_in: int, width: int, depth: int, kernel: int, activation: str, pool: str,
                 skip: bool, blend: str = "", skip_gate: bool = False):
        super().__init__()
        self.blocks = nn.Sequential(
            *[ConvBlock(c_in if i == 0 else width, width, kernel, activation, blend) for i in range(depth)]
        )
        # skip_gate: the skip branch is scaled by a learnable scalar that starts at 0 (SkipInit), so
        # switching a skip on preserves the function
        self.gate = nn.Parameter(torch.zeros(())) if skip and skip_gate else None
        self.shortcut: nn.Module | None = None
        if skip:
            self.shortcut = nn.Identity() if c_in == width else nn.Sequential(
                nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
            )
        if pool == "max":
            self.pool: nn.Module = nn.MaxPool2d(2)
        elif pool == "avg":
            self.pool = nn.AvgPool2d(2)
        else:
            self.pool = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(x)
        if self.shortcut is not None:
            y = y + (self.shortcut(x) if self.gate is None else self.gate * self.shortcut(x))
        return self.pool(y)
