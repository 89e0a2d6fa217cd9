"""The fault battery: every fault fails one candidate or stops the run cleanly, and nothing is lost.

Each test asserts its figure: faults that must FAIL exactly one candidate; corruptions that must be
detected with a message naming the file and fall back to the newest valid generation, after which
the run must equal the uninterrupted one; kills after which nothing finished is lost.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from evofusion import Study
from evofusion.cli import app
from evofusion.errors import RunStoreError, TeacherError
from evofusion.store import RunStore
from evofusion.store import runstore as runstore_mod
from evofusion.store import weights as weights_store_mod
from tests.conftest import tiny_config
from tests.engine.fault_helpers import Malicious, faulty_evaluate

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"log": lambda *_: None}


def _rows(store: RunStore) -> list[tuple]:
    return [(r["id"], r["genome_hash"], r["status"], r["objective_values"]) for r in store.candidates()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[tuple]]]:
    """A finished 3-generation run and its candidate rows; tests corrupt copies of it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EVOFUSION_CACHE", str(tmp_path_factory.getbasetemp() / "evofusion-cache"))
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("ref") / "run"
    s = Study.create(tiny_config(generations=3), run, **QUIET)
    s.optimize()
    rows = _rows(s.store)
    s.close()
    yield run, rows
    mp.undo()


def _copy(reference: tuple[Path, list[tuple]], tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(reference[0], dst)
    return dst


def _resume_to_end(run: Path) -> tuple[list[str], int, list[tuple]]:
    s = Study.resume(run, **QUIET)
    try:
        start = s.generation
        s.optimize()
        return s.warnings, start, _rows(s.store)
    finally:
        s.close()


# --- worker faults: each fails one candidate, never the run ------------------------------------------
@pytest.mark.slow
def test_worker_crash_hang_nan_inf_memoryerror_each_fail_one_candidate(tmp_path: Path) -> None:
    faults = {"0": "crash", "1": "hang", "2": "nan", "3": "inf", "4": "oom", "5": "crash_once"}
    cfg = tiny_config(generations=1, executor="process", workers=2, threads=1, timeout=20, retries=1,
                      **{"strategy.population": 8})
    s = Study.create(cfg, tmp_path / "r", **QUIET)
    s.setup.context = dataclasses.replace(s.setup.context, extra={"faults": faults, "marker_dir": str(tmp_path)})
    s.evaluate_fn = faulty_evaluate
    try:
        s.optimize()
        rows = {r["id"]: r for r in s.store.candidates()}
        assert s.generation == 1 and (s.store.dir / "checkpoints" / "gen_00001.json").exists()
        reasons = {i: rows[i]["reason"] for i in range(8)}
        assert [rows[i]["status"] for i in range(8)] == ["FAILED"] * 5 + ["COMPLETE"] * 3, reasons
        assert "worker process died (exit code 3) on 2 attempt(s)" in reasons[0]
        assert "timed out after 20 s" in reasons[1]
        assert "non-finite loss" in reasons[2] and "non-finite loss" in reasons[3]
        assert reasons[4].startswith("out of memory"), reasons[4]
        assert (tmp_path / "crashed_5").exists()  # crashed once, retried, then COMPLETE
        assert not set(s.pareto_ids()) & set(range(5))
    finally:
        s.close()


# --- corrupt checkpoints ------------------------------------------------------------------------------
def _flip_digit(text: str, key: str) -> str:
    i = text.index(f'"{key}": ') + len(key) + 4
    while not text[i].isdigit():
        i += 1
    return text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "wrong_schema_version"])
def test_corrupt_checkpoint_detected_and_resume_falls_back(tmp_path: Path, reference, damage: str) -> None:
    run = _copy(reference, tmp_path)
    path = run / "checkpoints" / "gen_00003.json"
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "flipped_byte":  # still valid JSON: only the checksum can tell
        path.write_text(_flip_digit(text, "next_id"))
        json.loads(path.read_text())
    else:
        state = json.loads(text)
        state["schema_version"] = 99
        path.write_text(json.dumps(state))
    warnings, start, rows = _resume_to_end(run)
    assert start == 2
    assert any(str(path) in w for w in warnings), warnings
    assert rows == reference[1]


