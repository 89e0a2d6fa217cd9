"""A user's own teacher network outside the zoo (for --teacher-module tests): digits 1x8x8 -> 10."""

from __future__ import annotations

from torch import nn


def make_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, 10))


def not_a_module() -> str:
    return "nope"
