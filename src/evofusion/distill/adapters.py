"""Adapters between student and teacher feature spaces (the seed's Cross-Domain Knowledge Adapter).

An adapter is a small learned map trained jointly with the student (its parameters join the
optimizer) and dropped afterwards: it is never part of the exported student.

* ``conv1x1``: a 1x1 convolution between channel counts, then a spatial resize to the target's
  side (adaptive average pooling to shrink, bilinear interpolation to grow) - FitNets' regressor
  (Romero et al., 2015, "FitNets: Hints for Thin Deep Nets").
* ``linear``: a linear projection between vectors; a feature map is globally average pooled first.
* ``none``: only the resize / pooling that makes the shapes meet.

``direction`` says which side is mapped: ``student`` (default) maps student features into the
teacher's space; ``teacher`` maps teacher features into the student's space. The first cannot
collapse (the target is fixed); the second can, with MSE, shrink both sides towards zero, so it is
best used with cosine or CKA losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evofusion.errors import ConfigError

ADAPTER_KINDS = ("auto", "conv1x1", "linear", "none")
DIRECTIONS = ("student", "teacher")


def resize_map(f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a ``(N, C, H, W)`` map to ``size``: average pooling to shrink, bilinear to grow."""
    if tuple(f.shape[2:]) == tuple(size):
        return f
    if f.shape[2] >= size[0] and f.shape[3] >= size[1]:
        return F.adaptive_avg_pool2d(f, size)
    return F.interpolate(f, size=size, mode="bilinear", align_corners=False)


def match_shape(f: torch.Tensor, like: tuple[int, ...]) -> torch.Tensor:
    """Bring ``f`` to the layout of a per-example shape ``like`` without parameters: global pooling
    of a map to a vector, or a resize of a map to another map's side."""
    if len(like) == 1 and f.ndim == 4:
        return f.mean((2, 3))
    if len(like) == 3 and f.ndim == 4:
        return resize_map(f, (like[1], like[2]))
    return f


class Adapter(nn.Module):
    """Maps features of per-example shape ``src`` to per-example shape ``dst``.

    Args:
        kind: conv1x1 | linear | none | auto (conv1x1 map -> map, linear otherwise).
        src: per-example input shape, ``(C, H, W)`` or ``(D,)``.
        dst: per-example output shape.
    """

    def __init__(self, kind: str, src: tuple[int, ...], dst: tuple[int, ...]):
        super().__init__()
        if kind not in ADAPTER_KINDS:
            raise ConfigError("adapter", f"must be one of {', '.join(ADAPTER_KINDS)}, got {kind!r}")
        if kind == "auto":
            kind = "conv1x1" if len(src) == 3 and len(dst) == 3 else "linear"
        if kind == "conv1x1" and not (len(src) == 3 and len(dst) == 3):
            raise ConfigError("adapter", f"conv1x1 maps a feature map to a feature map; got shapes {src} -> {dst} "
                              "(use linear for vectors)")
        if kind == "linear" and len(dst) != 1:
            raise ConfigError("adapter", f"linear projects to a vector; the target has shape {dst} "
                              "(use conv1x1 for maps, or reduce the teacher tap with 'gap')")
        self.kind, self.src, self.dst = kind, tuple(src), tuple(dst)
        self.proj: nn.Module | None = None
        if kind == "conv1x1":
            self.proj = nn.Conv2d(src[0], dst[0], 1, bias=False)
        elif kind == "linear":
            self.proj = nn.Linear(src[0], dst[0])

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv1x1":
            assert self.proj is not None
            size = (self.dst[1], self.dst[2])
            # a 1x1 conv commutes with average pooling and bilinear resizing (all linear, per pixel /
            # per channel), so the conv runs on the smaller of the two maps: same result, less work
            if f.shape[2] * f.shape[3] > size[0] * size[1]:
                return self.proj(resize_map(f, size))
            return resize_map(self.proj(f), size)
        if self.kind == "linear":
            assert self.proj is not None
            return self.proj(f.mean((2, 3)) if f.ndim == 4 else f.flatten(1))
        out = match_shape(f, self.dst)
        if tuple(out.shape[1:]) != self.dst:
            raise ConfigError("adapter", f"'none' cannot map features of shape {tuple(f.shape[1:])} to {self.dst}; "
                              "use conv1x1 or linear")
        return out

    def widened(self, src: tuple[int, ...]) -> Adapter:
        """A copy for a new input shape (the student's tap grew or shrank): weights of the channels
        both shapes have are kept, new input channels start at zero, so the output is unchanged when
        the student only gained channels."""
        new = Adapter(self.kind, src, self.dst).to(next(self.parameters(), torch.empty(0)).device)
        if self.proj is not None and new.proj is not None:
            with torch.no_grad():
                new.proj.weight.zero_()
                c = min(self.src[0], src[0])
                new.proj.weight[:, :c] = self.proj.weight[:, :c]
                if getattr(self.proj, "bias", None) is not None:
                    new.proj.bias.copy_(self.proj.bias)  # type: ignore[union-attr]
        return new
