from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from evofusion import load_student
from evofusion.cli import app

runner = CliRunner()
QUICK = ["--set", "data.limit=300", "--set", "distill.steps=10", "--set", "teacher.epochs=20",
         "--set", "final.epochs=1", "--quiet"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_search_as_written_in_the_issue_then_report_export_evaluate(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = invoke("search", "--data", "digits", "--population", "4", "--generations", "2", "--seed", "7",
               "--run-dir", str(run))
    assert r.exit_code == 0, r.output
    assert (run / "run.db").exists() and (run / "report.html").exists()
    html = (run / "report.html").read_text()
    assert "Pareto front" in html and '<script src="plotly.min.js">' in html and (run / "plotly.min.js").exists()

    r = invoke("report", str(run), "--json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert len(data["candidates"]) == 8
    assert {"id", "generation", "status", "parents", "objectives"} <= set(data["candidates"][0])
    assert data["pareto"] and set(data["pareto"]) <= {c["id"] for c in data["candidates"]}
    assert data["best"] is not None

    out = tmp_path / "student"
    r = invoke("export", str(run), "--candidate", "best", "--out", str(out))
    assert r.exit_code == 0, r.output
    model = load_student(out)  # a plain nn.Module in one call
    assert isinstance(model, torch.nn.Module)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    card = json.loads((out / "card.json").read_text())
    assert card["candidate_id"] == data["best"] and "flops" in card["objectives"]
    assert card["lineage"][0]["id"] == data["best"]  # the candidate itself, then its ancestors
    assert {a["id"] for a in card["lineage"][1:]} >= set(card["parents"])

    r = invoke("evaluate", str(out), "--data", "digits", "--no-latency", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["params"] == card["objectives"]["params"] and 0 <= res["accuracy"] <= 1


def test_resume_continues_a_finished_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert invoke("search", "--data", "digits", "--population", "4", "--generations", "1",
                  "--run-dir", str(run), *QUICK).exit_code == 0
    r = invoke("resume", str(run), "--generations", "2", "--quiet")
    assert r.exit_code == 0, r.output
    data = json.loads(invoke("report", str(run), "--json", "--no-html").stdout)
    assert sorted({c["generation"] for c in data["candidates"]}) == [0, 1]
    r = invoke("resume", str(run), "--set", "distill.lr=0.5", "--quiet")
    assert r.exit_code == 2 and "distill.lr" in r.output and "--allow-config-change" in r.output


BAD_FLAGS = [
    (["--population", "1"], "strategy.population"),
    (["--strategy", "hillclimb"], "strategy.name"),
    (["--data", "imagenet"], "data.name"),
    (["--objectives", "accuracy,beauty"], "objectives"),
    (["--constraint", "params < 5"], "constraints"),
    (["--set", "distill.alpha=2"], "distill.alpha"),
    (["--set", "space.widths=[0, 8]"], "space.widths"),
    (["--set", "space.min_stages=3", "--set", "space.max_stages=2"], "space"),
    (["--executor", "gpu-farm"], "executor"),
    (["--device", "tpu"], "device"),
    (["--teacher", "/nonexistent/teacher"], "teacher.path"),
    (["--set", "strategy.params.tournament_size=1", "--strategy", "ga"], "strategy.params.tournament_size"),
    (["--set", "nonsense=1"], "nonsense"),
    (["--generations", "0"], "generations"),
    (["--data-fraction", "1.5"], "distill.data_fraction"),
]


@pytest.mark.parametrize(("flags", "field"), BAD_FLAGS)
def test_bad_values_exit_2_name_the_field_and_create_nothing(tmp_path: Path, flags: list[str], field: str) -> None:
    run = tmp_path / "run"
    r = invoke("search", "--data", "digits", "--run-dir", str(run), *flags)
    assert r.exit_code == 2, r.output
    assert field in r.output
    assert not run.exists()


def test_bad_config_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"name": "digits", "colour": "red"}}))
    r = invoke("search", "--config", str(cfg), "--run-dir", str(run))
    assert r.exit_code == 2 and "data.colour" in r.output and "unknown key" in r.output
    cfg.write_text("data: [unclosed")
    r = invoke("search", "--config", str(cfg), "--run-dir", str(run))
    assert r.exit_code == 2 and "not valid YAML" in r.output
    r = invoke("search", "--config", str(tmp_path / "missing.yaml"), "--run-dir", str(run))
    assert r.exit_code == 2 and "does not exist" in r.output
    cfg.write_text(yaml.safe_dump({"strategy": {"population": "many"}}))
    r = invoke("search", "--config", str(cfg), "--run-dir", str(run))
    assert r.exit_code == 2 and "strategy.population" in r.output
    assert not run.exists()


