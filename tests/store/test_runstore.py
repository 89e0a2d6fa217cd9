from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from evofusion.errors import RunStoreError
from evofusion.store import SCHEMA_VERSION, RunStore, atomic_write_json


def test_candidates_round_trip_and_readonly_reader(tmp_path: Path) -> None:
    with RunStore(tmp_path / "r", create=True) as s:
        s.add_candidate(0, 0, {"kind": "student"}, "abc", [], None, {}, seed=5)
        assert s.candidate(0)["status"] == "PENDING"
        s.finish_candidate(0, "COMPLETE", {"accuracy": 0.5}, weights_hash="h", weights_file="w", seconds=1.0)
        with RunStore(tmp_path / "r", lock=False, readonly=True) as reader:
            row = reader.candidate(0)
            assert row["objective_values"] == {"accuracy": 0.5} and row["seed"] == 5
            with pytest.raises(sqlite3.OperationalError):
                reader.conn.execute("DELETE FROM candidates")
        assert s.count("COMPLETE") == 1


def test_lock_refuses_second_driver(tmp_path: Path) -> None:
    with RunStore(tmp_path / "r", create=True):
        with pytest.raises(RunStoreError, match="another driver"):
            RunStore(tmp_path / "r")


def test_missing_and_wrong_schema(tmp_path: Path) -> None:
    with pytest.raises(RunStoreError, match="no run"):
        RunStore(tmp_path / "none")
    with RunStore(tmp_path / "r", create=True) as s:
        s.conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        s.conn.commit()
    with pytest.raises(RunStoreError, match="schema version 99"):
        RunStore(tmp_path / "r")


def test_corrupt_database_named(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RunStoreError, match="run.db"):
        RunStore(tmp_path / "r")


def test_checkpoint_fallback_to_newest_valid(tmp_path: Path) -> None:
    with RunStore(tmp_path / "r", create=True) as s:
        s.write_checkpoint(1, {"strategy": {"a": 1}})
        s.write_checkpoint(2, {"strategy": {"a": 2}})
        (tmp_path / "r" / "checkpoints" / "gen_00002.json").write_text('{"trunc')
        state, warnings = s.latest_checkpoint()
        assert state["generation"] == 1 and state["schema_version"] == SCHEMA_VERSION
        assert len(warnings) == 1 and "gen_00002.json" in warnings[0]


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "x.json", {"a": 1})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_paths_of_a_run_given_relatively_are_stored_relative_to_it(tmp_path, monkeypatch) -> None:
    """A run directory named relatively (``--run-dir runs/x``) used to store paths relative to the
    working directory, which then resolved to runs/x/runs/x/weights/..."""
    monkeypatch.chdir(tmp_path)
    with RunStore("runs/x", create=True) as s:
        w = s.weights_path(0)  # runs/x/weights/0.safetensors
        w.parent.mkdir(parents=True)
        w.write_bytes(b"w")
        s.add_candidate(0, 0, {}, "h", [], None, {}, 0)
        s.finish_candidate(0, "COMPLETE", {}, weights_file=str(w))
        assert s.candidate(0)["weights_file"] == "weights/0.safetensors"
        assert s.resolve("weights/0.safetensors").read_bytes() == b"w"
        assert s.rel("weights/0.safetensors") == "weights/0.safetensors"  # already run-relative
