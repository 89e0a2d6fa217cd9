"""In-memory array data sets and the train/val/test splits every search uses."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ArrayDataset:
    """Inputs ``x`` (N, C, H, W) float32, already normalized, and labels ``y`` (N,) int64."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(self.x)), torch.from_numpy(np.ascontiguousarray(self.y))

    def fingerprint(self) -> str:
        """Content hash of inputs and labels (stable across processes)."""
        h = hashlib.sha256()
        h.update(str(self.x.shape).encode())
        h.update(np.ascontiguousarray(self.x).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()[:16]


@dataclass
class DataSplits:
    """Train / validation / test splits of one data set.

    Validation is carved from the training split; selection only ever sees ``val``. ``test`` is read
    only for final reporting.
    """

    name: str
    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
    num_classes: int
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train.x.shape[2])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for part in (self.train, self.val, self.test):
            h.update(part.fingerprint().encode())
        return h.hexdigest()[:16]
