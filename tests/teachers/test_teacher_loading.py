from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from evofusion.errors import TeacherError
from evofusion.teachers import Teacher, build_teacher, save_teacher

ARGS = {"in_channels": 1, "num_classes": 10, "input_size": 16, "width": 0.25}


def _model(seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_teacher("small_cnn", **ARGS).eval()


def _x() -> torch.Tensor:
    return torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def _make_sentinel(path: str) -> None:
    Path(path).write_text("code ran")


class Malicious:
    """Unpickling this would create a file: the loader must refuse before that can happen."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple:
        return (_make_sentinel, (self.path,))


def test_wraps_module_in_eval_no_grad() -> None:
    model = _model().train()
    teacher = Teacher(model, name="t")
    assert not model.training
    model.train()
    out = teacher(_x().requires_grad_())
    assert not model.training
    assert not out.requires_grad
    torch.testing.assert_close(out, model.eval()(_x()).detach())


def test_weights_hash_tracks_weights() -> None:
    a, b = Teacher(_model(0)), Teacher(_model(0))
    assert a.weights_hash == b.weights_hash
    assert Teacher(_model(1)).weights_hash != a.weights_hash
    with torch.no_grad():
        next(b.module.parameters())[0, 0, 0, 0] += 1e-3
    assert b.weights_hash != a.weights_hash
    assert Teacher(_model(0), weights_hash="given").weights_hash == "given"


def test_bare_callable_needs_weights_hash() -> None:
    t = Teacher(lambda x: x.flatten(1)[:, :10], name="lam")
    assert t(_x()).shape == (5, 10)  # usable without an identity...
    with pytest.raises(TeacherError, match="identity"):
        _ = t.weights_hash  # ...but not cacheable
    assert Teacher(lambda x: x, weights_hash="v1").weights_hash == "v1"


def test_save_load_dir_round_trip(tmp_path: Path) -> None:
    model = _model()
    meta = save_teacher(model, tmp_path / "t", {"arch": "small_cnn", **ARGS, "data": "tiny", "test_accuracy": 0.5})
    assert (tmp_path / "t" / "weights.safetensors").is_file()
    on_disk = json.loads((tmp_path / "t" / "teacher.json").read_text())
    assert on_disk == meta and on_disk["params"] == sum(p.numel() for p in model.parameters())
    assert not [p for p in (tmp_path / "t").iterdir() if ".tmp" in p.name]
    loaded = Teacher.from_dir(tmp_path / "t")
    torch.testing.assert_close(loaded(_x()), Teacher(model)(_x()), rtol=0, atol=0)
    assert loaded.weights_hash == Teacher(model).weights_hash == meta["weights_hash"]
    assert loaded.meta["data"] == "tiny"


def test_save_teacher_requires_arch_fields(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="arch"):
        save_teacher(_model(), tmp_path, {"width": 0.25})


def test_from_dir_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="teacher.json"):
        Teacher.from_dir(tmp_path)


def test_safetensors_file_needs_arch(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(path))
    with pytest.raises(TeacherError, match="arch="):
        Teacher.from_file(path)
    loaded = Teacher.from_file(path, arch="small_cnn", **ARGS)
    torch.testing.assert_close(loaded(_x()), Teacher(model)(_x()), rtol=0, atol=0)


@pytest.mark.parametrize("wrap", [None, "state_dict", "dataparallel"])
def test_pt_state_dict_loads_weights_only(tmp_path: Path, wrap: str | None) -> None:
    model = _model()
    state = model.state_dict()
    if wrap == "state_dict":
        state = {"state_dict": state, "epoch": 3}
    elif wrap == "dataparallel":
        state = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / "w.pth"
    torch.save(state, path)
    loaded = Teacher.from_file(path, arch="small_cnn", **ARGS)
    torch.testing.assert_close(loaded(_x()), Teacher(model)(_x()), rtol=0, atol=0)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(2), "payload": Malicious(str(sentinel))}, path)
    assert not sentinel.exists()
    with pytest.raises(TeacherError) as info:
        Teacher.from_file(path, arch="small_cnn", **ARGS)
    msg = str(info.value)
    assert "pickled Python objects" in msg and "safetensors" in msg and str(path) in msg
    assert not sentinel.exists()


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="not found"):
        Teacher.from_file(tmp_path / "nope.pt", arch="small_cnn", **ARGS)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(TeacherError, match="bad.safetensors"):
        Teacher.from_file(bad, arch="small_cnn", **ARGS)


def test_torchscript_teacher(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(model, _x()).save(str(path))
        loaded = Teacher.from_file(path)
    assert isinstance(loaded.fn, torch.jit.ScriptModule)
    torch.testing.assert_close(loaded(_x()), Teacher(model)(_x()))
    assert len(loaded.weights_hash) == 64
    with pytest.raises(TeacherError, match="TorchScript"):
        Teacher.from_file(path, arch="small_cnn", **ARGS)


def test_wrong_keys_name_the_keys(tmp_path: Path) -> None:
    state = dict(_model().state_dict())
    state["extra.weight"] = torch.zeros(1)
    del state["classifier.bias"]
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    with pytest.raises(TeacherError) as info:
        Teacher.from_file(path, arch="small_cnn", **ARGS)
    msg = str(info.value)
    assert "w.safetensors" in msg and "classifier.bias" in msg and "extra.weight" in msg


def test_wrong_shapes_name_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(_model().state_dict(), path)
    with pytest.raises(TeacherError, match="classifier.weight"):
        Teacher.from_file(path, arch="small_cnn", **{**ARGS, "num_classes": 7})
