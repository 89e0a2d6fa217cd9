from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from evofusion.data import read_idx, read_idx_images, read_idx_labels, write_idx
from evofusion.errors import DataError


def _images(n: int = 5, h: int = 4, w: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def test_reads_hand_built_idx1(tmp_path: Path) -> None:
    # magic 0x00000801 (ubyte, 1 dim), size 3, then the data: the layout LeCun's page defines
    p = tmp_path / "labels"
    p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 255]))
    np.testing.assert_array_equal(read_idx(p), [7, 8, 255])
    np.testing.assert_array_equal(read_idx_labels(p), np.array([7, 8, 255], dtype=np.int64))


def test_hand_built_idx3(tmp_path: Path) -> None:
    p = tmp_path / "imgs"
    header = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    p.write_bytes(header + bytes(range(12)))
    arr = read_idx(p)
    assert arr.shape == (2, 2, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr.ravel(), np.arange(12))
    assert read_idx_images(p).shape == (2, 1, 2, 3)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_images_and_labels(tmp_path: Path, suffix: str) -> None:
    imgs = _images()
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    pi = write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", imgs)
    pl = write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels)
    if suffix:
        assert pi.read_bytes()[:2] == b"\x1f\x8b"
    x = read_idx_images(pi)
    y = read_idx_labels(pl)
    assert x.shape == (5, 1, 4, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0], imgs)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip_other_types(tmp_path: Path, dtype: type) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    out = read_idx(write_idx(tmp_path / "a.idx", arr))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    p = tmp_path / "plain-name"
    write_idx(tmp_path / "x.gz", _images())
    p.write_bytes((tmp_path / "x.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(p), _images())


def test_bad_magic_names_file(tmp_path: Path) -> None:
    p = tmp_path / "bad-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34\x08\x03" + bytes(20))
    with pytest.raises(DataError, match="bad-images-idx3-ubyte.*bad magic"):
        read_idx(p)


def test_unknown_type_code(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 0]))
    with pytest.raises(DataError, match="type code 0x42"):
        read_idx(p)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_idx(p)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_data_names_file(tmp_path: Path, suffix: str) -> None:
    full = tmp_path / "full"
    write_idx(full, _images())
    cut = full.read_bytes()[:-7]
    p = tmp_path / f"t10k-images-idx3-ubyte{suffix}"
    p.write_bytes(gzip.compress(cut) if suffix else cut)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*truncated"):
        read_idx(p)


def test_truncated_header(tmp_path: Path) -> None:
    p = tmp_path / "h"
    p.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2]))
    with pytest.raises(DataError, match="truncated: the header needs 16 bytes"):
        read_idx(p)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    write_idx(tmp_path / "a.gz", _images(50, 10, 10))
    p = tmp_path / "cut.gz"
    p.write_bytes((tmp_path / "a.gz").read_bytes()[:60])
    with pytest.raises(DataError, match="cut.gz.*gzip"):
        read_idx(p)


def test_trailing_bytes_rejected(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "a", _images())
    p.write_bytes(p.read_bytes() + b"xx")
    with pytest.raises(DataError, match="2 trailing bytes"):
        read_idx(p)


def test_wrong_rank_for_images_and_labels(tmp_path: Path) -> None:
    labels = write_idx(tmp_path / "labels", np.zeros(4, dtype=np.uint8))
    images = write_idx(tmp_path / "images", _images())
    with pytest.raises(DataError, match="expected 3-D uint8 images"):
        read_idx_images(labels)
    with pytest.raises(DataError, match="expected 1-D uint8 labels"):
        read_idx_labels(images)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "nope")
