"""The one run lifecycle, over every run kind (search, prune, grow, evolve-weights): kills at random
moments (the first second included), a corrupt checkpoint, a corrupt database, a full disk, a second
driver and a run directory moved or copied between kill and resume. After each, the run must end
with exactly what the uninterrupted run ends with."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from evofusion.engine.run import resume_run
from evofusion.errors import RunStoreError
from evofusion.store import RunStore
from evofusion.store import runstore as runstore_mod
from tests.engine.run_kinds import (
    KINDS,
    STORE_KIND,
    advance,
    create,
    finish,
    open_or_create,
    results,
    resume,
    train_prune_teacher,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_prune_teacher(tmp_path_factory.mktemp("prune-teacher"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path) -> dict[str, tuple]:
    """What each kind's uninterrupted run ends with (computed once per kind, on first use)."""
    out: dict[str, tuple] = {}
    base = tmp_path_factory.mktemp("reference")

    class Lazy(dict):
        def __missing__(self, kind: str) -> tuple:
            mp = pytest.MonkeyPatch()
            mp.setenv("EVOFUSION_CACHE", str(tmp_path_factory.getbasetemp() / "evofusion-cache"))
            try:
                run = create(kind, base / kind, teacher_dir)
                finish(run, kind)
                run.close()
            finally:
                mp.undo()
            self[kind] = results(base / kind)
            return self[kind]

    return Lazy(out)


def _partial(kind: str, run_dir: Path, teacher_dir: Path, n: int = 2) -> None:
    run = create(kind, run_dir, teacher_dir)
    try:
        advance(run, kind, n)
    finally:
        run.close()


def _resume_and_finish(run_dir: Path, kind: str) -> list[str]:
    run = resume(run_dir)
    try:
        finish(run, kind)
        return run.warnings
    finally:
        run.close()


