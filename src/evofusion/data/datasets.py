"""Build normalized train / validation / test splits from named data sets, arrays or torch data sets.

Contract of every function here:

* validation is carved from the training split only (seeded permutation); the test split is never
  touched by selection and never shares an example with train or val;
* inputs become float32 ``(N, C, H, W)``: ``uint8``/integer inputs are divided by 255, floating-point
  inputs are taken as already in [0, 1];
* per-channel mean and std are computed on the training part only and applied to all three splits;
* the same arguments give the same splits on any machine.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from evofusion.data.base import ArrayDataset, DataSplits
from evofusion.data.sources import DATASETS
from evofusion.errors import DataError

__all__ = ["dataset_names", "from_arrays", "from_torch_dataset", "load_dataset"]


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return DATASETS.names()


def _check_options(val_fraction: float, limit: int | None) -> None:
    if not 0.0 < float(val_fraction) <= 0.5:
        raise DataError(f"val_fraction must be in (0, 0.5], got {val_fraction}")
    if limit is not None and int(limit) < 1:
        raise DataError(f"limit must be a positive number of training examples or None, got {limit}")


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
) -> DataSplits:
    """Load a registered data set and split, scale and normalize it.

    Args:
        name: a name from :func:`dataset_names` (e.g. ``"fashion-mnist"``, ``"digits"``).
        data_dir: where the files are (see :mod:`evofusion.data.sources` for the lookup order).
        val_fraction: share of the training split held out for validation, in (0, 0.5].
        seed: seeds the train/val permutation (and the test subsample when ``limit`` is set).
        limit: for quick runs, keep only the first ``limit`` training examples after shuffling; the
            validation split shrinks in proportion (so it stays ``val_fraction`` of train + val) and
            the test split is capped at ``max(limit // 5, 200)`` examples. ``None`` keeps everything.

    Returns:
        Normalized splits; ``mean``/``std`` are the per-channel statistics of the [0, 1]-scaled
        training part.

    Raises:
        DataError: unknown name (the message lists valid ones), ``val_fraction`` or ``limit`` out of
            range, missing or corrupt files.
    """
    _check_options(val_fraction, limit)
    if name not in DATASETS:
        raise DataError(f"unknown data set '{name}'; valid: {', '.join(dataset_names())}")
    raw = DATASETS.get(name)(data_dir=data_dir)
    return _prepare(
        name, raw.train_x, raw.train_y, raw.test_x, raw.test_y, raw.num_classes, val_fraction, seed, limit
    )


def from_arrays(
    name: str,
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor,
    num_classes: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
) -> DataSplits:
    """Build splits from in-memory arrays, with the same carving and normalization as ``load_dataset``.

    Args:
        name: a label for the data set (goes into ``DataSplits.name``).
        train_x, test_x: ``(N, C, H, W)`` or ``(N, H, W)``; integer dtypes in [0, 255], floats in [0, 1].
        train_y, test_y: ``(N,)`` integer class labels.
        num_classes: defaults to ``max(label) + 1`` over both splits.
        val_fraction, seed, limit: as in :func:`load_dataset`.

    Raises:
        DataError: shapes or dtypes do not fit (the message says which array).
    """
    _check_options(val_fraction, limit)
    return _prepare(name, train_x, train_y, test_x, test_y, num_classes, val_fraction, seed, limit)


def from_torch_dataset(
    train_ds: Dataset[Any],
    test_ds: Dataset[Any] | None = None,
    name: str = "torch",
    num_classes: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
) -> DataSplits:
    """Materialize map-style torch data sets into normalized splits.

    Every item must be ``(image, label)`` with ``image`` a tensor or array of shape ``(C, H, W)`` or
    ``(H, W)`` (uint8 in [0, 255] or float in [0, 1], e.g. the output of ``ToTensor``) and ``label``
    an int or a 0-d tensor. The whole data set is read once into memory.

    Args:
        train_ds: the training data; validation is carved from it.
        test_ds: the test data; when ``None``, ``test_fraction`` of ``train_ds`` (seeded permutation)
            becomes the test split before validation is carved from the rest.
        test_fraction: used only when ``test_ds`` is None, in (0, 0.5].

    Raises:
        DataError: an item is not ``(image, label)`` or images differ in shape (the index is named).
    """
    _check_options(val_fraction, limit)
    train_x, train_y = _materialize(train_ds, "train_ds")
    if test_ds is not None:
        test_x, test_y = _materialize(test_ds, "test_ds")
    else:
        if not 0.0 < float(test_fraction) <= 0.5:
            raise DataError(f"test_fraction must be in (0, 0.5], got {test_fraction}")
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
        perm = rng.permutation(len(train_y))
        n_test = int(round(test_fraction * len(perm)))
        if n_test < 1 or n_test >= len(perm):
            raise DataError(f"train_ds has {len(perm)} items, too few to carve a test split; pass test_ds")
        test_idx, rest = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        test_x, test_y = train_x[test_idx], train_y[test_idx]
        train_x, train_y = train_x[rest], train_y[rest]
    return _prepare(name, train_x, train_y, test_x, test_y, num_classes, val_fraction, seed, limit)


# ---------------------------------------------------------------------------------------------------


def _materialize(ds: Dataset[Any], what: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        return ds.tensors[0].detach().cpu().numpy(), ds.tensors[1].detach().cpu().numpy()
    try:
        n = len(ds)  # type: ignore[arg-type]
    except TypeError as exc:
        raise DataError(f"{what} must be a map-style Dataset with __len__") from exc
    if n == 0:
        raise DataError(f"{what} is empty")
    xs: list[np.ndarray] = []
    ys = np.empty(n, dtype=np.int64)
    for i in range(n):
        item = ds[i]
        if not isinstance(item, tuple | list) or len(item) < 2:
            raise DataError(f"{what}[{i}] is {type(item).__name__}, expected an (image, label) pair")
        img, label = item[0], item[1]
        arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise DataError(f"{what}[{i}]: image has shape {arr.shape}, expected (C, H, W) or (H, W)")
        if xs and arr.shape != xs[0].shape:
            raise DataError(f"{what}[{i}]: image shape {arr.shape} differs from {what}[0]'s {xs[0].shape}")
        xs.append(arr)
        try:
            ys[i] = int(label.item() if isinstance(label, torch.Tensor) else label)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DataError(f"{what}[{i}]: label {label!r} is not a single integer class") from exc
    return np.stack(xs), ys


def _as_numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _check_xy(x: np.ndarray, y: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"{which}_x has shape {x.shape}; expected (N, C, H, W) or (N, H, W)")
    if y.ndim != 1:
        raise DataError(f"{which}_y has shape {y.shape}; expected (N,) class labels")
    if len(x) != len(y):
        raise DataError(f"{which}_x has {len(x)} examples but {which}_y has {len(y)} labels")
    if len(y) == 0:
        raise DataError(f"the {which} split is empty")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise DataError(f"{which}_y holds non-integer values; labels must be class indices")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == bool):
        raise DataError(f"{which}_x has dtype {x.dtype}; expected uint8 or floating point")
    return x, y.astype(np.int64)


def _to_unit_float(x: np.ndarray) -> np.ndarray:
    """Scale integer inputs from [0, 255] to [0, 1]; floats pass through as float32."""
    if np.issubdtype(x.dtype, np.integer):
        if x.dtype != np.uint8 and x.size and (int(x.min()) < 0 or int(x.max()) > 255):
            raise DataError(f"integer inputs must lie in [0, 255], got [{int(x.min())}, {int(x.max())}]")
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32)


def _prepare(
    name: str,
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor,
    num_classes: int | None,
    val_fraction: float,
    seed: int,
    limit: int | None,
) -> DataSplits:
    tr_x, tr_y = _check_xy(_as_numpy(train_x), _as_numpy(train_y), "train")
    te_x, te_y = _check_xy(_as_numpy(test_x), _as_numpy(test_y), "test")
    if tr_x.shape[1:] != te_x.shape[1:]:
        raise DataError(f"train images are {tr_x.shape[1:]} but test images are {te_x.shape[1:]}")
    if num_classes is None:
        num_classes = int(max(tr_y.max(), te_y.max())) + 1

    # Independent streams so the val split does not change when limit or the test cap changes.
    split_ss, test_ss, _ = np.random.SeedSequence(seed).spawn(3)
    perm = np.random.default_rng(split_ss).permutation(len(tr_y))
    n_val = int(round(val_fraction * len(perm)))
    if n_val < 1 or n_val >= len(perm):
        raise DataError(
            f"the training split has {len(perm)} examples, too few to carve val_fraction={val_fraction}"
        )
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if limit is not None:
        train_idx = train_idx[:limit]
        val_idx = val_idx[: max(1, int(round(len(train_idx) * val_fraction / (1.0 - val_fraction))))]
        cap = max(limit // 5, 200)
        if len(te_y) > cap:
            keep = np.sort(np.random.default_rng(test_ss).permutation(len(te_y))[:cap])
            te_x, te_y = te_x[keep], te_y[keep]

    train = _to_unit_float(tr_x[train_idx])
    val = _to_unit_float(tr_x[val_idx])
    test = _to_unit_float(te_x)
    mean = train.mean(axis=(0, 2, 3), dtype=np.float64)
    std = train.std(axis=(0, 2, 3), dtype=np.float64)
    std = np.where(std > 1e-12, std, 1.0)  # a constant channel is centred, not blown up
    m = mean.astype(np.float32)[None, :, None, None]
    s = std.astype(np.float32)[None, :, None, None]
    for arr in (train, val, test):
        arr -= m
        arr /= s
    return DataSplits(
        name=name,
        train=ArrayDataset(train, tr_y[train_idx]),
        val=ArrayDataset(val, tr_y[val_idx]),
        test=ArrayDataset(test, te_y),
        num_classes=int(num_classes),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )
