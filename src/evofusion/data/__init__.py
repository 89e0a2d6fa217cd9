"""Data sets, splits and pre-flight checks.

``load_dataset(name)`` gives normalized train / val / test splits of a registered data set;
``from_arrays`` and ``from_torch_dataset`` do the same for in-memory data. ``check_splits`` and
``check_teacher_outputs`` reject unusable data and mismatched teachers before a search starts.
"""

from __future__ import annotations

from evofusion.data.base import ArrayDataset, DataSplits
from evofusion.data.datasets import dataset_names, from_arrays, from_torch_dataset, load_dataset
from evofusion.data.idx import read_idx, read_idx_images, read_idx_labels, write_idx
from evofusion.data.preflight import check_splits, check_teacher_outputs
from evofusion.data.sources import DATASETS, ENV_VAR, RawData, read_cifar_batch

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "ArrayDataset",
    "DataSplits",
    "RawData",
    "check_splits",
    "check_teacher_outputs",
    "dataset_names",
    "from_arrays",
    "from_torch_dataset",
    "load_dataset",
    "read_cifar_batch",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "write_idx",
]
