from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from evofusion import Study
from evofusion.engine import evaluator as evaluator_mod
from evofusion.engine.study import candidate_seed
from evofusion.errors import RunStoreError
from tests.conftest import tiny_config


def _run(tmp: Path, name: str, **over) -> list[dict]:
    study = Study.create(tiny_config(**over), tmp / name, log=lambda *_: None)
    try:
        study.optimize()
        return [(r["genome_hash"], r["status"], r["objective_values"].get("accuracy"))
                for r in study.store.candidates()]
    finally:
        study.close()


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    a = _run(tmp_path, "a")
    b = _run(tmp_path, "b")
    c = _run(tmp_path, "c", seed=8)
    assert len(a) == 8 and all(s == "COMPLETE" for _, s, _ in a)
    assert a == b
    assert [h for h, _, _ in a] != [h for h, _, _ in c]


@pytest.mark.parametrize("strategy", ["random", "ga", "nsga2", "regularized"])
def test_every_strategy_runs_end_to_end(tmp_path: Path, strategy: str) -> None:
    over = {"strategy.name": strategy, "final.top_k": 1}
    if strategy == "regularized":
        over["strategy.params"] = {"sample_size": 3}
    study = Study.create(tiny_config(**over), tmp_path / "r", log=lambda *_: None)
    try:
        study.optimize()
        finals = study.finalize(log=lambda *_: None)
        assert study.store.count("COMPLETE") == 8
        assert len(finals) == 1 and 0 <= finals[0]["test_accuracy"] <= 1
        assert study.pareto_ids()
    finally:
        study.close()


def test_candidate_seed_depends_on_run_seed_and_id() -> None:
    assert candidate_seed(0, 1) == candidate_seed(0, 1)
    assert len({candidate_seed(0, i) for i in range(50)}) == 50
    assert candidate_seed(0, 1) != candidate_seed(1, 1)


def test_raising_and_nan_candidates_fail_and_run_completes(tmp_path: Path, monkeypatch) -> None:
    real = evaluator_mod._train_candidate
    calls = {"n": 0}

    def flaky(model, arrays, ctx, generator, *more):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom in candidate")
        if calls["n"] == 3:  # teacher logits full of NaN -> NaN KD loss in the real loop
            arrays = dict(arrays, train_t=torch.full_like(arrays["train_t"], float("nan")))
        if calls["n"] == 5:
            raise MemoryError("simulated")
        return real(model, arrays, ctx, generator, *more)

    monkeypatch.setattr(evaluator_mod, "_train_candidate", flaky)
    study = Study.create(tiny_config(), tmp_path / "r", log=lambda *_: None)
    try:
        study.optimize()
        rows = study.store.candidates()
        failed = [r for r in rows if r["status"] == "FAILED"]
        assert len(rows) == 8
        reasons = sorted(r["reason"] for r in failed)
        assert len(failed) == 3, reasons
        assert any("boom in candidate" in r for r in reasons)
        assert any("non-finite loss" in r for r in reasons)
        assert any("out of memory" in r for r in reasons)
        # failed candidates never reach the Pareto set
        assert not set(study.pareto_ids()) & {r["id"] for r in failed}
    finally:
        study.close()


def test_static_constraint_marks_infeasible_without_training(tmp_path: Path) -> None:
    study = Study.create(tiny_config(**{"objectives.constraints": ["params <= 10"]}), tmp_path / "r",
                         log=lambda *_: None)
    try:
        study.optimize()
        rows = study.store.candidates()
        assert rows and all(r["status"] == "INFEASIBLE" for r in rows)
        assert all("params <= 10" in r["reason"] and not r["train"] for r in rows)
    finally:
        study.close()


def test_second_driver_refused(tmp_path: Path) -> None:
    study = Study.create(tiny_config(), tmp_path / "r", log=lambda *_: None)
    try:
        with pytest.raises(RunStoreError, match="another driver"):
            Study.resume(tmp_path / "r", log=lambda *_: None)
    finally:
        study.close()


def test_create_refuses_existing_run(tmp_path: Path) -> None:
    Study.create(tiny_config(), tmp_path / "r", log=lambda *_: None).close()
    with pytest.raises(RunStoreError, match="already holds a run"):
        Study.create(tiny_config(), tmp_path / "r", log=lambda *_: None)


