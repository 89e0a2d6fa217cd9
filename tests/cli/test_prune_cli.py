"""`evofusion prune` end to end on digits (train a tiny teacher, prune, resume, report, export) and
its bad-input errors (exit code 2, naming what to fix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from evofusion import load_student
from evofusion.cli import app

runner = CliRunner()


def _run(*args: str):  # noqa: ANN202
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli-teacher") / "t"
    r = _run("teacher", "train", "--arch", "small_cnn", "--data", "digits", "--out", str(d), "--epochs", "4",
             "--width", "0.5", "--limit", "300")
    assert r.exit_code == 0, r.output
    return d


def test_prune_resume_report_export(teacher: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ["--population", "4", "--steps", "8", "--final-epochs", "1", "--quiet"]
    r = _run("prune", "--teacher", str(teacher), "--data", "digits", "--limit", "300", "--target-params", "1500",
             "--generations", "1", "--run-dir", str(run), *common)
    assert r.exit_code == 0, r.output
    assert "compression %" in r.output and "Gaussian noise sigma" in r.output
    r = _run("prune", "--resume", str(run), "--generations", "2", *common)
    assert r.exit_code == 0, r.output
    r = _run("report", str(run))
    assert r.exit_code == 0 and "winning ticket" in r.output
    assert "Pruning: the winning ticket" in (run / "report.html").read_text()
    r = _run("export", str(run), "--out", str(tmp_path / "bundle"))
    assert r.exit_code == 0, r.output
    genome = json.loads((tmp_path / "bundle" / "genome.json").read_text())
    assert genome["kind"] == "prune"
    model = load_student(tmp_path / "bundle")
    assert sum(p.numel() for p in model.parameters()) <= 1500
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(("args", "needle"), [
    (["--data", "digits"], "teacher"),
    (["--teacher", "{t}"], "data"),
    (["--teacher", "{t}", "--data", "digits", "--encoding", "bits"], "prune.encoding"),
    (["--teacher", "{t}", "--data", "digits", "--noise", "a,b"], "noise"),
    (["--teacher", "{t}", "--data", "digits", "--objectives", "params"], "accuracy"),
    (["--teacher", "/no/such/dir", "--data", "digits"], "--teacher"),
])
def test_bad_input_exits_2_naming_the_fix(teacher: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    args = [a.replace("{t}", str(teacher)) for a in args]
    r = _run("prune", *args, "--run-dir", str(tmp_path / "run"))
    assert r.exit_code == 2
    assert needle in r.output
    assert not (tmp_path / "run").exists()
