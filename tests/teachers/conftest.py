"""Tiny random data sets for the teacher tests (no downloads, fast on 2 CPU cores)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from evofusion.data.base import ArrayDataset, DataSplits


def make_splits(n_train: int = 48, n_val: int = 16, n_test: int = 16, channels: int = 1, size: int = 8,
                num_classes: int = 4, seed: int = 0, name: str = "tiny") -> DataSplits:
    """Random normal inputs and uniformly random labels."""
    rng = np.random.default_rng(seed)

    def part(n: int) -> ArrayDataset:
        x = rng.standard_normal((n, channels, size, size)).astype(np.float32)
        y = rng.integers(0, num_classes, n).astype(np.int64)
        return ArrayDataset(x, y)

    return DataSplits(name=name, train=part(n_train), val=part(n_val), test=part(n_test), num_classes=num_classes)


@pytest.fixture
def tiny_splits() -> DataSplits:
    return make_splits()


@pytest.fixture
def splits_factory() -> Callable[..., DataSplits]:
    """``make_splits`` itself, for tests that need several data sets or other sizes."""
    return make_splits
