from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

import evofusion.data.sources as sources
from evofusion.data import (
    DATASETS,
    DataSplits,
    dataset_names,
    from_arrays,
    from_torch_dataset,
    load_dataset,
    write_idx,
)
from evofusion.errors import DataError

IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def write_mnist_like(
    folder: Path, n_train: int = 40, n_test: int = 12, size: int = 6, gz: bool = True
) -> Path:
    """Synthetic MNIST-layout IDX files; pixel [0, 0] of image i holds i so examples can be traced."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        imgs[:, 0, 0] = np.arange(n) % 256
        labels = (np.arange(n) % 10).astype(np.uint8)
        ext = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", imgs)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return folder


@pytest.fixture()
def no_system_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the system location at an empty folder and clear EVOFUSION_DATA."""
    empty = tmp_path / "system"
    monkeypatch.setattr(sources, "SYSTEM_ROOT", empty)
    monkeypatch.delenv(sources.ENV_VAR, raising=False)
    return empty


def ids_of(part_x: np.ndarray, splits: DataSplits) -> np.ndarray:
    """Undo normalization and read back the id stored in every image's constant value."""
    mean, std = np.array(splits.mean), np.array(splits.std)
    raw = part_x * std[None, :, None, None] + mean[None, :, None, None]
    return np.rint(raw[:, 0, 0, 0] * 255).astype(int)


def id_arrays(n_train: int = 100, n_test: int = 40) -> tuple[np.ndarray, ...]:
    """Constant images whose value is the example id; train ids 0..n_train-1, test ids after them."""
    ids = np.arange(n_train + n_test)
    x = np.broadcast_to(ids[:, None, None, None], (len(ids), 1, 3, 3)).astype(np.uint8)
    y = ids % 4
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


# --- registry ---------------------------------------------------------------------------------------


def test_registered_names() -> None:
    assert {"fashion-mnist", "mnist", "digits", "cifar10"} <= set(dataset_names())
    assert dataset_names() == DATASETS.names()


def test_unknown_name_lists_valid() -> None:
    with pytest.raises(DataError, match=r"unknown data set 'imagenet'.*cifar10.*digits.*fashion-mnist"):
        load_dataset("imagenet")


@pytest.mark.parametrize("bad", [0.0, -0.1, 0.51, 1.0])
def test_val_fraction_out_of_range(bad: float) -> None:
    with pytest.raises(DataError, match="val_fraction"):
        load_dataset("digits", val_fraction=bad)


def test_val_fraction_half_accepted() -> None:
    s = load_dataset("digits", val_fraction=0.5)
    assert len(s.val) == len(s.train)


def test_limit_must_be_positive() -> None:
    with pytest.raises(DataError, match="limit"):
        load_dataset("digits", limit=0)


# --- digits -----------------------------------------------------------------------------------------


def test_digits_shapes_and_normalization() -> None:
    s = load_dataset("digits", val_fraction=0.1, seed=0)
    assert s.name == "digits" and s.num_classes == 10
    assert s.in_channels == 1 and s.input_size == 8
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    assert len(s.test) == 359  # 20% of each class, rounded
    assert len(s.val) == round(0.1 * (1797 - 359))
    for part in (s.train, s.val, s.test):
        assert part.x.dtype == np.float32 and part.y.dtype == np.int64
        assert part.x.shape[1:] == (1, 8, 8)
    assert abs(float(s.train.x.mean())) < 1e-4
    assert abs(float(s.train.x.std()) - 1.0) < 1e-3
    # mean/std are those of the [0, 1]-scaled training part: de-normalized inputs lie in [0, 1]
    raw = s.test.x * s.std[0] + s.mean[0]
    assert raw.min() > -1e-5 and raw.max() < 1 + 1e-5
    assert 0.2 < s.mean[0] < 0.4


