"""A supernet run: sandwich training with KD, chunked checkpoints, what it leaves for a search.
(Resume after a stop, SIGKILL, corrupt files, a full disk: tests/engine/test_run_lifecycle.py runs
the whole battery over the ``supernet`` and ``search_supernet`` kinds.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from evofusion.data import load_dataset
from evofusion.errors import ConfigError, RunStoreError
from evofusion.store import RunStore
from evofusion.supernet import Supernet, SupernetRun, SupernetSpec, recalibrate_bn, train_supernet
from evofusion.supernet.train import calibration_batches
from tests.engine.run_kinds import supernet_config

QUIET = {"log": lambda *_: None}


def test_a_run_trains_the_shared_weights_and_leaves_a_searchable_supernet(tmp_path: Path) -> None:
    out = train_supernet(supernet_config(), tmp_path / "sn", **QUIET)
    d = tmp_path / "sn"
    summary = json.loads((d / "supernet.json").read_text())
    assert summary["steps"] == 40 and [c["step"] for c in summary["curve"]] == [10, 20, 30, 40]
    assert out["val_largest"] == summary["val_largest"] > 0.3  # 40 steps on digits, no teacher
    spec = SupernetSpec.from_dict(summary["spec"])
    net = Supernet(spec)
    net.load_state_dict(load_file(d / "supernet.safetensors"))
    with RunStore(d, lock=False, readonly=True) as s:
        assert s.kind() == "supernet"
        rows = s.candidates()
        assert [r["operator_args"]["subnet"] for r in rows] == ["largest", "smallest"]
        # candidate 0 is the largest subnet cut out of the final weights, BN recalibrated
        splits = load_dataset("digits", limit=300)
        model = recalibrate_bn(net.extract(spec.largest()), calibration_batches(splits.train.tensors()[0], 4, 32))
        saved = load_file(s.resolve(rows[0]["weights_file"]))
        assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
        assert rows[1]["objective_values"]["params"] < rows[0]["objective_values"]["params"]


def test_kd_from_teacher_logits_and_in_place_distillation_change_the_training(tmp_path: Path) -> None:
    splits = load_dataset("digits", limit=300)
    n = len(splits.train.tensors()[1])
    teacher = torch.randn(n, 10, generator=torch.Generator().manual_seed(0)) * 3
    base = supernet_config() | {"supernet": {**supernet_config()["supernet"], "steps": 10}}
    runs = {}
    for name, t, w in (("none", None, 0.5), ("kd", teacher, 0.5), ("kd_inplace_only", teacher, 1.0)):
        cfg = base | {"supernet": {**base["supernet"], "inplace_weight": w}}
        run = SupernetRun.create(cfg, tmp_path / name, splits=splits, teacher_logits=t, **QUIET)
        run.optimize()
        runs[name] = {k: v.clone() for k, v in run.net.state_dict().items()}
        run.close()
    assert not torch.equal(runs["none"]["fc.weight"], runs["kd"]["fc.weight"])
    assert not torch.equal(runs["kd"]["fc.weight"], runs["kd_inplace_only"]["fc.weight"])
    with pytest.raises(ConfigError, match="teacher logits have 5 rows"):
        SupernetRun.create(base, tmp_path / "bad", splits=splits, teacher_logits=teacher[:5], **QUIET)
    assert not (tmp_path / "bad").exists()


def test_random_subnets_respect_the_params_budget(tmp_path: Path) -> None:
    run = SupernetRun.create(supernet_config(), tmp_path / "sn", **QUIET)
    try:
        tr = run.trainer
        draws = [tr.random_subnet() for _ in range(30)]
        assert all(tr.params_of(g) <= 1500 for g in draws)
        assert len({g.hash for g in draws}) > 5
    finally:
        run.close()


@pytest.mark.parametrize("change, field", [
    ({"supernet": {"max_params": 10}}, "supernet.max_params"),
    ({"space": {"min_depth": 3, "max_depth": 2}}, "space.min_depth"),
    ({"space": {"kernels": [4]}}, "space.kernels"),
    ({"space": {"max_widths": [2], "widths": [4, 8]}}, "space.max_widths"),
    ({"space": {"activation": "swish"}}, "space.activation"),
    ({"supernet": {"stepz": 3}}, "supernet.stepz"),
    ({"supernet": {"inplace_weight": 2}}, "supernet.inplace_weight"),
])
def test_bad_config_names_the_field_and_creates_nothing(tmp_path: Path, change: dict, field: str) -> None:
    cfg = supernet_config()
    for k, v in change.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        SupernetRun.create(cfg, tmp_path / "sn", **QUIET)
    assert not (tmp_path / "sn").exists()


def test_resume_of_a_supernet_run_as_another_kind_names_the_command(tmp_path: Path) -> None:
    from evofusion import Study

    SupernetRun.create(supernet_config(), tmp_path / "sn", **QUIET).close()
    with pytest.raises(RunStoreError, match="is a supernet run.*evofusion resume"):
        Study.resume(tmp_path / "sn", log=lambda *_: None)


def test_max_seconds_replans_the_step_count_from_the_measured_step_time(tmp_path: Path) -> None:
    cfg = supernet_config() | {"supernet": {**supernet_config()["supernet"], "steps": 1000, "max_seconds": 10.0}}
    run = SupernetRun.create(cfg, tmp_path / "sn", **QUIET)
    tr = run.trainer
    assert tr.total == 1000 and run.time_budget() == 10.0
    # 10 steps in 1 s, one curve evaluation of 0.5 s: 8.5 s left hold 55 more steps (and their 6 evaluations)
    tr.step, run.seconds, run.elapsed, run.curve = 10, 1.0, 1.5, [{"step": 10}]
    run.replan(0.0)
    assert tr.total == 65
    run.replan(4.0)  # 4 s more of the current chunk, still at step 10: the plan shrinks
    assert 10 < tr.total < 65
    run.cfg = run.cfg.model_copy(update={"supernet": run.cfg.supernet.model_copy(update={"steps": 30})})
    run.replan(0.0)  # `steps` stays the most
    assert tr.total == 30
    run.close()


def test_a_run_with_max_seconds_ends_its_schedule_inside_the_budget(tmp_path: Path) -> None:
    cap = 100_000
    cfg = supernet_config() | {"supernet": {**supernet_config()["supernet"], "steps": cap, "max_seconds": 3.0}}
    run = SupernetRun.create(cfg, tmp_path / "sn", **QUIET)
    run.step()
    planned = run.trainer.total
    assert 10 < planned < cap  # re-planned from the first steps' time
    run.close()
    run = SupernetRun.resume(tmp_path / "sn", **QUIET)  # the plan is part of the checkpoint
    assert run.trainer.step == 10 and run.trainer.total == planned
    summary = run.complete(lambda *_: None)
    tr = run.trainer
    assert tr.step == tr.total == summary["steps"] < cap
    assert 1.0 < run.elapsed < 3.0 * 1.5 + 1.0  # most of the budget used, and not much past it
    assert tr.opt.param_groups[0]["lr"] < 0.05 * tr.cfg.lr  # the cosine schedule reached its end
    run.close()
