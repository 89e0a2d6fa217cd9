"""Trackers (TensorBoard, MLflow), the --tracker option, --quiet and logs.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evofusion import Study
from evofusion.cli import app
from evofusion.engine.trackers import TRACKERS, MLflowCallback, TensorBoardCallback, flatten_config
from tests.conftest import tiny_config

QUIET_LOG = {"log": lambda *_: None}
SMALL_SPACE = ["--set", "space.widths=[4,8]", "--set", "space.max_stages=2", "--set", "space.max_depth=1",
               "--set", "space.head_hidden=[0]"]


@pytest.fixture(autouse=True)
def _offline_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tracking URI is always passed as an argument; never let an ambient one or telemetry leak in
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")


def test_registry_names_both_trackers() -> None:
    assert {"tensorboard", "mlflow"} <= set(TRACKERS.names())
    assert flatten_config({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": "x"}) == {
        "a.b": "1", "a.c": "[1, 2]", "d": "null", "e": "x"}


def test_tensorboard_event_files_hold_candidate_and_generation_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    study = Study.create(tiny_config(), run, callbacks=[TensorBoardCallback()], **QUIET_LOG)
    try:
        study.optimize()
    finally:
        study.close()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    ea = EventAccumulator(str(run / "tensorboard"))
    ea.Reload()
    tags = ea.Tags()
    assert {"candidate/accuracy", "candidate/params", "generation/best_accuracy", "generation/mean_accuracy",
            "generation/failed", "generation/hypervolume"} <= set(tags["scalars"])
    assert "config/text_summary" in tags["tensors"]
    # candidates finish in the executor's priority order (cheapest first), each logged at its id
    assert sorted(e.step for e in ea.Scalars("candidate/accuracy")) == list(range(8))
    assert [e.step for e in ea.Scalars("generation/best_accuracy")] == [0, 1]
    assert [e.value for e in ea.Scalars("generation/failed")] == [0.0, 0.0]
    hv = [e.value for e in ea.Scalars("generation/hypervolume")]
    assert 0 < hv[0] <= hv[1]  # the archive only grows


def test_mlflow_run_has_params_and_metrics_and_resume_continues_it(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run = tmp_path / "run"
    uri = f"sqlite:///{run.resolve() / 'mlflow.db'}"
    study = Study.create(tiny_config(generations=1), run, callbacks=[MLflowCallback()], **QUIET_LOG)
    try:
        study.optimize()
        run_id = study.callbacks[1].state_dict()["mlflow_run_id"]
    finally:
        study.close()

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("evofusion")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    r = runs[0]
    assert r.info.status == "FINISHED" and r.data.tags["evofusion.status"] == "FINISHED"
    assert r.data.params["strategy.name"] == "nsga2" and r.data.params["generations"] == "1"
    assert sorted(m.step for m in client.get_metric_history(run_id, "accuracy")) == [0, 1, 2, 3]
    assert {"params", "generation/best_accuracy", "generation/mean_accuracy", "generation/failed",
            "generation/hypervolume"} <= set(r.data.metrics)
    assert r.data.tags["evofusion.candidates"] == "complete=4 failed=0"
    assert exp.artifact_location == (run.resolve() / "mlartifacts").as_uri()  # nothing lands in the cwd

    # resume from the checkpoint: the run id comes back through state_dict/load_state_dict
    study = Study.resume(run, overrides={"generations": 2}, callbacks=[MLflowCallback()], **QUIET_LOG)
    try:
        assert study.callbacks[1].run_id == run_id
        study.optimize()
    finally:
        study.close()
    # resume with the trackers in other positions: saved states are matched by callback class
    study = Study.resume(run, overrides={"generations": 3}, callbacks=[TensorBoardCallback(), MLflowCallback()],
                         **QUIET_LOG)
    try:
        assert study.callbacks[2].run_id == run_id
        study.optimize()
        assert study.callbacks[2].run_id == run_id
    finally:
        study.close()

    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    assert sorted(m.step for m in client.get_metric_history(run_id, "accuracy")) == list(range(12))
    assert [m.step for m in client.get_metric_history(run_id, "generation/best_accuracy")] == [0, 1, 2]
    r = client.get_run(run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["generations"] == "1" and r.data.tags["resumed.generations"] == "3"


def test_unknown_tracker_exits_2_naming_the_option(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["search", "--data", "digits", "--run-dir", str(run), "--tracker", "nope"])
    assert r.exit_code == 2
    text = " ".join(r.output.split())
    assert "--tracker" in text and "nope" in text and "mlflow" in text and "tensorboard" in text
    assert not run.exists()


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    return subprocess.run([sys.executable, "-c", "from evofusion.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_quiet_search_with_trackers_prints_nothing_and_logs_jsonl(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    run = tmp_path / "run"
    quick = ["--data", "digits", "--population", "3", "--seed", "7", "--run-dir", str(run), "--set",
             "data.limit=300", "--set", "distill.steps=8", "--set", "teacher.epochs=20", "--set",
             "final.epochs=1", "--set", "final.top_k=1", *SMALL_SPACE]
    p = _cli("search", *quick, "--generations", "1", "--quiet", "--tracker", "tensorboard", "--tracker", "mlflow")
    assert p.returncode == 0, p.stderr
    assert (p.stdout, p.stderr) == ("", "")
    assert (run / "mlflow.db").exists() and list((run / "tensorboard").glob("events.out.tfevents.*"))

    p = _cli("resume", str(run), "--generations", "2", "--quiet", "--tracker", "mlflow")
    assert p.returncode == 0, p.stderr
    assert (p.stdout, p.stderr) == ("", "")

    events = [json.loads(line) for line in (run / "logs.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds == ["study_start", *["candidate"] * 3, "generation", "study_end",
                     "study_start", *["candidate"] * 3, "generation", "study_end"]
    assert sorted(e["id"] for e in events if e["event"] == "candidate") == list(range(6))
    ends = [e for e in events if e["event"] == "study_end"]
    assert 0 < ends[0]["elapsed"] < ends[1]["elapsed"] and ends[1]["next_id"] == 6

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run.resolve() / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("evofusion").experiment_id])
    assert len(runs) == 1 and len(client.get_metric_history(runs[0].info.run_id, "accuracy")) == 6
