from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from evofusion.data.base import DataSplits
from evofusion.errors import TeacherError
from evofusion.teachers import Teacher, default_teacher_for, train_teacher


def test_train_teacher_writes_loadable_dir(tmp_path: Path, splits_factory: Callable[..., DataSplits]) -> None:
    splits = splits_factory(n_train=64)
    rng_before = torch.random.get_rng_state()
    evals: list[tuple[int, float]] = []
    meta = train_teacher("small_cnn", splits, epochs=1, out_dir=tmp_path / "t", width=0.25, seed=3,
                         batch_size=32, progress=lambda step, acc: evals.append((step, acc)))
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # no global seeding leaks
    assert evals and evals[-1][0] == 2
    on_disk = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert on_disk == meta
    for key in ("arch", "width", "data", "data_fingerprint", "epochs", "val_accuracy", "test_accuracy",
                "params", "seconds"):
        assert key in meta, key
    assert meta["arch"] == "small_cnn" and meta["data"] == "tiny" and meta["epochs"] == 1
    assert meta["data_fingerprint"] == splits.fingerprint()
    assert 0.0 <= meta["val_accuracy"] <= 1.0 and 0.0 <= meta["test_accuracy"] <= 1.0
    assert (tmp_path / "t" / "weights.safetensors").is_file()
    teacher = Teacher.from_dir(tmp_path / "t")
    assert teacher(torch.from_numpy(splits.val.x)).shape == (16, 4)
    assert teacher.weights_hash == meta["weights_hash"]


def test_same_seed_same_teacher(tmp_path: Path, splits_factory: Callable[..., DataSplits]) -> None:
    splits = splits_factory(n_train=32)
    a = train_teacher("small_cnn", splits, 1, tmp_path / "a", width=0.25, seed=0, batch_size=16)
    b = train_teacher("small_cnn", splits, 1, tmp_path / "b", width=0.25, seed=0, batch_size=16)
    c = train_teacher("small_cnn", splits, 1, tmp_path / "c", width=0.25, seed=1, batch_size=16)
    assert a["weights_hash"] == b["weights_hash"] != c["weights_hash"]


def test_default_teacher_for() -> None:
    assert default_teacher_for("fashion-mnist") == {"arch": "small_cnn", "width": 1.0, "epochs": 8}
    assert default_teacher_for("MNIST") == {"arch": "small_cnn", "width": 1.0, "epochs": 8}
    assert default_teacher_for("digits") == {"arch": "small_cnn", "width": 0.25, "epochs": 15}
    assert default_teacher_for("cifar-10") == {"arch": "resnet18", "width": 0.25, "epochs": 15}
    with pytest.raises(TeacherError, match="known"):
        default_teacher_for("imagenet")
