from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evofusion import DataError, Study, TeacherError
from evofusion.data import from_arrays
from tests.conftest import tiny_config


def _arrays(n: int = 120):
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return x, y


def test_labels_out_of_range_rejected_before_run_dir(tmp_path: Path) -> None:
    x, y = _arrays()
    splits = from_arrays("custom", x, y, x[:40], y[:40], num_classes=10)
    splits.train.y[0] = 12
    with pytest.raises(DataError, match="label"):
        Study.create(tiny_config(), tmp_path / "r", splits=splits, log=lambda *_: None)
    assert not (tmp_path / "r").exists()


def test_non_finite_inputs_rejected(tmp_path: Path) -> None:
    x, y = _arrays()
    splits = from_arrays("custom", x, y, x[:40], y[:40], num_classes=10)
    splits.val.x[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="(?i)nan|non-finite"):
        Study.create(tiny_config(), tmp_path / "r", splits=splits, log=lambda *_: None)
    assert not (tmp_path / "r").exists()


def test_teacher_with_wrong_class_count_rejected(tmp_path: Path) -> None:
    x, y = _arrays()
    splits = from_arrays("custom", x, y, x[:40], y[:40], num_classes=10)
    bad_teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with pytest.raises(TeacherError, match="3"):
        Study.create(tiny_config(), tmp_path / "r", splits=splits, teacher=bad_teacher, log=lambda *_: None)
    assert not (tmp_path / "r").exists()


def test_any_torch_dataset_through_the_api(tmp_path: Path) -> None:
    from torch.utils.data import TensorDataset

    from evofusion.data import from_torch_dataset

    x, y = _arrays(200)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    splits = from_torch_dataset(ds, num_classes=10)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    study = Study.create(tiny_config(generations=1), tmp_path / "r", splits=splits, teacher=teacher,
                         log=lambda *_: None)
    try:
        study.optimize()
        assert study.store.count("COMPLETE") == 4
    finally:
        study.close()
