"""Online growth end to end on the bundled digits: events in the store, exact function-preserving
events, optimizer state carried over, report, CLI, and a resumed run equal to an uninterrupted one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from evofusion.cli import app
from evofusion.errors import ConfigError, RunStoreError
from evofusion.genome.build import build
from evofusion.genome.spec import StageGene, StudentGenome
from evofusion.growth import GrowthRun, carry_optimizer, grow
from evofusion.operators import create_operator
from evofusion.operators.morph import morph
from evofusion.store import RunStore
from evofusion.viz import report_data

runner = CliRunner()


def _cfg(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "seed": 3, "data": {"name": "digits", "limit": 300}, "teacher": {"enabled": False},
        "train": {"batch_size": 32},
        "growth": {"steps": 40, "grow_every": 10, "eval_size": 60, "horizon": 2, "max_params": 5000,
                   "calib_size": 64},
        "controller": {"name": "evolutionary"},
    }
    for k, v in over.items():
        d = cfg
        *parents, last = k.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = v
    return cfg


@pytest.mark.parametrize("controller", ["evolutionary", "rl", "random"])
def test_grow_records_events_and_preserves_accuracy(tmp_path: Path, controller: str) -> None:
    out = grow(_cfg(**{"controller.name": controller}), tmp_path / "run", log=lambda *a: None)
    assert out["events"] == 3 and out["step"] == 40
    with RunStore(tmp_path / "run", lock=False, readonly=True) as store:
        data = report_data(store)
        events, curve = data["growth"], data["growth_curve"]
    assert [e["step"] for e in events] == [10, 20, 30]
    for e in events:
        assert e["preserves_function"] == 1
        assert e["acc_after"] == pytest.approx(e["acc_before"], abs=1e-9)  # exact morph, same val split
        assert e["params_after"] >= e["params_before"]
        assert json.loads(e["damage"])["max_abs_logit_change"] < 1e-4
    assert [c["step"] for c in curve] == [10, 20, 30, 40]
    assert curve[-1]["params"] == out["params"] == events[-1]["params_after"]
    # every architecture is a candidate whose parent is the one it grew from
    cands = data["candidates"]
    assert len(cands) == 4 and [c["parents"] for c in cands] == [[], [1], [2], [3]]
    assert [c["operator"] for c in cands[1:]] == [e["operator"] for e in events]
    assert data["finals"] and data["finals"][0]["id"] == 4
    html = (tmp_path / "run" / "report.html").read_text()
    assert "growth_curve" in html and "Architecture growth" in html


def test_resumed_run_equals_uninterrupted(tmp_path: Path) -> None:
    cfg = _cfg(**{"controller.name": "rl", "growth.rewarm_steps": 15})  # re-warm spans a checkpoint
    full = grow(cfg, tmp_path / "full", log=lambda *a: None)
    run = GrowthRun.create(cfg, tmp_path / "part", log=lambda *a: None)
    run.run(until_step=25)  # interrupted mid-interval: the last checkpoint is at step 20
    run.close()
    run = GrowthRun.resume(tmp_path / "part", log=lambda *a: None)
    assert run.trainer.step == 20
    part = run.run()
    run.close()
    for k in ("events", "params", "genome", "val_accuracy", "test_accuracy", "train_flops"):
        assert part[k] == full[k], k
    with RunStore(tmp_path / "full", lock=False, readonly=True) as a, \
            RunStore(tmp_path / "part", lock=False, readonly=True) as b:
        ea = [(e["step"], e["operator"], e["info"], e["acc_after"]) for e in report_data(a)["growth"]]
        eb = [(e["step"], e["operator"], e["info"], e["acc_after"]) for e in report_data(b)["growth"]]
        assert ea == eb
        assert len(report_data(b)["candidates"]) == len(report_data(a)["candidates"])


def test_different_seed_gives_a_different_run(tmp_path: Path) -> None:
    a = grow(_cfg(**{"controller.name": "random"}), tmp_path / "a", log=lambda *a: None)
    b = grow(_cfg(**{"controller.name": "random", "seed": 4}), tmp_path / "b", log=lambda *a: None)
    assert (a["genome"], a["val_accuracy"]) != (b["genome"], b["val_accuracy"])


def test_max_params_and_max_events_bound_growth(tmp_path: Path) -> None:
    out = grow(_cfg(**{"growth.max_params": 700, "controller.name": "random"}), tmp_path / "a",
               log=lambda *a: None)
    assert out["params"] <= 700
    out = grow(_cfg(**{"growth.max_events": 1, "controller.name": "random"}), tmp_path / "b", log=lambda *a: None)
    assert out["events"] == 1


def test_plateau_stops_the_run(tmp_path: Path) -> None:
    out = grow(_cfg(**{"growth.patience": 1, "growth.min_delta": 1.0, "controller.name": "random"}),
               tmp_path / "a", log=lambda *a: None)
    assert out["stopped"].startswith("plateau") and out["step"] == 20


def _adam_trained_student(steps: int) -> tuple[StudentGenome, torch.nn.Module, torch.optim.Optimizer, Any]:
    """A tiny student after ``steps`` AdamW steps (so its optimizer has moments to carry)."""
    from evofusion.distill.loop import TrainConfig, make_optimizer

    g = StudentGenome(stages=(StageGene(4), StageGene(8)), in_channels=1, input_size=8, num_classes=10)
    torch.manual_seed(0)
    model = build(g)
    cfg = TrainConfig()
    opt = make_optimizer(model, cfg)
    for _ in range(steps):
        loss = model(torch.randn(8, 1, 8, 8)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return g, model, opt, cfg


def test_optimizer_state_is_carried_through_a_widen() -> None:
    g, model, opt, cfg = _adam_trained_student(steps=2)
    from evofusion.genome.space import SearchSpace

    op = create_operator("fp_widen", SearchSpace(input_size=8, widths=(4, 8, 12)))
    child_g, info = op.edits(g, np.random.default_rng(0))[0]  # stage 0: 4 -> 8
    res = morph(op, model, child_g, info, np.random.default_rng(0))
    new_opt = carry_optimizer(res.plan, model, opt, res.model, cfg)
    old_w = dict(model.named_parameters())["stages.0.blocks.0.0.weight"]
    new_w = dict(res.model.named_parameters())["stages.0.blocks.0.0.weight"]
    old_st, new_st = opt.state[old_w], new_opt.state[new_w]
    assert new_st["exp_avg"].shape == new_w.shape
    torch.testing.assert_close(new_st["exp_avg"][:4], old_st["exp_avg"])
    torch.testing.assert_close(new_st["exp_avg_sq"][:4], old_st["exp_avg_sq"])
    assert float(new_st["step"]) == float(old_st["step"]) == 2.0
    # the child trains with the carried state (no error, finite)
    out = res.model(torch.randn(4, 1, 8, 8)).sum()
    out.backward()
    new_opt.step()


def test_bad_config_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="growth.grow_every"):
        GrowthRun.create(_cfg(**{"growth.grow_every": 0}), tmp_path / "x")
    with pytest.raises(ConfigError, match="controller.name"):
        GrowthRun.create(_cfg(**{"controller.name": "genetic"}), tmp_path / "x")
    with pytest.raises(ConfigError, match="growth.operators"):
        GrowthRun.create(_cfg(**{"growth.operators": ["mutate_width"]}), tmp_path / "x")
    with pytest.raises(ConfigError, match="growth.max_params"):
        GrowthRun.create(_cfg(**{"growth.max_params": 10}), tmp_path / "x")
    with pytest.raises(ConfigError, match="start"):
        GrowthRun.create(_cfg(start={"stages": [{"width": 4}], "input_size": 28}), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    grow(_cfg(**{"growth.steps": 10}), tmp_path / "y", log=lambda *a: None)
    with pytest.raises(RunStoreError, match="already holds a run"):
        GrowthRun.create(_cfg(), tmp_path / "y")


def test_cli_grow_resume_and_report(tmp_path: Path) -> None:
    run_dir = tmp_path / "cli"
    res = runner.invoke(app, ["grow", "--data", "digits", "--no-teacher", "--controller", "random", "--steps",
                              "20", "--grow-every", "10", "--max-params", "3000", "--limit", "200",
                              "--run-dir", str(run_dir), "--set", "growth.eval_size=50", "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["grow", "--resume", "--run-dir", str(run_dir), "-q"])
    assert res.exit_code == 0, res.output  # a finished run resumes to its end at once
    res = runner.invoke(app, ["report", str(run_dir), "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["growth"]) == 1
    res = runner.invoke(app, ["grow", "--data", "digits", "--controller", "bogus", "--run-dir",
                              str(tmp_path / "bad")])
    assert res.exit_code == 2 and "controller.name" in " ".join(res.output.split())  # rich wraps lines
    res = runner.invoke(app, ["grow", "--resume", "--run-dir", str(tmp_path / "none")])
    assert res.exit_code == 2 and "holds no run" in " ".join(res.output.split())


def test_growth_keeps_learning_on_digits(tmp_path: Path) -> None:
    """Growth is useful, not only exact: the grown student beats its start and chance clearly."""
    cfg = _cfg(**{"growth.steps": 120, "growth.grow_every": 20, "growth.max_params": 8000,
                  "data.limit": 600, "growth.eval_size": 120, "controller.name": "random"})
    out = grow(copy.deepcopy(cfg), tmp_path / "g", log=lambda *a: None)
    assert out["events"] == 5 and out["params"] > 438
    assert out["val_accuracy"] > 0.5


@pytest.mark.slow
def test_grow_on_fashion_mnist_subset(tmp_path: Path) -> None:
    """Real data (a 3k-image Fashion-MNIST subset, no teacher): events are exact and growth helps."""
    cfg = _cfg(**{"data": {"name": "fashion-mnist", "limit": 3000}, "growth.steps": 150,
                  "growth.grow_every": 30, "growth.eval_size": 300, "growth.max_params": 20000,
                  "controller.name": "rl", "train.batch_size": 64})
    out = grow(cfg, tmp_path / "f", log=lambda *a: None)
    assert out["events"] == 4
    with RunStore(tmp_path / "f", lock=False, readonly=True) as store:
        for e in report_data(store)["growth"]:
            assert abs(e["acc_after"] - e["acc_before"]) <= 0.005
    assert out["val_accuracy"] > 0.3  # 150 small steps from 438 params: well above chance (0.1)


def test_resume_before_the_first_checkpoint_starts_over(tmp_path: Path) -> None:
    cfg = _cfg(**{"controller.name": "random"})
    full = grow(cfg, tmp_path / "full", log=lambda *a: None)
    run = GrowthRun.create(cfg, tmp_path / "part", log=lambda *a: None)
    run.run(until_step=5)  # no checkpoint yet
    run.close()
    run = GrowthRun.resume(tmp_path / "part", log=lambda *a: None)
    assert run.trainer.step == 0
    part = run.run()
    run.close()
    assert (part["genome"], part["val_accuracy"]) == (full["genome"], full["val_accuracy"])
    with RunStore(tmp_path / "part", lock=False, readonly=True) as store:
        assert [c["id"] for c in report_data(store)["candidates"]] == [1, 2, 3, 4]


def test_rewarm_ramps_the_learning_rate_after_a_swap(tmp_path: Path) -> None:
    run = GrowthRun.create(_cfg(**{"growth.rewarm_steps": 10, "train.schedule": "constant"}), tmp_path / "r",
                           log=lambda *a: None)
    try:
        tr = run.trainer
        assert tr.lr_at(3) == pytest.approx(3e-3)
        tr.last_swap = 20
        assert tr.lr_at(20) == pytest.approx(3e-4)
        assert tr.lr_at(25) == pytest.approx(3e-3 * 0.55)
        assert tr.lr_at(30) == pytest.approx(3e-3)
    finally:
        run.close()


def test_a_kernel_enlargement_starts_its_new_taps_without_velocity() -> None:
    """fp_kernel pads 3x3 to 5x5: the new taps' first moments are 0 (they must not all move one shared
    way), their second moments the tensor's mean (no several-fold first Adam steps)."""
    from evofusion.genome.space import SearchSpace

    g, model, opt, cfg = _adam_trained_student(steps=3)
    op = create_operator("fp_kernel", SearchSpace(input_size=8, kernels=(3, 5)))
    child_g, info = next((c, i) for c, i in op.edits(g, np.random.default_rng(0)) if i.get("stage") == 0)
    res = morph(op, model, child_g, info, np.random.default_rng(0))
    new_opt = carry_optimizer(res.plan, model, opt, res.model, cfg)
    name = "stages.0.blocks.0.0.weight"
    old_st = opt.state[dict(model.named_parameters())[name]]
    new_st = new_opt.state[dict(res.model.named_parameters())[name]]
    assert new_st["exp_avg"].shape[-1] == 5
    torch.testing.assert_close(new_st["exp_avg"][..., 1:4, 1:4], old_st["exp_avg"])
    border = torch.ones(5, 5, dtype=torch.bool)
    border[1:4, 1:4] = False
    assert float(new_st["exp_avg"][..., border].abs().max()) == 0.0
    assert torch.allclose(new_st["exp_avg_sq"][..., border], old_st["exp_avg_sq"].mean().expand_as(
        new_st["exp_avg_sq"][..., border]))