# --- corrupt databases --------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "wrong_schema_version"])
def test_corrupt_database_detected_and_resume_falls_back(tmp_path: Path, reference, damage: str) -> None:
    run = _copy(reference, tmp_path)
    db = run / "run.db"
    assert not (run / "run.db-wal").exists()  # merged on close: the bytes below are the database
    if damage == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
        # the newest backup is damaged too: resume must fall back one more generation
        b3 = run / "checkpoints" / "gen_00003.db"
        b3.write_bytes(b3.read_bytes()[:1000])
        want_start = 2
    elif damage == "flipped_byte":  # inside a row's values: SQLite keeps no checksums; the digest does
        raw = bytearray(db.read_bytes())
        i = raw.index(b'"accuracy": 0.') + len(b'"accuracy": 0.')
        raw[i] = ord("0") + (raw[i] - ord("0") + 1) % 10
        db.write_bytes(bytes(raw))
        want_start = 3
    else:
        conn = sqlite3.connect(db)
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        conn.commit()
        conn.close()
        want_start = 3
    warnings, start, rows = _resume_to_end(run)
    assert start == want_start
    assert any(str(db) in w and "corrupt" in w for w in warnings), warnings
    assert list((run / "corrupt").iterdir())  # the damaged file is kept aside, not deleted
    assert rows == reference[1]


def test_corrupt_database_without_backup_is_named(tmp_path: Path) -> None:
    s = Study.create(tiny_config(), tmp_path / "r", **QUIET)
    s.close()
    (tmp_path / "r" / "run.db").write_bytes(b"garbage" * 500)
    with pytest.raises(RunStoreError, match=r"run\.db is corrupt .* no valid backup"):
        Study.resume(tmp_path / "r", **QUIET)


# --- kills --------------------------------------------------------------------------------------------
DRIVER = textwrap.dedent("""
    import json, sys, torch
    torch.set_num_threads(1)
    from evofusion import Study
    from tests.conftest import tiny_config
    cfg = tiny_config(generations=3)
    s = Study.create(cfg, sys.argv[1], log=lambda *_: None) if sys.argv[2] == "create" \\
        else Study.resume(sys.argv[1], log=lambda *_: None)
    print("STARTED", flush=True)
    s.optimize()
""")