@pytest.mark.parametrize("kind", KINDS)
def test_resume_after_a_stop_equals_the_uninterrupted_run(kind: str, tmp_path: Path, teacher_dir: Path,
                                                          reference: dict) -> None:
    _partial(kind, tmp_path / "run", teacher_dir)
    _resume_and_finish(tmp_path / "run", kind)
    assert results(tmp_path / "run") == reference[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_newest_checkpoint_is_named_and_skipped(kind: str, tmp_path: Path, teacher_dir: Path,
                                                        reference: dict) -> None:
    # valid JSON claiming generation 99: only the checksum can tell (WeightStudy used to trust it)
    run_dir = tmp_path / "run"
    _partial(kind, run_dir, teacher_dir)
    newest = sorted((run_dir / "checkpoints").glob("gen_*.json"))[-1]
    state = json.loads(newest.read_text())
    state["generation"] = 99
    newest.write_text(json.dumps(state))
    warnings = _resume_and_finish(run_dir, kind)
    assert any(newest.name in w and "checksum mismatch" in w for w in warnings), warnings
    assert results(run_dir) == reference[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_tensor_sidecar_is_caught(kind: str, tmp_path: Path, teacher_dir: Path, reference: dict) -> None:
    run_dir = tmp_path / "run"
    _partial(kind, run_dir, teacher_dir)
    sides = sorted((run_dir / "checkpoints").glob("gen_*.safetensors"))
    if not sides:
        assert kind in ("search", "search_mf", "prune", "search_supernet")  # their state is JSON only
        return
    data = bytearray(sides[-1].read_bytes())
    data[-1] ^= 0xFF
    sides[-1].write_bytes(bytes(data))
    warnings = _resume_and_finish(run_dir, kind)
    assert any(sides[-1].name in w and "sha256" in w for w in warnings), warnings
    assert results(run_dir) == reference[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_database_is_replaced_by_its_backup(kind: str, tmp_path: Path, teacher_dir: Path,
                                                    reference: dict) -> None:
    run_dir = tmp_path / "run"
    _partial(kind, run_dir, teacher_dir)
    for f in run_dir.glob("run.db-*"):
        f.unlink()
    (run_dir / "run.db").write_bytes(b"not a database" * 100)
    warnings = _resume_and_finish(run_dir, kind)
    assert any("run.db is corrupt" in w and "restored the backup" in w for w in warnings), warnings
    assert results(run_dir) == reference[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_full_disk_stops_cleanly_and_resume_finishes(kind: str, tmp_path: Path, teacher_dir: Path,
                                                     reference: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    run = create(kind, run_dir, teacher_dir)
    try:
        advance(run, kind, 1)
        real = runstore_mod.atomic_write_bytes

        def full(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(runstore_mod, "atomic_write_bytes", full)
        with pytest.raises(RunStoreError, match="No space left on device.*is intact.*evofusion resume"):
            advance(run, kind, 1)
        monkeypatch.setattr(runstore_mod, "atomic_write_bytes", real)
    finally:
        run.close()
    _resume_and_finish(run_dir, kind)
    assert results(run_dir) == reference[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_second_driver_is_refused(kind: str, tmp_path: Path, teacher_dir: Path) -> None:
    run = create(kind, tmp_path / "run", teacher_dir)
    try:
        with pytest.raises(RunStoreError, match="another driver"):
            resume_run(tmp_path / "run", log=lambda *_: None)
    finally:
        run.close()


@pytest.mark.parametrize("kind", KINDS)
def test_run_moved_between_stop_and_resume_gives_the_same_results(kind: str, tmp_path: Path, teacher_dir: Path,
                                                                  reference: dict) -> None:
    _partial(kind, tmp_path / "run", teacher_dir)
    shutil.move(tmp_path / "run", tmp_path / "moved")
    _resume_and_finish(tmp_path / "moved", kind)
    assert results(tmp_path / "moved") == reference[kind]
    with RunStore(tmp_path / "moved", lock=False, readonly=True) as s:
        paths = [r["weights_file"] for r in [*s.candidates(), *s.finals()] if r["weights_file"]]
        assert paths and not any(os.path.isabs(p) for p in paths)  # stored relative to the run directory
        assert all(s.resolve(p).exists() for p in paths)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_mismatch_names_the_command(kind: str, tmp_path: Path, teacher_dir: Path) -> None:
    from evofusion.engine.run import run_class

    create(kind, tmp_path / "run", teacher_dir).close()
    other = run_class("search" if not kind.startswith("search") else "weights")
    with pytest.raises(RunStoreError, match=f"evofusion resume {tmp_path / 'run'}"):
        other.resume(tmp_path / "run", log=lambda *_: None)


# --- SIGKILL at random moments, the first second of a run included ---------------------------------
DRIVER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    torch.set_num_threads(1)
    from tests.engine.run_kinds import finish, open_or_create
    kind, run_dir, teacher = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    print("STARTED", flush=True)
    run = open_or_create(kind, run_dir, teacher)
    finish(run, kind)
    run.close()
    print("FINISHED", flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_at_random_moments_then_resume(kind: str, tmp_path: Path, teacher_dir: Path,
                                               reference: dict) -> None:
    expected = reference[kind]
    rng = np.random.default_rng(KINDS.index(kind))
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # the first kill lands in the first second after the driver starts creating the run
    delays = [float(rng.uniform(0.0, 1.0)), float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.5, 3.0))]
    kills = 0
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, kind, str(run_dir), str(teacher_dir)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert "STARTED" in proc.stdout.readline(), proc.stderr.read()
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        # a kill at any moment leaves no run or a resumable one
        assert not run_dir.exists() or not (run_dir / "run.db").exists() or RunStore(
            run_dir, lock=False, readonly=True).kind() == STORE_KIND.get(kind, kind)
    assert kills >= 1
    run = open_or_create(kind, run_dir, teacher_dir)
    try:
        finish(run, kind)
    finally:
        run.close()
    assert results(run_dir) == expected