def _grown(run_dir: Path, **over: Any) -> GrowthRun:
    """A finished grow run of ``_cfg(**over)`` with the random controller (still open: close it)."""
    run = GrowthRun.create(_cfg(**{"controller.name": "random", **over}), run_dir, log=lambda *_: None)
    run.run()
    return run


def test_plateau_trigger_grows_only_when_accuracy_stops_rising(tmp_path: Path) -> None:
    clock = _grown(tmp_path / "c")
    n_clock = clock.events
    clock.close()
    run = _grown(tmp_path / "p", **{"growth.trigger": "plateau", "growth.plateau_delta": 1.0})
    # delta 1.0: every evaluation after the first counts as a plateau, so growth happens at each
    assert run.events == n_clock
    run.close()
    never = _grown(tmp_path / "n", **{"growth.trigger": "plateau", "growth.plateau_delta": 0.0})
    try:
        accs = {c["step"]: c["val_accuracy"] for c in never.store.growth_curve()}
        steps = sorted(accs)
        grew = {r["step"] for r in never.store.conn.execute("SELECT step FROM growth_events")}
        for prev, step in zip(steps, steps[1:], strict=False):
            if step in grew:  # grown only where the accuracy did not rise since the last evaluation
                assert accs[step] - accs[prev] <= 0.0
    finally:
        never.close()
