"""Weight inheritance: a child starts from its first parent's trained weights where shapes allow.

What is inherited, tensor by tensor, matched by parameter/buffer name (``stages.1.blocks.0.0.weight``):

* same name, same shape: copied whole (BatchNorm running statistics included);
* same name, same number of dimensions, other shape (a widened or narrowed stage, another kernel
  size): the overlapping block is copied: leading output/input channels, and the centred part of a
  conv kernel; the rest keeps its fresh initialization;
* a name the parent lacks (an added stage or block): fresh initialization.

Names are positional, so after a stage is inserted the later stages receive the weights of the
parent stage that sat at their index; inheritance is an initialization, and training follows.
"""

from __future__ import annotations

import torch
from torch import nn


def _overlap_copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    idx_dst, idx_src = [], []
    for d, (a, b) in enumerate(zip(dst.shape, src.shape, strict=True)):
        n = min(a, b)
        if dst.ndim == 4 and d >= 2:  # centred kernel window
            idx_dst.append(slice((a - n) // 2, (a - n) // 2 + n))
            idx_src.append(slice((b - n) // 2, (b - n) // 2 + n))
        else:
            idx_dst.append(slice(0, n))
            idx_src.append(slice(0, n))
    dst[tuple(idx_dst)] = src[tuple(idx_src)]


@torch.no_grad()
def inherit_weights(child: nn.Module, parent_state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Copy what fits from ``parent_state`` into ``child`` in place; return counts per kind."""
    counts = {"copied": 0, "partial": 0, "fresh": 0}
    state = child.state_dict()
    for name, t in state.items():
        src = parent_state.get(name)
        if src is None or src.ndim != t.ndim or src.dtype != t.dtype:
            counts["fresh"] += 1
        elif src.shape == t.shape:
            t.copy_(src)
            counts["copied"] += 1
        else:
            _overlap_copy(t, src)
            counts["partial"] += 1
    return counts
