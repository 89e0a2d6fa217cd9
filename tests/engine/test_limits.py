"""Limits that used to be silent: --timeout with the serial executor, --max-seconds within one
candidate's time, a teacher that never answers the pre-flight call."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from evofusion import Study
from evofusion.data import from_arrays
from evofusion.data import preflight as preflight_mod
from evofusion.engine.executors import ProcessExecutor, SerialExecutor
from evofusion.engine.study import make_executor
from evofusion.errors import TeacherError
from tests.conftest import tiny_config
from tests.engine.fault_helpers import faulty_evaluate

QUIET = {"log": lambda *_: None}


def test_serial_executor_honours_the_timeout(tmp_path: Path) -> None:
    cfg = tiny_config(generations=1, timeout=4, **{"strategy.population": 2, "teacher.enabled": False})
    s = Study.create(cfg, tmp_path / "r", **QUIET)
    assert isinstance(s.executor, ProcessExecutor)  # serial + timeout: one stoppable worker
    s.setup.context = dataclasses.replace(s.setup.context, extra={"faults": {"0": "hang"}})
    s.evaluate_fn = faulty_evaluate
    t0 = time.perf_counter()
    try:
        s.optimize()
        rows = {r["id"]: r for r in s.store.candidates()}
    finally:
        s.close()
    assert rows[0]["status"] == "FAILED" and "timed out after 4 s" in rows[0]["reason"]
    assert rows[1]["status"] == "COMPLETE"
    assert time.perf_counter() - t0 < 120  # a hung candidate used to run on forever


def test_serial_without_timeout_stays_in_process() -> None:
    from evofusion.config import validate_config

    assert isinstance(make_executor(validate_config(tiny_config()), 1), SerialExecutor)


def test_max_seconds_stops_handing_out_candidates(tmp_path: Path) -> None:
    cfg = tiny_config(generations=1, max_seconds=0.5, **{"strategy.population": 12, "teacher.enabled": False,
                                                         "distill.steps": 30})
    s = Study.create(cfg, tmp_path / "r", **QUIET)
    try:
        s.optimize()
        n = s.store.count()
        assert 1 <= n < 12, n  # the budget was spent after the first candidates; the rest never started
        assert s.done() and s.next_id == n and "were not started" in s.stop_reason
        assert s.store.count("PENDING") == 0  # nothing half-recorded
    finally:
        s.close()
    s = Study.resume(tmp_path / "r", overrides={"max_seconds": None, "generations": 2}, **QUIET)
    try:
        s.optimize()  # a larger budget continues from there
        assert s.store.count() == n + 12
    finally:
        s.close()


def test_a_teacher_that_never_answers_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight_mod, "PREFLIGHT_TIMEOUT_S", 0.5)
    rng = np.random.default_rng(0)
    x = rng.random((60, 1, 8, 8), dtype=np.float32)
    splits = from_arrays("custom", x, rng.integers(0, 10, 60), x[:20], rng.integers(0, 10, 20), num_classes=10)

    def hangs(batch: torch.Tensor) -> torch.Tensor:
        time.sleep(5)  # stands for a TorchScript forward that loops forever
        return torch.zeros(len(batch), 10)

    with pytest.raises(TeacherError, match="did not answer on 2 examples within 0.5 s"):
        Study.create(tiny_config(), tmp_path / "r", splits=splits, teacher=hangs, **QUIET)
    assert not (tmp_path / "r").exists()
