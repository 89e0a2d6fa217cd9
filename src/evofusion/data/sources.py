"""Raw data set loaders, created by name from the ``DATASETS`` registry.

A loader is ``loader(data_dir: str | None = None) -> RawData``. It reads files only (nothing is
downloaded at run time) and returns the data set's own train/test split, unnormalized:

* ``x`` is ``(N, C, H, W)``; ``uint8`` in [0, 255], or floating point already in [0, 1];
* ``y`` is ``(N,)`` int64 in ``[0, num_classes)``.

Where a loader looks for files, first hit wins:

1. ``data_dir`` if given: the folder itself or one of the data set's sub-folder names inside it.
   An explicit ``data_dir`` is final: if the files are not there, the loader raises rather than
   silently reading some other copy.
2. The ``EVOFUSION_DATA`` environment variable, by the same rule.
3. The system location, e.g. ``/usr/share/datasets/fashion-mnist`` from the Debian package
   ``dataset-fashion-mnist``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from evofusion.data.idx import read_idx_images, read_idx_labels
from evofusion.errors import DataError
from evofusion.registry import Registry

__all__ = ["DATASETS", "ENV_VAR", "RawData", "candidate_dirs", "find_data_dir"]

ENV_VAR = "EVOFUSION_DATA"
SYSTEM_ROOT = Path("/usr/share/datasets")


class RawData(NamedTuple):
    """A data set's own train/test split before validation carving and normalization."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


DATASETS: Registry[RawData] = Registry("datasets")


def candidate_dirs(
    data_dir: str | os.PathLike[str] | None, subdirs: Sequence[str], system_dir: Path
) -> list[Path]:
    """The folders to look in, in order (see the module docstring for the rule)."""
    bases: list[Path]
    if data_dir is not None:
        bases = [Path(data_dir).expanduser()]
    elif os.environ.get(ENV_VAR):
        bases = [Path(os.environ[ENV_VAR]).expanduser()]
    else:
        bases = []
    out: list[Path] = []
    for base in bases:
        out.append(base)
        out.extend(base / sub for sub in subdirs)
    if data_dir is None:
        out.append(system_dir)
    return out


def _resolve_file(folder: Path, name: str, allow_gz: bool) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz") if allow_gz else (folder / name,):
        if candidate.is_file():
            return candidate
    return None


def find_data_dir(
    dataset: str,
    files: Sequence[str],
    data_dir: str | os.PathLike[str] | None,
    subdirs: Sequence[str],
    system_dir: Path,
    install_hint: str,
    allow_gz: bool = True,
) -> list[Path]:
    """Find the first candidate folder holding every file in ``files``.

    Returns:
        The resolved paths of ``files`` (a ``.gz`` variant is accepted when ``allow_gz``).

    Raises:
        DataError: no folder holds all files; the message lists every folder looked at and how to
            get the data.
    """
    looked = candidate_dirs(data_dir, subdirs, system_dir)
    for folder in looked:
        found = [_resolve_file(folder, f, allow_gz) for f in files]
        if all(p is not None for p in found):
            return [p for p in found if p is not None]
    suffix = "[.gz]" if allow_gz else ""
    wanted = ", ".join(f"{f}{suffix}" for f in files)
    where = "\n  ".join(str(p) for p in looked)
    raise DataError(
        f"{dataset}: data files not found. Need {wanted}.\nLooked in:\n  {where}\n"
        f"Fix: {install_hint}, or pass --data-dir (data_dir=...) or set {ENV_VAR} to a folder "
        f"that holds them (or holds a {'/'.join(subdirs)} sub-folder)."
    )


