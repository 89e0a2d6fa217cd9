"""The local executors: priority order, GPU-aware slots (fake probes), the hardened process pool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evofusion.engine.devices import GpuInfo, plan_slots
from evofusion.engine.executors import EXECUTORS, ProcessExecutor, SerialExecutor
from evofusion.errors import ConfigError, EvoFusionError
from tests.engine.fault_helpers import Job, failed, run_job


def _gpus(*free_mb: float):
    return lambda: [GpuInfo(i, f, 16000.0) for i, f in enumerate(free_mb)]


def test_plan_slots_with_fake_gpus() -> None:
    none = _gpus()
    assert plan_slots("cpu", 3, probe=_gpus(16000)) == ["cpu"] * 3
    assert plan_slots("auto", 2, probe=none) == ["cpu", "cpu"]  # CPU fallback
    with pytest.raises(ConfigError, match="device: cuda asked for, but no GPU"):
        plan_slots("cuda", 2, probe=none)
    assert plan_slots("auto", 4, probe=_gpus(16000)) == ["cuda:0"]  # one candidate per GPU
    assert plan_slots("cuda", 4, probe=_gpus(16000, 16000)) == ["cuda:0", "cuda:1"]
    assert plan_slots("auto", 1, 0.25, probe=_gpus(16000, 16000)) == ["cuda:0"] * 4 + ["cuda:1"] * 4
    # by memory estimate: 10 GB free / 3 GB -> 3, 2.5 GB free -> 0 slots on that GPU
    assert plan_slots("auto", 1, gpu_memory_mb=3000, probe=_gpus(10000, 2500)) == ["cuda:0"] * 3
    assert plan_slots("cuda:1", 1, probe=_gpus(16000, 16000)) == ["cuda:1"]
    with pytest.raises(ConfigError, match="cuda:3 asked for, but this machine has 2 GPU"):
        plan_slots("cuda:3", 1, probe=_gpus(1, 1))
    with pytest.raises(ConfigError, match="resources.gpu_memory_mb"):
        plan_slots("auto", 1, gpu_memory_mb=9000, probe=_gpus(8000))


@pytest.mark.parametrize("kind", ["serial", "process"])
def test_priority_order_cheap_and_elite_first(kind: str) -> None:
    jobs = [Job(i, priority=p) for i, p in enumerate([5.0, 1.0, 9.0, 0.0, 1.0])]
    ex = SerialExecutor() if kind == "serial" else ProcessExecutor(workers=1, threads=1)
    try:
        order = [r["n"] for r in ex.imap(run_job, jobs)]
        assert order == [3, 1, 4, 0, 2]
        assert [r["n"] for r in ex.map(run_job, jobs)] == [0, 1, 2, 3, 4]  # map keeps job order
    finally:
        ex.close()


def test_two_fake_gpus_one_candidate_per_gpu_at_a_time() -> None:
    ex = ProcessExecutor(workers=5, threads=1, device="auto", probe=_gpus(16000, 16000))
    assert ex.slots == ["cuda:0", "cuda:1"]
    try:
        res = ex.map(run_job, [Job(i, sleep=0.3) for i in range(6)])
    finally:
        ex.close()
    assert {r["device"] for r in res} == {"cuda:0", "cuda:1"}
    for dev in ("cuda:0", "cuda:1"):
        spans = sorted((r["start"], r["end"]) for r in res if r["device"] == dev)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans  # never two at once


@pytest.mark.slow
def test_dead_worker_replaced_retried_then_failed(tmp_path: Path) -> None:
    ex = ProcessExecutor(workers=2, threads=1, retries=2, on_failure=failed)
    try:
        jobs = [Job(0), Job(1, fault="crash"), Job(2, fault="crash_once", marker_dir=str(tmp_path)), Job(3)]
        res = ex.map(run_job, jobs)
        assert "pid" in res[0] and "pid" in res[3]
        assert "worker process died (exit code 5) on 3 attempt(s)" in res[1]["failed"]
        assert "pid" in res[2]  # crashed once, retried on a fresh worker, succeeded
        assert ex.stats["died"] == 4 and ex.stats["retried"] == 3
        assert "pid" in ex.map(run_job, [Job(9)])[0]  # the pool still works
    finally:
        ex.close()


def test_hung_candidate_killed_at_timeout_others_finish() -> None:
    ex = ProcessExecutor(workers=2, threads=1, timeout=4, on_failure=failed)
    try:
        res = ex.map(run_job, [Job(0, fault="hang"), Job(1), Job(2), Job(3, fault="raise")])
    finally:
        ex.close()
    assert "timed out after 4 s" in res[0]["failed"]
    assert "pid" in res[1] and "pid" in res[2]
    assert res[3]["failed"] == "ValueError: bad job 3"
    assert ex.stats["timed_out"] == 1


@pytest.mark.slow
def test_workers_recycle_after_n_candidates() -> None:
    ex = ProcessExecutor(workers=1, threads=1, recycle_after=2)
    try:
        pids = [r["pid"] for r in ex.map(run_job, [Job(i) for i in range(5)])]
    finally:
        ex.close()
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert ex.stats["recycled"] == 2


def test_ray_is_imported_only_when_used_and_missing_ray_is_explained(monkeypatch) -> None:
    code = ("import sys, evofusion, evofusion.cli, evofusion.engine.executors; "
            "from evofusion.engine import Study; assert 'ray' not in sys.modules, 'ray imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(EvoFusionError, match=r"pip install 'evofusion\[ray\]'"):
        EXECUTORS.create("ray")
