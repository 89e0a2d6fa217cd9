"""Multi-fidelity rungs in a pruning run: a promoted ticket continues from its own weights and
optimizer state (never pruned again from the teacher), and a stop/resume equals the uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from evofusion.engine.lamarck import optimizer_path
from evofusion.prune import PruneStudy
from evofusion.prune.evaluate import evaluate_prune
from tests.engine.run_kinds import prune_configs, train_prune_teacher

QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_prune_teacher(tmp_path_factory.mktemp("teacher"))


def _mf(teacher: Path) -> tuple[dict, dict]:
    cfg, prune = prune_configs(str(teacher))
    cfg["scheduler"] = {"rungs": [6, 18], "eta": 2}
    return cfg, prune


def _rows(run_dir: Path) -> list[tuple]:
    s = PruneStudy.resume(run_dir, **QUIET)
    try:
        return [(r["genome_hash"], r["operator"], r["status"], r["objective_values"].get("accuracy"),
                 r["train"].get("rung"), r["train"].get("steps_total")) for r in s.store.candidates()]
    finally:
        s.close()


def test_promoted_ticket_continues_its_own_training(tmp_path: Path, teacher: Path) -> None:
    cfg, prune = _mf(teacher)
    s = PruneStudy.create(cfg, tmp_path / "r", prune=prune, **QUIET)
    try:
        s.optimize()
        rows = s.store.candidates("COMPLETE")
        first = [r for r in rows if r["operator"] != "continue"]
        promoted = [r for r in rows if r["operator"] == "continue"]
        assert first and all(r["train"]["steps"] == 6 and r["train"]["rung"] == 0 for r in first)
        assert promoted, "no ticket was promoted"
        for r in promoted:
            parent = s.store.candidate(r["parents"][0])
            assert r["train"]["started"] == "continue" and r["train"]["rung"] == 1
            assert r["genome_hash"] == parent["genome_hash"]
            assert r["train"]["steps_total"] == parent["train"]["steps_total"] + r["train"]["steps"] == 18
            assert optimizer_path(s.store.resolve(parent["weights_file"])).exists()
        # the continuation starts from the parent's weights: re-run one job with no training steps
        r = promoted[0]
        parent = s.store.candidate(r["parents"][0])
        job = s._job(10_000, _proposal(r, s), 1, set())
        job = type(job)(**{**job.__dict__, "steps": 0, "out_weights": str(tmp_path / "w.safetensors")})
        out = evaluate_prune(job)
        assert out.status == "COMPLETE", out.reason
        got, want = load_file(tmp_path / "w.safetensors"), load_file(s.store.resolve(parent["weights_file"]))
        assert all(torch.equal(got[k], want[k]) for k in want)
    finally:
        s.close()


def _proposal(row: dict, s: PruneStudy):
    from evofusion.genome import genome_from_dict
    from evofusion.strategies import Proposal

    return Proposal(genome=genome_from_dict(row["genome"]), parents=tuple(row["parents"]), operator="continue",
                    operator_args={"rung": 1, "steps": 12})


def test_stop_and_resume_mid_rungs_equals_the_uninterrupted_run(tmp_path: Path, teacher: Path) -> None:
    cfg, prune = _mf(teacher)
    s = PruneStudy.create(cfg, tmp_path / "full", prune=prune, **QUIET)
    s.optimize()
    s.close()
    s = PruneStudy.create({**cfg, "generations": 2}, tmp_path / "cut", prune=prune, **QUIET)
    s.optimize()
    s.close()
    s = PruneStudy.resume(tmp_path / "cut", overrides={"generations": 3}, **QUIET)
    s.optimize()
    s.close()
    assert _rows(tmp_path / "cut") == _rows(tmp_path / "full")