@pytest.mark.slow
def test_driver_sigkill_at_random_moments_then_resume(tmp_path: Path, reference) -> None:
    rng = np.random.default_rng(3)
    run = tmp_path / "run"
    finished_before: dict[int, tuple] = {}
    kills = 0
    for k in range(2):
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(run), "create" if k == 0 else "resume"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert "STARTED" in proc.stdout.readline(), proc.stderr.read()
        time.sleep(float(rng.uniform(0.5, 4.0)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        with RunStore(run, lock=False, readonly=True) as s:
            finished_before.update({r[0]: r for r in _rows(s) if r[2] != "PENDING"})
    _, _, rows = _resume_to_end(run)
    assert kills >= 1
    assert rows == reference[1]  # same final genomes and values as the uninterrupted run
    lost = [cid for cid, r in finished_before.items() if r not in rows]
    assert lost == []


def test_sigkill_during_checkpoint_writes_keeps_previous_checkpoint(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = RunStore(tmp_path / "r", create=True)
    big = {"next_id": 0, "elapsed": 0.0, "strategy": {"x": [float(i) for i in range(100_000)]}}
    store.write_checkpoint(1, big)
    newest, mid_write = 1, 0
    try:
        for _ in range(15):
            pid = os.fork()
            if pid == 0:
                g = newest + 1
                while True:
                    store.write_checkpoint(g, big)
                    g += 1
            time.sleep(float(rng.uniform(0, 0.4)))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            tmps = list((tmp_path / "r" / "checkpoints").glob(".gen_*.tmp"))
            mid_write += bool(tmps)
            state, warnings = store.latest_checkpoint()
            assert state is not None and warnings == [] and state["generation"] >= newest
            newest = state["generation"]
    finally:
        store.close()
    assert newest > 1


# --- teacher, config, second driver, readers ------------------------------------------------------------
def test_malicious_teacher_pickle_runs_no_code(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"conv.weight": torch.zeros(2), "x": Malicious(str(sentinel))}, evil)
    with pytest.raises(TeacherError, match="safetensors") as info:
        Study.create(tiny_config(**{"teacher.path": str(evil), "teacher.arch": "small_cnn"}), tmp_path / "r",
                     **QUIET)
    assert str(evil) in str(info.value)
    assert not sentinel.exists() and not (tmp_path / "r").exists()
    res = CliRunner().invoke(app, ["search", "--data", "digits", "--limit", "300", "--teacher", str(evil),
                                   "--set", "teacher.arch=small_cnn", "--run-dir", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "safetensors" in res.output
    assert not sentinel.exists()


def test_cli_resume_with_changed_config_refused_with_diff(tmp_path: Path, reference) -> None:
    run = _copy(reference, tmp_path)
    res = CliRunner().invoke(app, ["resume", str(run), "--set", "distill.lr=0.01", "-q"])
    assert res.exit_code == 2
    assert "distill.lr: 0.003 -> 0.01" in res.output and "--allow-config-change" in res.output
    res = CliRunner().invoke(app, ["resume", str(run), "--set", "distill.lr=0.01", "--allow-config-change", "-q"])
    assert res.exit_code == 0, res.output


def test_second_driver_exits_at_once(tmp_path: Path, reference) -> None:
    run = _copy(reference, tmp_path)
    holder = RunStore(run)
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", "from evofusion.cli import main; main()", "resume", str(run), "-q"],
                              cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        took = time.perf_counter() - t0
    finally:
        holder.close()
    assert proc.returncode == 2, proc.stderr
    assert "another driver" in proc.stderr and str(os.getpid()) in proc.stderr
    assert took < 60  # interpreter start-up only: it never waits for the lock


def test_reader_polling_never_fails_the_writer(tmp_path: Path) -> None:
    from evofusion.viz.dashboard import read_run
    from evofusion.viz.report import report_data

    s = Study.create(tiny_config(generations=3), tmp_path / "r", **QUIET)
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.append(len(read_run(tmp_path / "r", report_data)["candidates"]))
            except BaseException as e:  # a reader error is a test failure too
                errors.append(e)
                return

    t = threading.Thread(target=poll)
    t.start()
    try:
        s.optimize()
    finally:
        stop.set()
        t.join()
        s.close()
    assert errors == []
    assert len(seen) >= 5 and seen == sorted(seen) and seen[-1] == 12


# --- full or read-only disk ---------------------------------------------------------------------------
def test_full_disk_at_checkpoint_stops_run_and_keeps_last_checkpoint(tmp_path: Path, reference, monkeypatch) -> None:
    real = runstore_mod.atomic_write_bytes

    def full(path, data):
        if Path(path).name == "gen_00002.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(runstore_mod, "atomic_write_bytes", full)
    s = Study.create(tiny_config(generations=3), tmp_path / "run", **QUIET)
    try:
        with pytest.raises(RunStoreError) as info:
            s.optimize()
    finally:
        s.close()
    msg = str(info.value)
    assert "No space left on device" in msg and "checkpoint of generation 1 is intact" in msg
    assert "evofusion resume" in msg
    monkeypatch.setattr(runstore_mod, "atomic_write_bytes", real)
    warnings, start, rows = _resume_to_end(tmp_path / "run")
    assert start == 1 and warnings == [] and rows == reference[1]


def test_database_full_for_real_stops_run(tmp_path: Path) -> None:
    s = Study.create(tiny_config(generations=3), tmp_path / "run", **QUIET)
    try:
        s.step()
        pages = s.store.conn.execute("PRAGMA page_count").fetchone()[0]
        s.store.conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, no mock
        with pytest.raises(RunStoreError, match="database or disk is full.*checkpoint of generation 1 is intact"):
            for _ in range(2):
                s.step()
    finally:
        s.close()
    state, warnings = RunStore(tmp_path / "run", lock=False, readonly=True).latest_checkpoint()
    assert state is not None and state["generation"] >= 1 and warnings == []


def test_read_only_disk_when_saving_weights_stops_run_unrecorded(tmp_path: Path, monkeypatch) -> None:
    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    s = Study.create(tiny_config(generations=2), tmp_path / "run", **QUIET)
    try:
        s.step()
        monkeypatch.setattr(weights_store_mod, "atomic_write_bytes", read_only)  # every weights file
        with pytest.raises(RunStoreError, match="Read-only file system.*checkpoint of generation 1 is intact"):
            s.step()
        assert s.store.count("FAILED") == 0  # not recorded as the candidate's fault: it runs again on resume
    finally:
        s.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; the injected tests cover it")
def test_read_only_run_directory_for_real(tmp_path: Path) -> None:
    s = Study.create(tiny_config(generations=2), tmp_path / "run", **QUIET)
    try:
        s.step()
        (tmp_path / "run" / "checkpoints").chmod(0o555)
        with pytest.raises(RunStoreError, match="cannot write to the run directory"):
            s.step()
    finally:
        (tmp_path / "run" / "checkpoints").chmod(0o755)
        s.close()
