"""WeightStudy: the weight-evolution run loop in the run store; resume; the evolve-weights CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.errors import ConfigError
from evofusion.store import RunStore
from evofusion.weights import WEIGHT_STRATEGIES, WeightStudy

runner = CliRunner()
TINY_STUDENT = {"stages": [{"width": 4}, {"width": 8}]}


def tiny(strategy: str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"strategy": strategy, "population": 6, "generations": 3, "seed": 3,
                           "data": {"name": "digits", "limit": 300}, "student": TINY_STUDENT,
                           "ancestors": {"epochs": 1}, "fitness": {"batch": 64}}
    cfg.update(over)
    return cfg


def quiet(_: str) -> None:
    pass


def test_package_registers_de_family() -> None:
    assert {"de", "shade", "cade"} <= set(WEIGHT_STRATEGIES.names())


@pytest.mark.parametrize("strategy", ["de", "shade", "cade", "es", "evolver"])
def test_each_strategy_end_to_end_writes_rows_and_checkpoints(strategy: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    study = WeightStudy.create(tiny(strategy), run, log=quiet)
    try:
        final = study.optimize()
        assert final is not None and 0 <= final["test_accuracy"] <= 1
        rows = study.store.candidates()
        ancestors = [r for r in rows if r["generation"] == -1]
        evolved = [r for r in rows if r["generation"] >= 1]
        assert len(ancestors) == 6 and {r["operator"] for r in ancestors} == {"bp"}
        assert [r["generation"] for r in evolved] == [1, 2, 3]
        assert {r["operator"] for r in evolved} == {strategy}
        for r in rows:
            assert r["status"] == "COMPLETE"
            assert set(r["objective_values"]) >= {"accuracy", "train_loss", "params", "fitness"}
            state = load_file(run / r["weights_file"])
            assert state and all(torch.isfinite(t.float()).all() for t in state.values())
        assert sorted(p.name for p in (run / "checkpoints").glob("gen_*.json")) == \
            [f"gen_{g:05d}.json" for g in range(4)]
        assert len(list((run / "checkpoints").glob("gen_*.safetensors"))) == 4
        assert len(list((run / "ancestors").glob("*.safetensors"))) == 6
        assert study.store.finals()[0]["candidate_id"] == evolved[-1]["id"]
        if strategy in ("de", "shade", "cade", "evolver"):  # greedy selection: the best never gets worse
            fits = [r["objective_values"]["fitness"] for r in evolved]
            if strategy == "evolver":
                assert fits == sorted(fits)
    finally:
        study.close()


def _run(cfg: dict[str, Any], run: Path, stop_at: int | None) -> tuple[torch.Tensor, list[dict], dict]:
    study = WeightStudy.create(cfg, run, log=quiet)
    if stop_at is not None:
        assert study.optimize(until=stop_at) is None
        study.close()
        study = WeightStudy.resume(run, log=quiet)
        assert study.generation == stop_at
    try:
        final = study.optimize()
        values = [r["objective_values"] for r in study.store.candidates()]
        return study.best_vector(), values, final
    finally:
        study.close()


@pytest.mark.parametrize("strategy", ["shade", "es"])
def test_resume_after_generation_2_equals_uninterrupted(strategy: str, tmp_path: Path) -> None:
    cfg = tiny(strategy, generations=4)
    vec_a, vals_a, fin_a = _run(cfg, tmp_path / "a", None)
    vec_b, vals_b, fin_b = _run(cfg, tmp_path / "b", 2)
    torch.testing.assert_close(vec_a, vec_b, rtol=0, atol=0)
    assert vals_a == vals_b
    assert fin_a["test_accuracy"] == fin_b["test_accuracy"]


def test_resume_skips_a_corrupt_newest_checkpoint(tmp_path: Path) -> None:
    cfg = tiny("de", generations=3)
    vec_a, vals_a, _ = _run(cfg, tmp_path / "a", None)
    run = tmp_path / "b"
    study = WeightStudy.create(cfg, run, log=quiet)
    study.optimize(until=2)
    study.close()
    (run / "checkpoints" / "gen_00002.safetensors").write_bytes(b"garbage")
    study = WeightStudy.resume(run, log=quiet)
    try:
        assert study.generation == 1
        study.optimize()
        torch.testing.assert_close(study.best_vector(), vec_a, rtol=0, atol=0)
        assert [r["objective_values"] for r in study.store.candidates()] == vals_a
    finally:
        study.close()


def test_different_seed_gives_a_different_run(tmp_path: Path) -> None:
    a, _, _ = _run(tiny("de", generations=1), tmp_path / "a", None)
    b, _, _ = _run(tiny("de", generations=1, seed=4), tmp_path / "b", None)
    assert not torch.equal(a, b)


def test_fewshot_fitness_runs_on_heldout_classes(tmp_path: Path) -> None:
    cfg = tiny("es", generations=2, data={"name": "digits"},
               fitness={"kind": "fewshot", "holdout": [7, 8, 9], "n_way": 3, "k_shot": 2, "queries": 2,
                        "episodes": 2})
    study = WeightStudy.create(cfg, tmp_path / "run", log=quiet)
    try:
        final = study.optimize()
        assert 0 <= final["test_accuracy"] <= 1
    finally:
        study.close()


@pytest.mark.parametrize("over, field", [
    ({"population": 1}, "population"),
    ({"strategy": "pso"}, "strategy"),
    ({"params": {"F": 5.0}}, "params.F"),
    ({"params": {"bogus": 1}}, "params"),
    ({"ancestors": {"epochs": 1, "last_k": 2}}, "ancestors.last_k"),
    ({"fitness": {"kind": "nope"}}, "fitness.kind"),
    ({"surprise": 1}, "surprise"),
    ({"student": {"stages": [{"width": 0}]}}, "student.stages[0].width"),
])
def test_bad_config_names_the_field_and_creates_nothing(over: dict, field: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        WeightStudy.create({**tiny("de"), **over}, tmp_path / "run", log=quiet)
    assert e.value.field == field
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, field", [
    (["--strategy", "pso"], "strategy"),
    (["--population", "2"], "population"),
    (["--data", "nope"], "data.name"),
    (["--set", "params.CR=3"], "params.CR"),
    (["--generations", "0"], "generations"),
])
def test_cli_bad_values_exit_2_naming_the_field(args: list[str], field: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = ["evolve-weights", "--strategy", "de", "--data", "digits", "--limit", "300", "--population", "6",
            "--generations", "1", "--seed", "0", "--run-dir", str(run), "--quiet"]
    r = runner.invoke(app, base + args)
    assert r.exit_code == 2, r.output
    assert field in r.output
    assert not run.exists()


def test_cli_run_resume_and_report_json(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = runner.invoke(app, ["evolve-weights", "--strategy", "de", "--data", "digits", "--limit", "300",
                            "--population", "6", "--generations", "2", "--seed", "0", "--run-dir", str(run),
                            "--set", "ancestors.epochs=1", "--set", "student.stages=[{width: 4}]", "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evolve-weights", "--resume", str(run), "--quiet"])  # already complete: no-op
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(run), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert len(doc["candidates"]) == 8 and doc["finals"] and doc["best"] == 7
    assert 0 <= doc["finals"][0]["test_accuracy"] <= 1
    assert (run / "report.html").exists()
    with RunStore(run, lock=False, readonly=True) as store:
        assert store.get_meta("kind") == "weights"
    r = runner.invoke(app, ["evolve-weights", "--resume", str(tmp_path / "none"), "--quiet"])
    assert r.exit_code == 2
