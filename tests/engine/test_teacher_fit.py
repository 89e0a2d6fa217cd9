"""A teacher whose recorded inputs or classes do not match the data is refused by name; one trained on
another data set of the same shape is used with a warning."""

from __future__ import annotations

import pytest

from evofusion.data import load_dataset
from evofusion.engine.study import check_teacher_fits
from evofusion.errors import TeacherError


def test_teacher_of_other_inputs_is_refused_and_of_other_data_warned() -> None:
    splits = load_dataset("digits", limit=100)
    ok = {"in_channels": 1, "input_size": 8, "num_classes": 10, "data": "digits"}
    logs: list[str] = []
    check_teacher_fits(ok, splits, "t/", logs.append)
    assert logs == []
    check_teacher_fits({**ok, "data": "mnist"}, splits, "t/", logs.append)
    assert logs and "trained on mnist" in logs[0] and "digits" in logs[0]
    with pytest.raises(TeacherError, match=r"input_size 28 \(the data have 8\).*trained on fashion-mnist"):
        check_teacher_fits({**ok, "input_size": 28, "data": "fashion-mnist"}, splits, "t/", logs.append)
    with pytest.raises(TeacherError, match=r"num_classes 100 \(the data have 10\)"):
        check_teacher_fits({**ok, "num_classes": 100}, splits, "t/", logs.append)
    check_teacher_fits({}, splits, "t/", logs.append)  # a bare module records nothing: nothing to check
