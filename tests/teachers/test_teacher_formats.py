"""Any teacher: ONNX graphs, precomputed outputs (.npz with a fingerprint), a user's nn.Module by import
path, TorchScript -- each drives a search from the CLI; feature KD on a format without taps exits 2
naming the formats that have them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.data import load_dataset
from evofusion.store import RunStore
from evofusion.teachers import Teacher, TeacherCache, save_teacher_outputs, train_teacher

QUICK = ["--data", "digits", "--limit", "300", "--population", "2", "--generations", "1", "--strategy", "random",
         "--steps", "6", "--top-k", "0", "--quiet", "--set", "space.widths=[4, 8]", "--set", "space.max_stages=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Teacher]:
    d = tmp_path_factory.mktemp("t") / "small_cnn"
    train_teacher("small_cnn", load_dataset("digits", limit=300), 2, d, width=0.25, seed=0)
    return d, Teacher.from_dir(d)


def _search(tmp: Path, *args: str) -> tuple[int, str, Path]:
    run = tmp / "run"
    r = CliRunner().invoke(app, ["search", *QUICK, "--run-dir", str(run), *args])
    return r.exit_code, r.output, run


def _run_logits(run: Path) -> np.ndarray:
    with RunStore(run, lock=False, readonly=True) as s:
        cache = Path(s.get_meta("teacher")["cache"])
        assert all(c["status"] == "COMPLETE" for c in s.candidates()), [c["reason"] for c in s.candidates()]
    return np.load(cache / "val.npy")


def test_an_onnx_teacher_drives_a_search(tmp_path: Path, trained: tuple[Path, Teacher]) -> None:
    pytest.importorskip("onnxruntime")
    from evofusion.objectives.edge import torch_to_onnx

    _, teacher = trained
    torch_to_onnx(teacher.module, (1, 8, 8), tmp_path / "teacher.onnx")
    code, out, run = _search(tmp_path, "--teacher", str(tmp_path / "teacher.onnx"))
    assert code == 0, out
    splits = load_dataset("digits", limit=300)
    assert np.allclose(_run_logits(run), teacher.predict(splits.val.x).numpy(), atol=1e-4)
    with RunStore(run, lock=False, readonly=True) as s:
        assert s.get_meta("teacher")["format"] == "onnx"


def test_precomputed_outputs_drive_a_search_and_a_mismatch_is_named(tmp_path: Path,
                                                                     trained: tuple[Path, Teacher]) -> None:
    _, teacher = trained
    splits = load_dataset("digits", limit=300)
    logits = {k: teacher.predict(getattr(splits, k).x).numpy() + 1.0 for k in ("train", "val", "test")}
    f = save_teacher_outputs(tmp_path / "outputs.npz", splits, logits)
    code, out, run = _search(tmp_path, "--teacher", str(f))
    assert code == 0, out
    assert np.array_equal(_run_logits(run), logits["val"])  # exactly the file's numbers
    other = load_dataset("digits", limit=200)
    g = save_teacher_outputs(tmp_path / "other.npz", other,
                             {k: np.zeros((len(getattr(other, k)), 10)) for k in ("train", "val", "test")})
    r = CliRunner().invoke(app, ["search", *QUICK, "--teacher", str(g), "--run-dir", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "fingerprint" in r.output and "recompute" in r.output
    assert not (tmp_path / "bad").exists()
    with pytest.raises(Exception, match="shape"):
        save_teacher_outputs(tmp_path / "x.npz", splits, {**logits, "val": logits["val"][:3]})
    teacher_file = Teacher.from_file(f)
    with pytest.raises(Exception, match="precomputed outputs"):
        TeacherCache(tmp_path / "c").get(teacher_file, splits, "flip", transform=lambda x: x)


def test_a_user_module_by_import_path_drives_a_search(tmp_path: Path) -> None:
    from tests.teachers.user_nets import make_net

    torch.manual_seed(0)
    net = make_net()
    save_file(net.state_dict(), tmp_path / "w.safetensors")
    code, out, run = _search(tmp_path, "--teacher-module", "tests.teachers.user_nets:make_net",
                             "--teacher", str(tmp_path / "w.safetensors"))
    assert code == 0, out
    splits = load_dataset("digits", limit=300)
    with torch.no_grad():
        assert np.allclose(_run_logits(run), net.eval()(torch.from_numpy(splits.val.x)).numpy(), atol=1e-5)
    r = CliRunner().invoke(app, ["search", *QUICK, "--teacher-module", "tests.teachers.user_nets:not_a_module",
                                 "--run-dir", str(tmp_path / "b1")])
    assert r.exit_code == 2 and "not an nn.Module" in r.output
    r = CliRunner().invoke(app, ["search", *QUICK, "--teacher-module", "tests.teachers.nowhere:f",
                                 "--run-dir", str(tmp_path / "b2")])
    assert r.exit_code == 2 and "teacher.module" in r.output and "cannot import" in r.output


def test_torchscript_teacher_searches_and_feature_kd_names_the_formats(tmp_path: Path,
                                                                        trained: tuple[Path, Teacher]) -> None:
    _, teacher = trained
    ts = torch.jit.trace(teacher.module.eval(), torch.zeros(2, 1, 8, 8))
    ts.save(str(tmp_path / "teacher.pt"))
    code, out, _ = _search(tmp_path, "--teacher", str(tmp_path / "teacher.pt"))
    assert code == 0, out
    genome = tmp_path / "g.json"
    genome.write_text(json.dumps({"stages": [{"width": 4}], "input_size": 8}))
    r = CliRunner().invoke(app, ["distill", "--data", "digits", "--limit", "300", "--teacher",
                                 str(tmp_path / "teacher.pt"), "--steps", "4", "--out", str(tmp_path / "d"),
                                 "--feature-kd", "teacher_tap=features.conv4,student_tap=last_stage,loss=mse",
                                 "--genome", str(genome)])
    assert r.exit_code == 2, r.output
    assert "logit KD only" in r.output and "teacher directory" in r.output
