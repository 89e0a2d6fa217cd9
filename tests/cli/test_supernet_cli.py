"""`evofusion supernet` then `evofusion search --supernet`, resume, and their bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evofusion.cli import app

runner = CliRunner()


def test_train_then_search_a_supernet_from_the_cli(tmp_path: Path) -> None:
    sn = tmp_path / "sn"
    r = runner.invoke(app, ["supernet", "--data", "digits", "--limit", "300", "--no-teacher", "--steps", "20",
                            "--max-widths", "4,8", "--max-params", "1500", "--set", "space.widths=[2,4,8]",
                            "--set", "supernet.checkpoint_every=10", "--run-dir", str(sn), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["kind"] == "supernet" and doc["result"]["steps"] == 20
    assert (sn / "supernet.json").exists() and (sn / "report.html").exists()
    # a finished run resumes to the same end, doing nothing again
    r = runner.invoke(app, ["resume", str(sn), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["result"]["weights_hash"] == doc["result"]["weights_hash"]
    r = runner.invoke(app, ["search", "--supernet", str(sn), "--data", "digits", "--limit", "300", "--no-teacher",
                            "--population", "4", "--generations", "2", "--top-k", "1", "--final-epochs", "1",
                            "--constraint", "params<=1500", "--run-dir", str(tmp_path / "search"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["pareto"] and all(p["train"]["steps"] == 0 for p in doc["pareto"])
    assert len(doc["finals"]) == 1
    # every Pareto-optimal subnet as its own exported student
    r = runner.invoke(app, ["export", str(tmp_path / "search"), "--candidate", "pareto", "--out", str(tmp_path / "ex"),
                            "--json"])
    assert r.exit_code == 0, r.output
    ex = json.loads(r.stdout)
    assert sorted(ex["candidates"]) == sorted(p["id"] for p in doc["pareto"])
    assert all((Path(p) / "genome.json").exists() and (Path(p) / "weights.safetensors").exists() for p in ex["out"])


def test_bad_supernet_input_exits_2_naming_what_to_fix(tmp_path: Path) -> None:
    r = runner.invoke(app, ["supernet", "--data", "digits", "--no-teacher", "--max-widths", "4,x",
                            "--run-dir", str(tmp_path / "a")])
    assert r.exit_code == 2 and "--max-widths" in r.output
    r = runner.invoke(app, ["supernet", "--data", "digits", "--no-teacher", "--set", "supernet.random_subnets=-1",
                            "--run-dir", str(tmp_path / "b")])
    assert r.exit_code == 2 and "supernet.random_subnets" in r.output
    r = runner.invoke(app, ["search", "--supernet", str(tmp_path / "none"), "--data", "digits",
                            "--run-dir", str(tmp_path / "c")], env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "supernet.run" in r.output
    assert not any((tmp_path / d).exists() for d in "abc")


def test_max_seconds_bounds_the_training_from_the_cli(tmp_path: Path) -> None:
    r = runner.invoke(app, ["supernet", "--data", "digits", "--limit", "300", "--no-teacher", "--steps", "100000",
                            "--max-seconds", "2", "--max-widths", "4,8", "--set", "space.widths=[2,4,8]",
                            "--set", "supernet.checkpoint_every=20", "--run-dir", str(tmp_path / "sn"), "--json"])
    assert r.exit_code == 0, r.output
    assert 20 < json.loads(r.stdout)["result"]["steps"] < 100000
    r = runner.invoke(app, ["supernet", "--data", "digits", "--no-teacher", "--max-seconds", "0",
                            "--run-dir", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "supernet.max_seconds" in r.output and not (tmp_path / "bad").exists()
