"""User objectives by import path: measured on every trained candidate (also in a worker process),
usable in constraints, failing one candidate (not the run) when broken, refused by name when missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from evofusion import Study
from evofusion.errors import ConfigError
from evofusion.objectives.custom import register_objective
from tests.conftest import run_search, tiny_config

CONF = {"fn": "tests.objectives.user_metrics:mean_confidence", "direction": "max", "weight": 0.5}


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_a_user_objective_is_measured_and_optimized(tmp_path: Path, executor: str) -> None:
    cfg = tiny_config(generations=1, executor=executor, workers=1, final={"top_k": 0},
                      objectives={"names": ["accuracy", "params", "confidence"], "custom": {"confidence": CONF},
                                  "constraints": ["confidence >= 0.01"]})
    rows = run_search(cfg, tmp_path / "r")
    done = [r for r in rows if r["status"] in ("COMPLETE", "INFEASIBLE")]
    assert done and all(0 < r["objective_values"]["confidence"] <= 1 for r in done), [r["reason"] for r in rows]
    resumed = Study.resume(tmp_path / "r", log=lambda *_: None)  # the stored config resumes unchanged
    resumed.close()


def test_a_broken_user_objective_fails_candidates_not_the_run(tmp_path: Path) -> None:
    cfg = tiny_config(generations=1, final={"top_k": 0},
                      objectives={"names": ["accuracy", "bad"],
                                  "custom": {"bad": {"fn": "tests.objectives.user_metrics:not_a_number"}}})
    rows = run_search(cfg, tmp_path / "r")
    assert rows and all(r["status"] == "FAILED" and "must return a finite number" in r["reason"] for r in rows)


def test_bad_user_objectives_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="objectives.custom.fn.*cannot import 'no_such_module'"):
        Study.create(tiny_config(objectives={"names": ["accuracy", "x"], "custom": {"x": {"fn": "no_such_module:f"}}}),
                     tmp_path / "r", log=lambda *_: None)
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        Study.create(tiny_config(objectives={"names": ["accuracy", "y"],
                                             "custom": {"y": {"fn": "tests.objectives.user_metrics:nope"}}}),
                     tmp_path / "r", log=lambda *_: None)
    with pytest.raises(ConfigError, match="built-in metric"):
        register_objective("params", lambda m, x, y: 0.0)
    assert not (tmp_path / "r").exists()
