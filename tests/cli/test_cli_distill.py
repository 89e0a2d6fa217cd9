"""`evofusion distill`: one genome, feature KD and the text teacher from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evofusion import load_student
from evofusion.cli import app
from evofusion.genome import StageGene, StudentGenome

runner = CliRunner()
QUICK = ["--data", "digits", "--limit", "300", "--steps", "6", "--set", "teacher.epochs=20"]


@pytest.fixture
def genome_file(tmp_path: Path) -> Path:
    p = tmp_path / "g.json"
    p.write_text(StudentGenome(stages=(StageGene(4), StageGene(8)), input_size=8, taps={"mid": "depth0.5"}).to_json())
    return p


def test_distill_with_feature_kd_and_text_teacher(tmp_path: Path, genome_file: Path) -> None:
    out = tmp_path / "student"
    r = runner.invoke(app, ["distill", "--genome", str(genome_file), *QUICK,
                            "--feature-kd", "teacher_tap=features.conv4,student_tap=mid,loss=mse,weight=1",
                            "--feature-kd", "teacher_tap=features.conv5,student_tap=last_stage,loss=cka",
                            "--text-teacher", "wordllama", "--text-weight", "0.2", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)  # one document: the result is printed once
    assert res["feature_kd"] and set(res["loss_terms"]) == {"kd", "mse:mid", "cka:last_stage", "text:wordllama"}
    assert 0 <= res["test_accuracy"] <= 1
    model = load_student(out)
    assert sum(p.numel() for p in model.parameters()) == res["params"]


def test_distill_from_a_config_file(tmp_path: Path, genome_file: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"name": "digits", "limit": 300}, "teacher": {"epochs": 20},
                                   "distill": {"steps": 4, "features": [
                                       {"teacher_tap": "features.conv4", "student_tap": "mid", "loss": "at"}]}}))
    r = runner.invoke(app, ["distill", "--genome", str(genome_file), "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "test_accuracy" in r.stdout and "{" not in r.stdout  # a table on the terminal, not JSON
    r = runner.invoke(app, ["distill", "--genome", str(genome_file), "--config", str(cfg), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "at:mid" in json.loads(r.stdout)["loss_terms"] and r.stderr == ""


@pytest.mark.parametrize("args, message", [
    (["--feature-kd", "features.conv4"], "KEY=VALUE"),
    (["--feature-kd", "teacher_tap=features.nope"], "distill.features.0.teacher_tap"),
    (["--feature-kd", "teacher_tap=features.conv4,loss=huber"], "distill.features.0.loss"),
    (["--feature-kd", "teacher_tap=features.conv4,student_tap=middle"], "student_tap"),
    (["--text-teacher", "clip"], "distill.text_teacher.model"),
])
def test_bad_input_exits_2_naming_the_fix(genome_file: Path, args: list[str], message: str) -> None:
    r = runner.invoke(app, ["distill", "--genome", str(genome_file), *QUICK, *args])
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_missing_genome_file(tmp_path: Path) -> None:
    r = runner.invoke(app, ["distill", "--genome", str(tmp_path / "none.json"), *QUICK])
    assert r.exit_code == 2 and "--genome" in r.output
