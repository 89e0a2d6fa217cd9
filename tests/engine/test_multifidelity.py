"""Multi-fidelity rungs and Lamarckian starts: promotion order by non-dominated rank, continuation
from the exact saved state, function-preserving children that start with their parent's logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from evofusion import Study
from evofusion.distill.loop import TrainConfig, make_optimizer, optimizer_tensors, train
from evofusion.engine.context import EvalContext
from evofusion.engine.evaluator import EvalJob
from evofusion.engine.lamarck import optimizer_path, start_model
from evofusion.engine.scheduler import RungScheduler
from evofusion.genome import StageGene, StudentGenome, build
from evofusion.genome.space import SearchSpace
from evofusion.objectives.base import ObjectiveSet
from evofusion.operators import create_operator
from evofusion.store.weights import save_weights
from evofusion.strategies.base import Result
from tests.conftest import tiny_config

G = StudentGenome(stages=(StageGene(4), StageGene(8)), in_channels=1, input_size=8, num_classes=10)
OBJ = ObjectiveSet.from_names(["accuracy", "params"], [])


def _res(cid: int, acc: float, params: float) -> Result:
    return Result(cid, G, "COMPLETE", {"accuracy": acc, "params": params})


def test_promotion_by_non_dominated_rank_then_crowding() -> None:
    s = RungScheduler((10, 30, 90), eta=3)
    # front: (0.9, 900) (0.8, 500) (0.5, 100); dominated: (0.7, 900) (0.4, 600) (0.3, 950)
    rows = [(_res(0, 0.9, 900), 0), (_res(1, 0.7, 900), 0), (_res(2, 0.8, 500), 0), (_res(3, 0.4, 600), 0),
            (_res(4, 0.5, 100), 0), (_res(5, 0.3, 950), 0)]
    first = s.promotions(rows, OBJ)
    assert [(p.candidate_id, p.rung, p.steps) for p in first] == [(0, 1, 20), (4, 1, 20)]  # 6 // 3 = 2:
    # the two extremes of the front (infinite crowding) before its middle, never a dominated one
    assert s.promotions(rows, OBJ) == []  # promoted once
    rows += [(_res(6, 0.95, 900), 1), (_res(7, 0.6, 100), 1), (_res(8, 0.2, 2000), 1)]
    assert [(p.candidate_id, p.rung) for p in s.promotions(rows, OBJ)] == [(6, 2)]  # rung 1: 3 // 3 = 1
    again = RungScheduler((10, 30, 90), eta=3)
    again.load_state_dict(s.state_dict())
    assert again.promoted == s.promoted
    with pytest.raises(ValueError, match="rungs"):
        again.load_state_dict({**s.state_dict(), "rungs": [5, 50]})


def _ctx(tmp: Path) -> EvalContext:
    return EvalContext(data_dir=str(tmp), teacher_dir=None, train=TrainConfig(steps=5).to_dict(),
                       objectives=("accuracy", "params"), extra={"save_optimizer": True})


def _trained_parent(tmp: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build(G)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    rep = train(model, x, y, TrainConfig(steps=6, batch_size=16))
    w = tmp / "weights" / "0.safetensors"
    save_weights(model, w)
    save_weights(rep.optimizer_state, optimizer_path(w))
    return model, w


def test_a_promotion_continues_from_the_exact_weights_and_optimizer_state(tmp_path: Path) -> None:
    parent, w = _trained_parent(tmp_path)
    job = EvalJob(1, G.to_dict(), 5, str(tmp_path / "w1.safetensors"), _ctx(tmp_path), str(w), start="continue",
                  parent_optimizer=str(optimizer_path(w)), steps=4, lineage_steps=6, rung=1)
    model, state = start_model(job, G, build(G), info := {})
    assert info["started"] == "continue"
    for k, v in parent.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    saved = load_file(optimizer_path(w))
    assert state is not None and set(state) == set(saved) and all(torch.equal(state[k], saved[k]) for k in saved)
    opt = make_optimizer(model, TrainConfig())
    from evofusion.distill.loop import load_optimizer_tensors

    assert load_optimizer_tensors(model, opt, state) == len(list(model.parameters()))
    assert all(torch.equal(optimizer_tensors(model, opt)[k], saved[k]) for k in saved)  # moments and steps


@pytest.mark.parametrize("op_name", ["fp_widen", "fp_deepen", "fp_skip", "fp_kernel"])
def test_a_function_preserving_child_starts_with_its_parents_logits(op_name: str, tmp_path: Path) -> None:
    parent, w = _trained_parent(tmp_path)
    space = SearchSpace(in_channels=1, input_size=8, num_classes=10, max_stages=3, widths=(4, 8, 12, 16),
                        max_depth=3, kernels=(3, 5))
    child, info = create_operator(op_name, space).apply_with_info(G, rng=np.random.default_rng(1))
    job = EvalJob(2, child.to_dict(), 9, str(tmp_path / "w2.safetensors"), _ctx(tmp_path), str(w), start="morph",
                  parent_optimizer=str(optimizer_path(w)),
                  morph={"operator": op_name, "info": info, "parent_genome": G.to_dict()})
    model, state = start_model(job, child, build(child), {})
    x = torch.rand(16, 1, 8, 8)
    parent.eval(), model.eval()
    torch.testing.assert_close(model(x), parent(x), atol=1e-5, rtol=0)
    assert state  # the parent's optimizer moments were carried through the same plan


def test_search_with_rungs_records_rung_and_lineage_steps(tmp_path: Path) -> None:
    cfg = tiny_config(generations=3, **{"scheduler": {"rungs": [6, 18], "eta": 2}, "lamarckian": True})
    s = Study.create(cfg, tmp_path / "r", log=lambda *_: None)
    try:
        s.optimize()
        rows = s.store.candidates()
    finally:
        s.close()
    cont = [r for r in rows if r["operator"] == "continue"]
    assert cont and all(r["train"]["rung"] == 1 and r["train"]["steps"] == 12 for r in cont)
    by_id = {r["id"]: r for r in rows}
    for r in cont:  # a continuation adds to its parent's lineage budget, on the same genome
        parent = by_id[r["parents"][0]]
        assert r["genome_hash"] == parent["genome_hash"]
        assert r["train"]["steps_total"] == parent["train"]["steps_total"] + 12
    assert all((Path(tmp_path / "r") / optimizer_path(r["weights_file"])).exists() for r in rows
               if r["status"] == "COMPLETE")


def test_rungs_from_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from evofusion.cli import app
    from evofusion.store import RunStore

    args = ["search", "--data", "digits", "--limit", "300", "--population", "4", "--generations", "3", "--seed", "7",
            "--set", "space.widths=[4, 8]", "--set", "space.max_stages=2", "--set", "teacher.epochs=20",
            "--top-k", "0", "--quiet"]
    r = CliRunner().invoke(app, [*args, "--rungs", "6,18", "--eta", "2", "--lamarckian", "--run-dir", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    with RunStore(tmp_path / "r", lock=False, readonly=True) as s:
        assert s.config()["scheduler"] == {"rungs": [6, 18], "eta": 2.0} and s.config()["lamarckian"] is True
        assert any(c["operator"] == "continue" for c in s.candidates())
    r = CliRunner().invoke(app, [*args, "--rungs", "18,6", "--run-dir", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "scheduler.rungs" in r.output and not (tmp_path / "bad").exists()
