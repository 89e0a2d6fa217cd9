"""Exports are atomic and exact (no stale files, consistent modes, a verified bundle hash), and a
weights file works as a teacher from the command line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from evofusion import load_student
from evofusion.cli import app

runner = CliRunner()
QUICK = ["--data", "digits", "--limit", "200", "--population", "2", "--generations", "1", "--steps", "3",
         "--top-k", "0", "--quiet"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_export_is_atomic_replaces_stale_files_and_has_one_mode(tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "student"
    assert invoke("search", *QUICK, "--no-teacher", "--run-dir", str(run)).exit_code == 0
    assert invoke("export", str(run), "--candidate", "0", "--out", str(out)).exit_code == 0
    (out / "student.onnx").write_text("a stale ONNX file of another candidate")
    r = invoke("export", str(run), "--candidate", "1", "--out", str(out))
    assert r.exit_code == 2 and "--force" in r.output
    assert invoke("export", str(run), "--candidate", "1", "--out", str(out), "--force").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "genome.json", "student.pt", "weights.safetensors"]
    card = json.loads((out / "card.json").read_text())
    assert card["candidate_id"] == 1 and len(card["bundle_sha256"]) == 64
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes  # genome/card used to be 0600, weights 0644
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".student.")]  # no temp folder left
    load_student(out)  # verifies the bundle hash


def test_a_weights_file_teacher_from_the_cli(tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    r = invoke("teacher", "train", "--arch", "small_cnn", "--data", "digits", "--limit", "200", "--epochs", "1",
               "--width", "0.25", "--out", str(teacher))
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    r = invoke("search", *QUICK, "--teacher", str(teacher / "weights.safetensors"), "--set", "teacher.arch=small_cnn",
               "--set", "teacher.width=0.25", "--run-dir", str(run))
    assert r.exit_code == 0, r.output  # the shape comes from the data set
    from evofusion.store import RunStore

    with RunStore(run, lock=False, readonly=True) as s:
        meta = s.get_meta("teacher")
        assert meta["arch"] == "small_cnn" and meta["in_channels"] == 1 and meta["num_classes"] == 10
        assert s.count("COMPLETE") == 2
