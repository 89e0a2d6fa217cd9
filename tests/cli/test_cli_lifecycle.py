"""One lifecycle from the command line: ``evofusion resume`` resumes any kind, exports read the run's
own files wherever the run lies, a run directory is never bricked, and a config change on resume is
validated before anything is written and recorded as history (regressions of issue 11)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.store import RunStore

runner = CliRunner()
SEARCH = ["search", "--data", "digits", "--population", "4", "--seed", "7", "--set", "data.limit=300",
          "--set", "distill.steps=10", "--set", "teacher.epochs=20", "--set", "final.epochs=1",
          "--set", "space.widths=[4, 8]", "--set", "space.max_stages=2", "--quiet"]
WEIGHTS = ["evolve-weights", "--strategy", "de", "--data", "digits", "--limit", "300", "--population", "6",
           "--seed", "3", "--set", 'student={"stages": [{"width": 4}, {"width": 8}]}', "--set", "ancestors.epochs=1",
           "--set", "fitness.batch=64", "--quiet"]
GROW = ["grow", "--data", "digits", "--no-teacher", "--controller", "random", "--limit", "300", "--seed", "3",
        "--set", "growth.grow_every=10", "--set", "growth.eval_size=60", "--set", "growth.calib_size=64",
        "--set", "train.batch_size=32", "--quiet"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_resume_resumes_a_weight_run_and_export_works_from_any_folder(tmp_path: Path) -> None:
    run = tmp_path / "w"
    r = invoke(*WEIGHTS, "--generations", "2", "--run-dir", str(run))
    assert r.exit_code == 0, r.output
    r = invoke("resume", str(run), "--generations", "3", "--quiet")  # used to fail: "weights: unknown key"
    assert r.exit_code == 0, r.output
    with RunStore(run, lock=False, readonly=True) as s:
        assert s.kind() == "weights" and s.count() == 6 + 3
        assert s.config()["weights"]["generations"] == 3
        assert s.get_meta("config")["weights"]["generations"] == 2  # the creation config is kept
        assert [h["changes"] for h in s.config_history()] == [["generations: 2 -> 3"]]
    logs = [json.loads(line)["event"] for line in (run / "logs.jsonl").read_text().splitlines()]
    assert {"study_start", "candidate", "generation", "study_end"} <= set(logs)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(elsewhere)  # used to end in FileNotFoundError on weights/<id>.safetensors
        r = invoke("export", str(run), "--candidate", "best", "--out", "student")
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    assert (elsewhere / "student" / "weights.safetensors").exists()


def test_resume_resumes_a_grow_run_with_a_larger_step_budget(tmp_path: Path) -> None:
    run = tmp_path / "g"
    assert invoke(*GROW, "--steps", "20", "--run-dir", str(run)).exit_code == 0
    r = invoke("resume", str(run), "--set", "growth.steps=30", "--quiet")
    assert r.exit_code == 0, r.output
    with RunStore(run, lock=False, readonly=True) as s:
        assert s.kind() == "grow"
        assert max(p["step"] for p in s.growth_curve()) == 30
        state, _ = s.latest_checkpoint()
        assert state is not None and "db_digest" in state and isinstance(state["tensors"], dict)
    assert (run / "logs.jsonl").exists()
    r = invoke("resume", str(run), "--set", "growth.grow_every=5", "--quiet")
    assert r.exit_code == 2 and "allow-config-change" in r.output


def test_a_config_change_that_cannot_apply_writes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "s"
    assert invoke(*SEARCH, "--generations", "1", "--top-k", "0", "--run-dir", str(run)).exit_code == 0
    before = (run / "checkpoints").glob("gen_*.json")
    r = invoke("resume", str(run), "--generations", "2", "--set", "strategy.name=ga", "--allow-config-change",
               "--quiet")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "does not fit this run's config" in r.output
    with RunStore(run, lock=False, readonly=True) as s:
        assert s.config_history() == [] and s.config()["strategy"]["name"] == "nsga2"
    assert sorted((run / "checkpoints").glob("gen_*.json")) == sorted(before)
    r = invoke("resume", str(run), "--generations", "2", "--quiet")  # still resumable as it was
    assert r.exit_code == 0, r.output


def test_a_config_change_is_history_not_a_rewrite(tmp_path: Path) -> None:
    run = tmp_path / "s"
    assert invoke(*SEARCH, "--generations", "1", "--top-k", "0", "--run-dir", str(run)).exit_code == 0
    r = invoke("resume", str(run), "--generations", "2", "--set", "distill.lr=0.01", "--allow-config-change",
               "--quiet")
    assert r.exit_code == 0, r.output
    with RunStore(run, lock=False, readonly=True) as s:
        assert s.get_meta("config")["distill"]["lr"] == 0.003  # what the first 4 candidates trained with
        (event,) = s.config_history()
        assert event["generation"] == 1 and "distill.lr: 0.003 -> 0.01" in event["changes"]
        assert s.config()["distill"]["lr"] == 0.01 and s.count() == 8


def test_a_run_killed_right_after_creation_is_resumable_not_bricked(tmp_path: Path) -> None:
    from evofusion import Study
    from tests.conftest import tiny_config

    run = tmp_path / "s"
    (run).mkdir()
    (run / ".run.db.creating-12345").write_bytes(b"half-written by a killed creation")  # no run.db yet
    Study.create(tiny_config(generations=1), run, log=lambda *_: None).close()  # killed before generation 0
    assert not list(run.glob(".run.db.creating-*"))
    r = invoke("report", str(run), "--no-html")
    assert r.exit_code == 0, r.output
    r = invoke(*SEARCH, "--generations", "1", "--run-dir", str(run))
    assert r.exit_code == 2 and "already holds a run" in r.output and "evofusion resume" in r.output
    r = invoke("resume", str(run), "--quiet")
    assert r.exit_code == 0, r.output
    with RunStore(run, lock=False, readonly=True) as s:
        assert s.count("COMPLETE") + s.count("INFEASIBLE") + s.count("FAILED") == 4


def test_a_copied_run_reads_its_own_files(tmp_path: Path) -> None:
    run, copy = tmp_path / "s", tmp_path / "copy"
    assert invoke(*SEARCH, "--generations", "2", "--top-k", "1", "--run-dir", str(run)).exit_code == 0
    shutil.copytree(run, copy)
    shutil.rmtree(run)  # the original is gone: the copy must not need it
    r = invoke("export", str(copy), "--candidate", "best", "--out", str(tmp_path / "student"))
    assert r.exit_code == 0, r.output
    with RunStore(copy, lock=False, readonly=True) as s:
        (final,) = s.finals()
        assert not os.path.isabs(final["weights_file"])
        src = s.resolve(final["weights_file"])
    assert src is not None and src.parent.parent == copy
    assert (tmp_path / "student" / "weights.safetensors").read_bytes() == src.read_bytes()


def test_list_shows_every_registry() -> None:
    r = invoke("list")
    assert r.exit_code == 0
    for word in ("weight strategies", "evolver", "es", "controllers", "rl", "executors", "ray", "run kinds",
                 "weights", "trackers"):
        assert word in r.output, word


@pytest.mark.parametrize("alias", ["weights", "grow"])
def test_per_command_resume_flags_stay_aliases(alias: str, tmp_path: Path) -> None:
    run = tmp_path / alias
    if alias == "weights":
        assert invoke(*WEIGHTS, "--generations", "1", "--run-dir", str(run)).exit_code == 0
        r = invoke("evolve-weights", "--resume", str(run), "--generations", "2", "--quiet")
    else:
        assert invoke(*GROW, "--steps", "20", "--run-dir", str(run)).exit_code == 0
        r = invoke("grow", "--resume", "--run-dir", str(run), "--quiet")
    assert r.exit_code == 0, r.output