def _write_idx(path: Path, data: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(data)


def test_bad_data_sets_exit_2(tmp_path: Path) -> None:
    run = tmp_path / "run"
    empty = tmp_path / "empty"
    empty.mkdir()
    r = invoke("search", "--data", "fashion-mnist", "--data-dir", str(empty), "--run-dir", str(run))
    assert r.exit_code == 2 and "dataset-fashion-mnist" in r.output
    corrupt = tmp_path / "mnist"
    corrupt.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        _write_idx(corrupt / f"{name}.gz", b"\x00\x00\x08\x03\x00\x00\x00\x05garbage")
    r = invoke("search", "--data", "mnist", "--data-dir", str(corrupt), "--run-dir", str(run))
    assert r.exit_code == 2 and "idx" in r.output.lower()
    assert not run.exists()


def test_bad_export_and_report_requests(tmp_path: Path) -> None:
    r = invoke("report", str(tmp_path / "nothing"))
    assert r.exit_code == 2 and "no run" in r.output
    r = invoke("export", str(tmp_path / "nothing"), "--candidate", "abc")
    assert r.exit_code == 2
    r = invoke("teacher", "train", "--arch", "vgg99", "--data", "digits", "--out", str(tmp_path / "t"))
    assert r.exit_code == 2 and "vgg99" in r.output


def test_teacher_train_command_and_search_with_it(tmp_path: Path) -> None:
    tdir = tmp_path / "teacher"
    r = invoke("teacher", "train", "--arch", "small_cnn", "--width", "0.25", "--data", "digits", "--epochs", "2",
               "--out", str(tdir))
    assert r.exit_code == 0, r.output
    meta = json.loads((tdir / "teacher.json").read_text())
    assert meta["arch"] == "small_cnn" and (tdir / "weights.safetensors").exists()
    before = (tdir / "weights.safetensors").read_bytes()
    r = invoke("teacher", "train", "--arch", "small_cnn", "--width", "0.25", "--data", "digits", "--epochs", "1",
               "--out", str(tdir))  # never a silent overwrite of a trained teacher
    assert r.exit_code == 2 and "--force" in r.output and (tdir / "weights.safetensors").read_bytes() == before
    run = tmp_path / "run"
    r = invoke("search", "--data", "digits", "--teacher", str(tdir), "--population", "2", "--generations", "1",
               "--strategy", "random", "--run-dir", str(run), *QUICK)
    assert r.exit_code == 0, r.output
    data = json.loads(invoke("report", str(run), "--json", "--no-html").stdout)
    assert data["teacher"]["weights_hash"] == meta["weights_hash"]


def test_list_command() -> None:
    r = invoke("list")
    assert r.exit_code == 0
    for word in ("nsga2", "regularized", "mutate_width", "bit_flip", "small_cnn", "fashion-mnist"):
        assert word in r.stdout


def test_epochs_flag_replaces_the_step_budget(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = invoke("search", "--data", "digits", "--population", "2", "--generations", "1", "--strategy", "random",
               "--epochs", "1", "--data-fraction", "0.5", "--run-dir", str(run), *QUICK[:2], *QUICK[4:])
    assert r.exit_code == 0, r.output
    data = json.loads(invoke("report", str(run), "--json", "--no-html").stdout)
    from evofusion.store import RunStore

    with RunStore(run, lock=False, readonly=True) as s:
        assert s.get_meta("config")["distill"]["steps"] is None
        row = s.candidate(data["candidates"][0]["id"])
    # 1 epoch over half of the 300-example training split at batch 128 = 2 steps
    assert row["train"]["steps"] == 2


def test_resume_of_a_run_made_from_python_data_says_why_not(tmp_path: Path) -> None:
    import evofusion as ef
    from evofusion.data import from_arrays, load_dataset

    d = load_dataset("digits", limit=300)
    (x, y), (xt, yt) = d.train.tensors(), d.test.tensors()
    splits = from_arrays("mydata", x.numpy(), y.numpy(), xt.numpy(), yt.numpy())
    run = tmp_path / "run"
    ef.Study.create({"generations": 1, "strategy": {"population": 2}, "distill": {"steps": 5},
                     "teacher": {"enabled": False}}, run, splits=splits, log=lambda *_: None).close()
    r = runner.invoke(app, ["resume", str(run), "--generations", "2"])
    assert r.exit_code == 2
    assert "in-memory data 'mydata'" in r.output and "Study.resume(" in r.output and "splits=" in r.output
    s = ef.Study.resume(run, splits=splits, overrides={"generations": 2}, log=lambda *_: None)  # Python: fine
    s.close()
