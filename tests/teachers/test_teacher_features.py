"""Teacher feature taps (forward hooks on any module) and the reduced-feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evofusion.data.base import DataSplits
from evofusion.errors import TeacherError
from evofusion.teachers import Teacher, build_teacher
from evofusion.teachers.features import (
    FeatureCache,
    TeacherTap,
    attention_map,
    capture,
    load_features,
    reduce_feature,
    teacher_features,
)


def _teacher(arch: str = "small_cnn") -> Teacher:
    torch.manual_seed(0)
    return Teacher(build_teacher(arch, in_channels=1, num_classes=4, input_size=8, width=0.25), name=arch)


def test_capture_reads_outputs_and_inputs_of_named_modules() -> None:
    t = _teacher()
    x = torch.randn(3, 1, 8, 8)
    with capture(t.module, {"a": ("features.conv4", "out"), "b": ("classifier", "in"), "c": ("pool", "out")}) as f:
        logits = t(x)
    assert f["a"].shape == (3, 16, 4, 4)
    torch.testing.assert_close(f["b"], f["c"].flatten(1))
    torch.testing.assert_close(t.module.classifier(f["b"]), logits)
    assert not t.module.features.conv4._forward_hooks  # hooks removed after the block


def test_resnet18_layer_taps() -> None:
    t = _teacher("resnet18")
    (a, v) = teacher_features(t, torch.randn(2, 1, 8, 8), [TeacherTap("layer3", "pool", 1), TeacherTap("fc:in")])
    assert a.shape == (2, 64, 1, 1) and v.shape == (2, 128)


def test_unknown_tap_lists_valid_names() -> None:
    with pytest.raises(TeacherError, match="valid taps: .*features.conv4"):
        teacher_features(_teacher(), torch.randn(2, 1, 8, 8), [TeacherTap("features.conv9")])


def test_plain_callable_teacher_has_no_taps() -> None:
    t = Teacher(lambda x: x.flatten(1)[:, :4], weights_hash="f")
    with pytest.raises(TeacherError, match="nn.Module"):
        teacher_features(t, torch.randn(2, 1, 8, 8), [TeacherTap("x")])


@pytest.mark.parametrize("tap, reduce, size, shape", [("x", "bogus", 4, None), ("x", "pool", 0, None), ("", "pool", 4, None)])
def test_bad_tap_spec(tap: str, reduce: str, size: int, shape: None) -> None:
    with pytest.raises(TeacherError):
        TeacherTap(tap, reduce, size)


def test_reductions() -> None:
    f = torch.randn(2, 5, 8, 8)
    assert reduce_feature(f, "pool", 4).shape == (2, 5, 4, 4)
    assert reduce_feature(f, "pool", 16).shape == (2, 5, 8, 8)  # never upsampled
    torch.testing.assert_close(reduce_feature(f, "gap", 4), f.mean((2, 3)))
    att = reduce_feature(f, "attention", 2)
    torch.testing.assert_close(att, torch.nn.functional.avg_pool2d(attention_map(f), 4))
    torch.testing.assert_close(reduce_feature(torch.ones(2, 3), "attention", 2), torch.ones(2, 3))


def test_feature_cache_computes_once_and_matches_direct_features(tmp_path, tiny_splits: DataSplits) -> None:
    t = _teacher()
    taps = [TeacherTap("features.conv4", "pool", 2), TeacherTap("features.conv5", "attention", 2)]
    cache = FeatureCache(tmp_path)
    dirs = cache.get(t, tiny_splits, taps)
    assert cache.misses == 2 and cache.hits == 0
    again = cache.get(t, tiny_splits, taps)
    assert again == dirs and cache.hits == 2 and cache.misses == 2
    direct = teacher_features(t, tiny_splits.val.x, taps)
    for d, ref in zip(dirs, direct, strict=True):
        arr = load_features(d, "val")
        assert arr.dtype == np.float16 and arr.shape == tuple(ref.shape)
        np.testing.assert_allclose(arr.astype(np.float32), ref.numpy(), rtol=2e-3, atol=2e-3)
    # other weights -> other entry
    other = Teacher(build_teacher("small_cnn", in_channels=1, num_classes=4, input_size=8, width=0.25))
    assert cache.get(other, tiny_splits, taps[:1])[0] != dirs[0]


def test_incomplete_cache_entry_is_recomputed(tmp_path, tiny_splits: DataSplits) -> None:
    t, tap = _teacher(), TeacherTap("features.conv4")
    cache = FeatureCache(tmp_path)
    (d,) = cache.get(t, tiny_splits, [tap])
    (d / "meta.json").unlink()
    cache.get(t, tiny_splits, [tap])
    assert cache.misses == 2 and (d / "meta.json").is_file()