# ---------------------------------------------------------------------------------------------------
# IDX data sets (MNIST layout)

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _load_idx_dataset(
    dataset: str, data_dir: str | os.PathLike[str] | None, subdirs: Sequence[str], install_hint: str
) -> RawData:
    paths = find_data_dir(dataset, _IDX_FILES, data_dir, subdirs, SYSTEM_ROOT / dataset, install_hint)
    train_x, train_y = read_idx_images(paths[0]), read_idx_labels(paths[1])
    test_x, test_y = read_idx_images(paths[2]), read_idx_labels(paths[3])
    for xs, ys, px, py in ((train_x, train_y, paths[0], paths[1]), (test_x, test_y, paths[2], paths[3])):
        if len(xs) != len(ys):
            raise DataError(
                f"{px} holds {len(xs)} images but {py} holds {len(ys)} labels; the files do not match"
            )
    return RawData(train_x, train_y, test_x, test_y, 10)


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> RawData:
    """Fashion-MNIST (Xiao et al., 2017): 60000 + 10000 grey 28x28 images, 10 classes."""
    return _load_idx_dataset(
        "fashion-mnist",
        data_dir,
        ("fashion-mnist", "fashion_mnist", "FashionMNIST"),
        "`apt-get install dataset-fashion-mnist` (installs /usr/share/datasets/fashion-mnist)",
    )


@DATASETS.register("mnist")
def load_mnist(data_dir: str | os.PathLike[str] | None = None) -> RawData:
    """MNIST (LeCun et al., 1998): 60000 + 10000 grey 28x28 digits, 10 classes."""
    return _load_idx_dataset(
        "mnist",
        data_dir,
        ("mnist", "MNIST"),
        "put the four MNIST IDX files in /usr/share/datasets/mnist",
    )


# ---------------------------------------------------------------------------------------------------
# scikit-learn's bundled digits


@DATASETS.register("digits")
def load_digits(data_dir: str | os.PathLike[str] | None = None, test_fraction: float = 0.2) -> RawData:
    """scikit-learn's bundled 8x8 digits (1797 images, 17 grey levels), as ``(N, 1, 8, 8)`` in [0, 1].

    Needs no files (``data_dir`` is ignored). The test split is stratified: ``test_fraction`` of each
    class, chosen by a fixed-seed permutation, so it is the same on every machine and every call.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(20240601)  # fixed: the split is part of the data set's definition
    test_mask = np.zeros(len(y), dtype=bool)
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        n_test = int(round(test_fraction * len(idx)))
        test_mask[rng.permutation(idx)[:n_test]] = True
    return RawData(x[~test_mask], y[~test_mask], x[test_mask], y[test_mask], 10)


# ---------------------------------------------------------------------------------------------------
# CIFAR-10, binary version

_CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST = "test_batch.bin"
_CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3072 bytes (R, G, B planes of 32x32).

    Returns:
        ``x`` (N, 3, 32, 32) uint8 and ``y`` (N,) int64.

    Raises:
        DataError: the file size is not a whole number of records, or a label is above 9.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise DataError(
            f"{path} is not a CIFAR-10 binary batch: {raw.size} bytes is not a whole number of "
            f"{_CIFAR_RECORD}-byte records (truncated download?)"
        )
    records = raw.reshape(-1, _CIFAR_RECORD)
    y = records[:, 0].astype(np.int64)
    if y.max() > 9:
        raise DataError(f"{path}: label {int(y.max())} found, CIFAR-10 labels are 0..9; is this CIFAR-100?")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), y


@DATASETS.register("cifar10")
def load_cifar10(data_dir: str | os.PathLike[str] | None = None) -> RawData:
    """CIFAR-10 (Krizhevsky, 2009), binary version: 50000 + 10000 colour 32x32 images, 10 classes."""
    paths = find_data_dir(
        "cifar10",
        (*_CIFAR_TRAIN, _CIFAR_TEST),
        data_dir,
        ("cifar-10-batches-bin", "cifar10", "cifar10/cifar-10-batches-bin"),
        SYSTEM_ROOT / "cifar10",
        "unpack the CIFAR-10 binary version (cifar-10-binary.tar.gz) into /usr/share/datasets/cifar10",
        allow_gz=False,
    )
    train = [read_cifar_batch(p) for p in paths[:-1]]
    test_x, test_y = read_cifar_batch(paths[-1])
    train_x = np.concatenate([b[0] for b in train])
    train_y = np.concatenate([b[1] for b in train])
    return RawData(train_x, train_y, test_x, test_y, 10)
