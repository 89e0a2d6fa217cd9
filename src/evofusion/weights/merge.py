"""Simple merges of same-architecture fine-tuned models, on flat parameter vectors.

Every function works on 1-D vectors of one architecture (``theta`` = all parameters flattened in a
fixed order, e.g. by ``torch.nn.utils.parameters_to_vector``). A *task vector* is the difference
between a fine-tuned model and the shared base it started from, ``tau_i = theta_i - theta_base``.

* ``average``: uniform weight averaging ("model soups", Wortsman et al., ICML 2022).
* ``task_arithmetic``: ``theta_base + scale * sum_i tau_i`` (Ilharco et al., "Editing Models with
  Task Arithmetic", ICLR 2023).
* ``ties_merge``: TRIM, ELECT SIGN, disjoint MERGE (Yadav et al., "TIES-Merging: Resolving
  Interference When Merging Models", NeurIPS 2023).

They are pure functions: inputs are never modified, the result is a new tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["average", "task_arithmetic", "task_vectors", "ties_merge", "trim_top_magnitude"]

Vectors = torch.Tensor | Sequence[torch.Tensor]


def _stack(vectors: Vectors, what: str) -> torch.Tensor:
    """(N, D) from a (N, D) tensor or a sequence of N (D,) tensors; checks that shapes agree."""
    if isinstance(vectors, torch.Tensor):
        stacked = vectors if vectors.ndim == 2 else vectors.reshape(1, -1)
    else:
        if len(vectors) == 0:
            raise ValueError(f"{what}: need at least one vector")
        shapes = {tuple(v.shape) for v in vectors}
        if len(shapes) != 1:
            raise ValueError(f"{what}: vectors differ in shape {sorted(shapes)}; merge one architecture only")
        stacked = torch.stack([v.reshape(-1) for v in vectors])
    if stacked.shape[0] == 0:
        raise ValueError(f"{what}: need at least one vector")
    return stacked


def _check_base(base: torch.Tensor, stacked: torch.Tensor, what: str) -> torch.Tensor:
    base = base.reshape(-1)
    if base.numel() != stacked.shape[1]:
        raise ValueError(f"{what}: base has {base.numel()} entries but the task vectors have {stacked.shape[1]}")
    return base


def task_vectors(base: torch.Tensor, thetas: Vectors) -> torch.Tensor:
    """``(N, D)`` task vectors ``theta_i - base`` of fine-tuned models ``thetas``."""
    stacked = _stack(thetas, "task_vectors")
    return stacked - _check_base(base, stacked, "task_vectors")


def average(thetas: Vectors) -> torch.Tensor:
    """Uniform average of the parameter vectors ``thetas`` (a uniform model soup)."""
    return _stack(thetas, "average").mean(0)


def task_arithmetic(base: torch.Tensor, taus: Vectors, scale: float = 1.0) -> torch.Tensor:
    """``base + scale * sum(taus)`` (Ilharco et al., ICLR 2023).

    Args:
        base: the shared pre-trained vector ``(D,)``.
        taus: task vectors ``(N, D)`` or N tensors ``(D,)``.
        scale: lambda of the paper, usually tuned on validation data in [0.3, 1].
    """
    stacked = _stack(taus, "task_arithmetic")
    return _check_base(base, stacked, "task_arithmetic") + scale * stacked.sum(0)


def trim_top_magnitude(taus: Vectors, density: float) -> torch.Tensor:
    """Keep each task vector's ``ceil(density * D)`` largest-magnitude entries, zero the rest.

    Ties in magnitude are broken by position (the lower index is kept), so the result is
    deterministic.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    stacked = _stack(taus, "trim_top_magnitude")
    k = min(stacked.shape[1], max(1, math.ceil(density * stacked.shape[1] - 1e-9)))
    order = torch.sort(stacked.abs(), dim=1, descending=True, stable=True).indices[:, :k]
    keep = torch.zeros_like(stacked, dtype=torch.bool).scatter_(1, order, True)
    return torch.where(keep, stacked, torch.zeros_like(stacked))


def ties_merge(base: torch.Tensor, taus: Vectors, density: float = 0.2, scale: float = 1.0) -> torch.Tensor:
    """TIES-Merging (Yadav et al., NeurIPS 2023).

    1. Trim: each task vector keeps its top ``density`` share of entries by magnitude
       (:func:`trim_top_magnitude`), the rest become 0.
    2. Elect sign: per entry, ``gamma = sign(sum_i trimmed_i)`` (the sign with the larger total mass).
    3. Disjoint merge: per entry, the mean of the trimmed values whose sign equals ``gamma`` (zeros
       and disagreeing values are left out); an entry with no agreeing value, or ``gamma == 0``,
       gets 0.

    Returns:
        ``base + scale * merged_task_vector``.
    """
    trimmed = trim_top_magnitude(taus, density)
    base = _check_base(base, trimmed, "ties_merge")
    gamma = torch.sign(trimmed.sum(0))
    agree = (torch.sign(trimmed) == gamma) & (trimmed != 0)
    count = agree.sum(0)
    total = torch.where(agree, trimmed, torch.zeros_like(trimmed)).sum(0)
    merged = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
    return base + scale * merged
