from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from evofusion.data import ArrayDataset, DataSplits, check_splits, check_teacher_outputs, from_arrays
from evofusion.errors import DataError, TeacherError


def make_splits(num_classes: int = 4) -> DataSplits:
    rng = np.random.default_rng(0)
    tx = rng.integers(0, 256, size=(40, 1, 5, 5), dtype=np.uint8)
    ex = rng.integers(0, 256, size=(10, 1, 5, 5), dtype=np.uint8)
    return from_arrays(
        "toy", tx, np.arange(40) % num_classes, ex, np.arange(10) % num_classes, num_classes=num_classes
    )


def test_valid_splits_pass() -> None:
    check_splits(make_splits())


@pytest.mark.parametrize("which", ["train", "val", "test"])
def test_empty_split_named(which: str) -> None:
    s = make_splits()
    setattr(s, which, ArrayDataset(np.zeros((0, 1, 5, 5), np.float32), np.zeros(0, np.int64)))
    with pytest.raises(DataError, match=f"^{which} split is empty"):
        check_splits(s)


def test_label_too_large_reports_value_and_count() -> None:
    s = make_splits()
    s.train.y[:3] = 12
    s.train.y[3] = 4
    with pytest.raises(DataError, match=r"train split: 4 labels outside \[0, 4\) \(values: 4, 12\)"):
        check_splits(s)


def test_negative_label() -> None:
    s = make_splits()
    s.test.y[0] = -1
    with pytest.raises(DataError, match=r"test split: 1 labels outside .*values: -1"):
        check_splits(s)


def test_nan_and_inf_counted() -> None:
    s = make_splits()
    s.val.x[0, 0, 0, :2] = np.nan
    s.val.x[1, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="val split: inputs hold 2 NaN and 1 infinite values"):
        check_splits(s)


def test_x_not_4d() -> None:
    s = make_splits()
    s.train = ArrayDataset(s.train.x[:, 0], s.train.y)
    with pytest.raises(DataError, match=r"train split: inputs have shape \(\d+, 5, 5\), expected 4-D"):
        check_splits(s)


def test_mismatched_lengths() -> None:
    s = make_splits()
    s.test = ArrayDataset(s.test.x, s.test.y[:-1])
    with pytest.raises(DataError, match="test split: 10 inputs but labels of shape"):
        check_splits(s)


@pytest.mark.parametrize("k", [0, 1])
def test_too_few_classes(k: int) -> None:
    s = make_splits()
    s.num_classes = k
    with pytest.raises(DataError, match=f"num_classes={k}.*at least 2"):
        check_splits(s)


def test_float_labels_rejected() -> None:
    s = make_splits()
    s.val = ArrayDataset(s.val.x, s.val.y.astype(np.float32))
    with pytest.raises(DataError, match="val split: labels have dtype float32"):
        check_splits(s)


def test_shape_differs_between_splits() -> None:
    s = make_splits()
    s.test = ArrayDataset(np.zeros((10, 1, 6, 6), np.float32), s.test.y)
    with pytest.raises(
        DataError, match=r"test split: inputs are \(1, 6, 6\) per example but train's are \(1, 5, 5\)"
    ):
        check_splits(s)


# --- teacher ----------------------------------------------------------------------------------------


def linear_teacher(k: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(25, k))


def test_matching_teacher_passes_and_sees_two_val_samples() -> None:
    s = make_splits()
    seen: list[torch.Tensor] = []

    def teacher(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return torch.zeros(x.shape[0], 4)

    check_teacher_outputs(teacher, s)
    assert seen[0].shape == (2, 1, 5, 5) and seen[0].device.type == "cpu"
    torch.testing.assert_close(seen[0], torch.from_numpy(s.val.x[:2]))
    check_teacher_outputs(linear_teacher(4), s)


def test_wrong_class_count() -> None:
    with pytest.raises(
        TeacherError, match="teacher outputs 7 values per sample but the data set has 4 classes: give"
    ):
        check_teacher_outputs(linear_teacher(7), make_splits())


def test_shape_variant() -> None:
    s = make_splits()
    check_teacher_outputs((128, 4), s)
    with pytest.raises(TeacherError, match="outputs 10 values per sample but the data set has 4 classes"):
        check_teacher_outputs((10,), s)


def test_non_finite_teacher() -> None:
    with pytest.raises(TeacherError, match="2 non-finite logits"):
        check_teacher_outputs(
            lambda x: torch.tensor([[0.0, float("nan"), 0, 0], [float("inf"), 0, 0, 0]]), make_splits()
        )


def test_teacher_wrong_rank() -> None:
    with pytest.raises(TeacherError, match=r"shape \(2, 4, 1, 1\) for 2 samples, expected \(2, 4\)"):
        check_teacher_outputs(lambda x: torch.zeros(2, 4, 1, 1), make_splits())


def test_teacher_that_raises() -> None:
    conv3 = nn.Conv2d(3, 4, 3)  # expects RGB, data are grey
    with pytest.raises(TeacherError, match=r"teacher failed on a batch of shape \(2, 1, 5, 5\)"):
        check_teacher_outputs(conv3, make_splits())


def test_teacher_not_returning_tensor() -> None:
    with pytest.raises(TeacherError, match="returned tuple"):
        check_teacher_outputs(lambda x: (torch.zeros(2, 4), None), make_splits())


def test_training_mode_restored_and_eval_used() -> None:
    class ModeProbe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.modes: list[bool] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.modes.append(self.training)
            return torch.zeros(x.shape[0], 4)

    probe = ModeProbe()
    probe.train()
    check_teacher_outputs(probe, make_splits())
    assert probe.modes == [False] and probe.training