def test_resume_refuses_changed_config_unless_allowed(tmp_path: Path) -> None:
    s = Study.create(tiny_config(generations=1), tmp_path / "r", log=lambda *_: None)
    s.optimize()
    cfg = s.cfg.to_dict()
    s.close()
    changed = {"distill": {**cfg["distill"], "lr": 0.01}}
    with pytest.raises(RunStoreError, match="distill.lr"):
        Study.resume(tmp_path / "r", overrides=changed, log=lambda *_: None)
    # termination keys may change: run two more generations
    s = Study.resume(tmp_path / "r", overrides={"generations": 3}, log=lambda *_: None)
    try:
        s.optimize()
        assert s.generation == 3 and s.store.count() == 12
    finally:
        s.close()


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from evofusion import Study
    from evofusion.engine.callbacks import Callback
    from tests.conftest import tiny_config

    class Killer(Callback):
        def on_candidate_end(self, study, outcome):
            # SIGKILL in the middle of generation 2, after generations 0 and 1 checkpointed
            if outcome.candidate_id == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)

    study = Study.create(tiny_config(generations=4), {run!r}, callbacks=[Killer()], log=lambda *_: None)
    study.optimize()
""")


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    ref = Study.create(tiny_config(generations=4), tmp_path / "ref", log=lambda *_: None)
    ref.optimize()
    expected = [(r["id"], r["genome_hash"], r["status"], r["objective_values"]) for r in ref.store.candidates()]
    ref.close()

    run = str(tmp_path / "killed")
    script = KILL_SCRIPT.format(root=root, run=run, kill_at=9)
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpts = sorted(p.name for p in (Path(run) / "checkpoints").glob("*.json"))
    assert ckpts == ["gen_00001.json", "gen_00002.json"]

    study = Study.resume(run, log=lambda *_: None)
    try:
        assert study.generation == 2
        study.optimize()
        got = [(r["id"], r["genome_hash"], r["status"], r["objective_values"]) for r in study.store.candidates()]
    finally:
        study.close()
    assert got == expected
    logs = [json.loads(line) for line in (Path(run) / "logs.jsonl").read_text().splitlines()]
    assert sum(1 for rec in logs if rec["event"] == "generation") == 4


def test_chromosome_encoding_with_ga(tmp_path: Path) -> None:
    over = {"space.encoding": "chromosome", "space.chromosome_blocks": 3, "strategy.name": "ga",
            "strategy.params": {"tournament_size": 2, "elitism": 1}}
    study = Study.create(tiny_config(**over), tmp_path / "r", log=lambda *_: None)
    try:
        study.optimize()
        rows = study.store.candidates()
        assert len(rows) == 8 and all(r["genome"]["kind"] == "chromosome" for r in rows)
        assert any(r["operator"] for r in rows if r["generation"] == 1)
        assert study.store.count("COMPLETE") == 8
    finally:
        study.close()


def test_process_executor_matches_candidates(tmp_path: Path) -> None:
    study = Study.create(tiny_config(generations=1, executor="process", workers=2, threads=1), tmp_path / "r",
                         log=lambda *_: None)
    try:
        study.optimize()
        assert study.store.count("COMPLETE") == 4
    finally:
        study.close()


@pytest.mark.parametrize("strategy", ["random", "nsga2", "regularized", "ga"])
def test_static_constraints_steer_proposals_to_feasible_candidates(tmp_path: Path, strategy: str) -> None:
    # widths up to 64 and flatten heads make many random genomes exceed 2k params; none is evaluated
    over = {"strategy.name": strategy, "objectives.constraints": ["params <= 2000"],
            "space.widths": [4, 8, 16, 32, 64], "space.head_kinds": ["gap", "flatten"], "space.max_stages": 3}
    if strategy == "regularized":
        over["strategy.params"] = {"sample_size": 2}
    study = Study.create(tiny_config(**over), tmp_path / "r", log=lambda *_: None)
    try:
        assert study.setup.space.admissible is not None
        study.optimize()
        rows = study.store.candidates()
        assert len(rows) == 8
        assert all(r["status"] == "COMPLETE" and r["objective_values"]["params"] <= 2000 for r in rows)
    finally:
        study.close()
