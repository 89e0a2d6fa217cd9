from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from evofusion.data.base import DataSplits
from evofusion.distill import predict_logits
from evofusion.errors import TeacherError
from evofusion.teachers import Teacher, TeacherCache, build_teacher, cache_key, default_cache_root


class CountingTeacher:
    """A deterministic callable teacher that counts the rows it was asked for."""

    def __init__(self, num_classes: int = 4):
        self.calls = 0
        self.rows = 0
        self.w = torch.linspace(-1, 1, 64 * num_classes).reshape(64, num_classes)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += len(x)
        return x.flatten(1) @ self.w


def test_computes_once_then_memory_maps(tmp_path: Path, tiny_splits: DataSplits) -> None:
    fn = CountingTeacher()
    teacher = Teacher(fn, name="count", weights_hash="count-v1")
    cache = TeacherCache(tmp_path)
    first = cache.get(teacher, tiny_splits)
    assert first.computed and fn.rows == 48 + 16 + 16
    calls = fn.calls
    second = TeacherCache(tmp_path).get(teacher, tiny_splits)
    assert not second.computed and fn.calls == calls
    assert second.key == first.key == cache_key("count-v1", tiny_splits.fingerprint(), "none")
    assert second.dir == tmp_path / first.key
    for split in ("train", "val", "test"):
        arr = getattr(second, split)
        assert isinstance(arr, np.memmap) and arr.dtype == np.float32
        expected = fn(torch.from_numpy(getattr(tiny_splits, split).x)).numpy()
        np.testing.assert_allclose(arr, expected, rtol=1e-6)
        assert (second.dir / f"{split}.npy").is_file()
    assert json.loads((second.dir / "meta.json").read_text())["transform_id"] == "none"
    assert cache.misses == 1 and cache.hits == 0
    assert cache.get(teacher, tiny_splits).computed is False and cache.hits == 1
    assert not [p for p in second.dir.iterdir() if ".tmp" in p.name]


def test_transform_or_data_change_recomputes(tmp_path: Path, tiny_splits: DataSplits,
                                             splits_factory: Callable[..., DataSplits]) -> None:
    fn = CountingTeacher()
    teacher = Teacher(fn, weights_hash="count-v1")
    cache = TeacherCache(tmp_path)
    base = cache.get(teacher, tiny_splits)
    flipped = cache.get(teacher, tiny_splits, "hflip", transform=lambda x: x.flip(3))
    assert flipped.computed and flipped.key != base.key
    np.testing.assert_allclose(flipped.train, fn(torch.from_numpy(tiny_splits.train.x).flip(3)).numpy(), rtol=1e-6)
    other = cache.get(teacher, splits_factory(seed=1))
    assert other.computed and other.key not in (base.key, flipped.key)
    assert cache.get(Teacher(fn, weights_hash="count-v2"), tiny_splits).computed
    with pytest.raises(TeacherError, match="transform_id"):
        cache.get(teacher, tiny_splits, transform=lambda x: x)


def test_module_teacher_matches_predict_logits(tmp_path: Path, tiny_splits: DataSplits) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_teacher("small_cnn", 1, 4, 8, width=0.25)
    out = TeacherCache(tmp_path).get(Teacher(model), tiny_splits, batch_size=7)
    for split in ("train", "val", "test"):
        x, _ = getattr(tiny_splits, split).tensors()
        torch.testing.assert_close(torch.from_numpy(np.array(getattr(out, split))), predict_logits(model, x))
    t = out.logits("train")
    assert t.dtype == torch.float32 and t.shape == (48, 4)


def test_incomplete_entry_is_recomputed(tmp_path: Path, tiny_splits: DataSplits) -> None:
    fn = CountingTeacher()
    teacher = Teacher(fn, weights_hash="count-v1")
    first = TeacherCache(tmp_path).get(teacher, tiny_splits)
    val = np.array(first.val)  # a copy: the memmap reads the file the next lines damage in place
    (first.dir / "meta.json").unlink()  # as if killed before the entry was marked complete
    (first.dir / "val.npy").write_bytes(b"half a file")
    again = TeacherCache(tmp_path).get(teacher, tiny_splits)
    assert again.computed
    np.testing.assert_array_equal(again.val, val)


def test_wrong_class_count_is_an_error(tmp_path: Path, tiny_splits: DataSplits) -> None:
    teacher = Teacher(CountingTeacher(num_classes=3), weights_hash="three")
    with pytest.raises(TeacherError, match="3 classes"):
        TeacherCache(tmp_path).get(teacher, tiny_splits)


def test_bare_callable_without_hash_cannot_be_cached(tmp_path: Path, tiny_splits: DataSplits) -> None:
    with pytest.raises(TeacherError, match="weights_hash"):
        TeacherCache(tmp_path).get(Teacher(CountingTeacher()), tiny_splits)


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVOFUSION_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path / "teachers"
    assert TeacherCache().root == tmp_path / "teachers"
    monkeypatch.delenv("EVOFUSION_CACHE")
    assert default_cache_root() == Path.home() / ".cache" / "evofusion" / "teachers"
