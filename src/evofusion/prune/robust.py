"""The seed's perturbation check: accuracy under additive Gaussian noise on the (normalized) inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from evofusion.distill.loop import evaluate_accuracy


def noise_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float],
                   seed: int = 0) -> list[float]:
    """Top-1 accuracy of ``model`` on ``x + sigma * N(0, 1)`` for every sigma. The noise comes from a
    generator seeded with ``seed`` and is the same draw (scaled) for every sigma and every model, so
    teacher and student see identical perturbations."""
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return [evaluate_accuracy(model, x + float(s) * eps, y) for s in sigmas]