def test_digits_test_split_stratified_and_fixed() -> None:
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=5)
    counts = np.bincount(a.test.y, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38
    # the test split is part of the data set: same examples (normalized with each run's train stats)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    np.testing.assert_allclose(a.test.x * a.std[0] + a.mean[0], b.test.x * b.std[0] + b.mean[0], atol=1e-5)
    assert a.val.fingerprint() != b.val.fingerprint()


# --- splitting contract -----------------------------------------------------------------------------


def test_val_carved_from_train_never_test() -> None:
    s = from_arrays("ids", *id_arrays(), num_classes=4, val_fraction=0.2, seed=3)
    train_ids, val_ids, test_ids = ids_of(s.train.x, s), ids_of(s.val.x, s), ids_of(s.test.x, s)
    assert len(val_ids) == 20 and len(train_ids) == 80
    assert set(train_ids) | set(val_ids) == set(range(100))
    assert not set(train_ids) & set(val_ids)
    np.testing.assert_array_equal(test_ids, np.arange(100, 140))
    # labels travel with their images
    np.testing.assert_array_equal(s.train.y, train_ids % 4)
    np.testing.assert_array_equal(s.val.y, val_ids % 4)


def test_same_seed_same_splits_other_seed_differs() -> None:
    a = from_arrays("ids", *id_arrays(), seed=7)
    b = from_arrays("ids", *id_arrays(), seed=7)
    c = from_arrays("ids", *id_arrays(), seed=8)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    np.testing.assert_array_equal(ids_of(a.test.x, a), ids_of(c.test.x, c))


def test_limit_caps_train_and_test_and_nests_val() -> None:
    tx, ty, ex, ey = id_arrays(n_train=200, n_test=55)
    ex = np.concatenate([ex] * 6)  # 330 test examples
    ey = np.concatenate([ey] * 6)
    full = from_arrays("ids", tx, ty, ex, ey, val_fraction=0.1, seed=1)
    small = from_arrays("ids", tx, ty, ex, ey, val_fraction=0.1, seed=1, limit=50)
    assert len(small.train) == 50
    assert len(small.val) == round(50 * 0.1 / 0.9)
    assert len(small.test) == 200  # max(50 // 5, 200)
    assert len(full.test) == 330
    assert set(ids_of(small.train.x, small)) <= set(ids_of(full.train.x, full))
    assert set(ids_of(small.val.x, small)) <= set(ids_of(full.val.x, full))


def test_limit_leaves_small_test_alone() -> None:
    s = from_arrays("ids", *id_arrays(), limit=30)
    assert len(s.train) == 30 and len(s.test) == 40


def test_per_channel_stats_from_train_only() -> None:
    rng = np.random.default_rng(0)
    tx = rng.integers(0, 256, size=(60, 3, 4, 4), dtype=np.uint8)
    tx[:, 1] //= 4  # a darker channel
    ex = np.full((10, 3, 4, 4), 255, dtype=np.uint8)  # very different test data must not move the stats
    s = from_arrays("rgb", tx, np.arange(60) % 3, ex, np.arange(10) % 3, val_fraction=0.1)
    assert len(s.mean) == 3 and len(s.std) == 3
    np.testing.assert_allclose(s.train.x.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(s.train.x.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    assert s.mean[1] < s.mean[0] / 2
    np.testing.assert_allclose(
        s.test.x[:, :, 0, 0], (1.0 - np.array(s.mean)) / np.array(s.std) * np.ones((10, 3)), rtol=1e-5
    )


def test_from_arrays_float_and_3d_inputs() -> None:
    rng = np.random.default_rng(0)
    tx = rng.random((30, 5, 5)).astype(np.float64)
    s = from_arrays("f", tx, np.arange(30) % 2, tx[:10], np.arange(10) % 2)
    assert s.train.x.shape[1:] == (1, 5, 5) and s.train.x.dtype == np.float32
    assert s.num_classes == 2
    assert 0.4 < s.mean[0] < 0.6  # floats were taken as already in [0, 1]


def test_from_arrays_rejects_bad_shapes() -> None:
    with pytest.raises(DataError, match="train_x has 10 examples but train_y has 9"):
        from_arrays(
            "bad",
            np.zeros((10, 1, 2, 2), np.uint8),
            np.zeros(9),
            np.zeros((2, 1, 2, 2), np.uint8),
            np.zeros(2),
        )
    with pytest.raises(DataError, match="train_x has shape"):
        from_arrays("bad", np.zeros((10, 4)), np.zeros(10), np.zeros((2, 4)), np.zeros(2))
    with pytest.raises(DataError, match="too few"):
        from_arrays(
            "bad",
            np.zeros((1, 1, 2, 2), np.uint8),
            np.zeros(1),
            np.zeros((2, 1, 2, 2), np.uint8),
            np.zeros(2),
        )


def test_constant_channel_not_divided_by_zero() -> None:
    tx = np.zeros((20, 1, 2, 2), np.uint8)
    s = from_arrays("flat", tx, np.arange(20) % 2, tx[:4], np.arange(4) % 2)
    assert np.isfinite(s.train.x).all() and s.std == (1.0,)


# --- torch data sets --------------------------------------------------------------------------------


def test_from_torch_tensor_dataset_with_test() -> None:
    g = torch.Generator().manual_seed(0)
    train = TensorDataset(torch.rand(50, 1, 6, 6, generator=g), torch.arange(50) % 5)
    test = TensorDataset(torch.rand(20, 1, 6, 6, generator=g), torch.arange(20) % 5)
    s = from_torch_dataset(train, test, name="t", val_fraction=0.2, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (40, 10, 20)
    assert s.num_classes == 5 and s.name == "t"
    expected = (test.tensors[0].numpy() - s.mean[0]) / s.std[0]
    np.testing.assert_allclose(s.test.x, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(s.test.y, np.arange(20) % 5)


def test_from_torch_dataset_carves_test_when_missing() -> None:
    tx, ty, _, _ = id_arrays(n_train=100, n_test=0)
    ds = TensorDataset(torch.from_numpy(tx), torch.from_numpy(ty))
    s = from_torch_dataset(ds, None, val_fraction=0.1, test_fraction=0.2, seed=2)
    assert (len(s.train), len(s.val), len(s.test)) == (72, 8, 20)
    ids = [set(ids_of(p.x, s)) for p in (s.train, s.val, s.test)]
    assert ids[0] | ids[1] | ids[2] == set(range(100))
    assert not (ids[0] & ids[2]) and not (ids[1] & ids[2]) and not (ids[0] & ids[1])


class _HWDataset(Dataset):
    """Generic map-style data set: (H, W) uint8 tensors and int labels."""

    def __init__(self, n: int, bad_at: int | None = None) -> None:
        self.n, self.bad_at = n, bad_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if i == self.bad_at:
            return torch.zeros(3, 3, dtype=torch.uint8), "cat"  # type: ignore[return-value]
        return torch.full((4, 4), i, dtype=torch.uint8), i % 3


def test_from_generic_torch_dataset() -> None:
    s = from_torch_dataset(_HWDataset(30), _HWDataset(9))
    assert s.train.x.shape[1:] == (1, 4, 4) and s.num_classes == 3
    np.testing.assert_array_equal(ids_of(s.test.x, s), np.arange(9))


def test_torch_dataset_bad_item_named() -> None:
    with pytest.raises(DataError, match=r"train_ds\[4\]"):
        from_torch_dataset(_HWDataset(10, bad_at=4), _HWDataset(3))


# --- IDX data sets and directory resolution ---------------------------------------------------------


def test_data_dir_is_the_folder(tmp_path: Path, no_system_data: Path) -> None:
    folder = write_mnist_like(tmp_path / "anything", n_train=40, n_test=12)
    s = load_dataset("fashion-mnist", data_dir=str(folder), val_fraction=0.25)
    assert (len(s.train), len(s.val), len(s.test)) == (30, 10, 12)
    assert s.num_classes == 10 and s.train.x.shape[1:] == (1, 6, 6)


def test_data_dir_is_a_parent(tmp_path: Path, no_system_data: Path) -> None:
    write_mnist_like(tmp_path / "root" / "fashion-mnist", n_train=20, gz=False)
    write_mnist_like(tmp_path / "root" / "mnist", n_train=30)
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path / "root").train) == 18
    assert len(load_dataset("mnist", data_dir=tmp_path / "root").train) == 27


def test_env_var_used_when_no_data_dir(
    tmp_path: Path, no_system_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mnist_like(tmp_path / "env" / "fashion-mnist", n_train=50)
    write_mnist_like(tmp_path / "explicit", n_train=20)
    monkeypatch.setenv("EVOFUSION_DATA", str(tmp_path / "env"))
    assert len(load_dataset("fashion-mnist").train) == 45
    # an explicit data_dir wins over the environment
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path / "explicit").train) == 18


def test_system_dir_is_last_resort(
    tmp_path: Path, no_system_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mnist_like(no_system_data / "mnist", n_train=60)
    monkeypatch.setenv("EVOFUSION_DATA", str(tmp_path / "nothing-here"))
    assert len(load_dataset("mnist").train) == 54


def test_missing_data_message(tmp_path: Path, no_system_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOFUSION_DATA", str(tmp_path / "envdir"))
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist")
    msg = str(info.value)
    assert "train-images-idx3-ubyte[.gz]" in msg
    assert str(tmp_path / "envdir") in msg and str(tmp_path / "envdir" / "fashion-mnist") in msg
    assert str(no_system_data / "fashion-mnist") in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "--data-dir" in msg and "EVOFUSION_DATA" in msg


def test_explicit_data_dir_does_not_fall_back(tmp_path: Path, no_system_data: Path) -> None:
    write_mnist_like(no_system_data / "fashion-mnist")
    with pytest.raises(DataError, match="Looked in") as info:
        load_dataset("fashion-mnist", data_dir=tmp_path / "wrong")
    assert str(no_system_data) not in str(info.value)


def test_partial_files_not_accepted(tmp_path: Path, no_system_data: Path) -> None:
    folder = write_mnist_like(tmp_path / "d")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="not found"):
        load_dataset("mnist", data_dir=folder)


def test_mismatched_image_and_label_counts(tmp_path: Path, no_system_data: Path) -> None:
    folder = write_mnist_like(tmp_path / "d", n_train=20)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="20 images but .* 19 labels"):
        load_dataset("mnist", data_dir=folder)


# --- CIFAR-10 binary --------------------------------------------------------------------------------


def write_cifar_batch(path: Path, labels: list[int], start: int) -> None:
    recs = []
    for k, label in enumerate(labels):
        planes = np.stack([np.full((32, 32), v, np.uint8) for v in (start + k, 100, 200)])
        planes[2, 31, 31] = 7  # last byte of the record: checks the record layout
        recs.append(np.concatenate([[label], planes.ravel()]).astype(np.uint8))
    path.write_bytes(np.concatenate(recs).tobytes())


@pytest.fixture()
def cifar_root(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for b in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{b}.bin", [(b + k) % 10 for k in range(4)], start=10 * b)
    write_cifar_batch(folder / "test_batch.bin", [9, 0, 1], start=90)
    return tmp_path / "data"


def test_cifar_raw_layout(cifar_root: Path, no_system_data: Path) -> None:
    raw = DATASETS.get("cifar10")(data_dir=cifar_root)
    assert raw.train_x.shape == (20, 3, 32, 32) and raw.train_x.dtype == np.uint8
    assert raw.test_x.shape == (3, 3, 32, 32) and raw.num_classes == 10
    np.testing.assert_array_equal(raw.train_y[:4], [1, 2, 3, 4])
    np.testing.assert_array_equal(raw.test_y, [9, 0, 1])
    assert raw.train_x[5, 0, 0, 0] == 21  # batch 2, second record: R plane
    assert (raw.train_x[:, 1] == 100).all()
    assert raw.train_x[0, 2, 31, 31] == 7 and raw.train_x[0, 2, 0, 0] == 200


def test_cifar_load_dataset(cifar_root: Path, no_system_data: Path) -> None:
    s = load_dataset("cifar10", data_dir=cifar_root, val_fraction=0.2)
    assert (len(s.train), len(s.val), len(s.test)) == (16, 4, 3)
    assert s.in_channels == 3 and s.input_size == 32 and len(s.mean) == 3
    np.testing.assert_allclose(s.mean[1:], [100 / 255, 200 / 255 - (200 - 7) / 255 / 1024], rtol=1e-5)
    # folder itself also accepted
    assert len(load_dataset("cifar10", data_dir=cifar_root / "cifar-10-batches-bin").test) == 3


def test_cifar_corrupt_batch(cifar_root: Path, no_system_data: Path) -> None:
    p = cifar_root / "cifar-10-batches-bin" / "data_batch_3.bin"
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match="data_batch_3.bin.*whole number"):
        load_dataset("cifar10", data_dir=cifar_root)


def test_cifar_missing_lists_paths(tmp_path: Path, no_system_data: Path) -> None:
    with pytest.raises(DataError, match="test_batch.bin") as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(tmp_path / "cifar-10-batches-bin") in str(info.value)


# --- the real thing ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVOFUSION_DATA", raising=False)
    s = load_dataset("fashion-mnist", val_fraction=0.1, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (54000, 6000, 10000)
    assert s.num_classes == 10 and s.train.x.shape[1:] == (1, 28, 28)
    assert sorted(np.unique(s.test.y).tolist()) == list(range(10))
    assert abs(float(s.train.x.mean())) < 1e-3 and abs(float(s.train.x.std()) - 1) < 1e-3
    assert 0.28 < s.mean[0] < 0.29 and 0.35 < s.std[0] < 0.36
