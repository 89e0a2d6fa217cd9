"""Self-contained students: the input normalization inside the exported module and graphs.

A search trains on inputs normalized with the training split's per-channel mean and std. An exported
file that expected those inputs would score at chance on the images a user has. The deployment
files therefore take images as they are:

* ``student.onnx`` and ``student.pt`` (TorchScript): float32 NCHW images scaled to ``[0, 1]``
  (pixel / 255 for 8-bit images);
* ``student.uint8.onnx`` (8-bit data sets only): the uint8 NCHW pixels as stored, 0-255;

each with ``(x - mean) / std`` as its first operation. ``student.pt`` needs only PyTorch:
``torch.jit.load("student.pt")(x01)``. ``genome.json`` + ``weights.safetensors`` stay the bare
student on normalized inputs (``evofusion.load_student``), which the search and fine-tunes use.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evofusion.errors import EvoFusionError

CLASS_NAMES: dict[str, list[str]] = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
    "digits": [str(i) for i in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
TORCHSCRIPT_ATOL = 1e-5


class Normalized(nn.Module):
    """``model((x - mean) / std)`` for ``x`` in [0, 1]; with ``uint8`` the input is 0-255 pixels."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], uint8: bool = False):
        super().__init__()
        if len(mean) != len(std) or not len(mean) or any(s <= 0 for s in std):
            raise EvoFusionError(f"normalization needs one mean and one positive std per channel, got mean "
                                 f"{list(mean)} and std {list(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).reshape(1, -1, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor([float(s) for s in std]).reshape(1, -1, 1, 1))
        self.uint8 = uint8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uint8:
            x = x.to(torch.float32) / 255.0
        return self.model((x - self.mean) * self.inv_std)


def unit_range(x_normalized: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalized inputs back in [0, 1] (what a user's pixel / 255 gives)."""
    x = x_normalized.numpy() if isinstance(x_normalized, torch.Tensor) else np.asarray(x_normalized)
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray(np.clip(x * s + m, 0.0, 1.0), dtype=np.float32)


def as_uint8(x01: np.ndarray) -> np.ndarray | None:
    """The 0-255 pixels of [0, 1] inputs, or None when they were not 8-bit images (e.g. digits' 17
    grey levels), where a uint8 graph would change what the model sees."""
    scaled = x01.astype(np.float64) * 255.0
    pixels = np.rint(scaled)
    if x01.size == 0 or float(np.abs(scaled - pixels).max()) > 1e-2:
        return None
    return pixels.astype(np.uint8)


def input_card(name: str, shape: Sequence[int], mean: Sequence[float], std: Sequence[float], uint8: bool,
               num_classes: int) -> dict[str, Any]:
    """The card's top-level description of what the exported files take and give."""
    c = int(shape[0])
    names = CLASS_NAMES.get(name)
    return {
        "dataset": name,
        "input": {"shape": [c, int(shape[1]), int(shape[2])], "layout": "NCHW",
                  "channels": "grey" if c == 1 else ("RGB" if c == 3 else f"{c} channels"),
                  "student.onnx / student.pt": "float32 in [0, 1] (pixel / 255)",
                  **({"student.uint8.onnx": "uint8 pixels 0-255"} if uint8 else {})},
        "normalization": {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
                          "inside": "student.onnx, student.uint8.onnx, student.pt (not weights.safetensors, "
                                    "which takes (x - mean) / std)"},
        "class_names": names if names and len(names) == num_classes else [str(i) for i in range(num_classes)],
    }


def write_torchscript(model: nn.Module, mean: Sequence[float], std: Sequence[float], shape: Sequence[int],
                      path: str | Path, check: np.ndarray | None = None) -> dict[str, Any]:
    """``student.pt``: the traced :class:`Normalized` student (eval mode), checked against the module
    on ``check`` ([0, 1] inputs) or random ones; nothing is written when they differ."""
    wrapped = Normalized(model, mean, std).eval()
    example = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0))
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice: TorchScript still loads everywhere
        traced = torch.jit.trace(wrapped, example, check_trace=False)
        batch = torch.from_numpy(check[:256]) if check is not None and len(check) else example
        err = float((traced(batch) - wrapped(batch)).abs().max())
        if not err <= TORCHSCRIPT_ATOL:
            raise EvoFusionError(f"TorchScript check failed: max |traced - module| = {err:.3g}; {path} was not "
                                 "written")
        traced.save(str(path))
    return {"path": path.name, "max_abs_error": err, "input": "float32 [0, 1] NCHW",
            "load": "torch.jit.load('student.pt')"}


__all__ = ["CLASS_NAMES", "Normalized", "as_uint8", "input_card", "unit_range", "write_torchscript"]
