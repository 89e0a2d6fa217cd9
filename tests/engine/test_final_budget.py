"""The winners' fine-tune phase under a step budget (final.steps) and a wall clock (final.max_seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evofusion import Study
from evofusion.distill import TrainConfig
from evofusion.engine import study as study_mod
from evofusion.engine.study import fit_steps
from evofusion.errors import ConfigError
from tests.conftest import tiny_config


def _arrays(n: int = 200) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"train_x": torch.randn(n, 1, 8, 8, generator=g), "train_y": torch.randint(0, 10, (n,), generator=g),
            "val_x": torch.randn(64, 1, 8, 8, generator=g), "val_y": torch.randint(0, 10, (64,), generator=g),
            "test_x": torch.randn(64, 1, 8, 8, generator=g), "test_y": torch.randint(0, 10, (64,), generator=g)}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))


def test_fit_steps_caps_at_the_plan_cuts_to_the_time_and_leaves_the_model_alone() -> None:
    model, arrays = _model(), _arrays()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(steps=40, batch_size=32)
    assert fit_steps(model, arrays, cfg, 1e6) == 40  # plenty of time: the planned steps
    assert fit_steps(model, arrays, TrainConfig(epochs=2, batch_size=32), 1e6) == 2 * 7  # epochs over 200 examples
    assert fit_steps(model, arrays, cfg, 1e-4) == 0  # not one step fits
    assert fit_steps(model, arrays, cfg, 0.0) == 0
    t = fit_steps(model, arrays, TrainConfig(steps=10**7, batch_size=32), 1.0)
    assert 1 <= t < 10**7  # cut to what one second holds
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the probe trains a copy


def test_final_steps_replace_epochs(tmp_path: Path) -> None:
    study = Study.create(tiny_config(**{"final.steps": 7}), tmp_path / "r", log=lambda *_: None)
    try:
        study.complete(lambda *_: None)
        (f,) = study.store.finals()
        assert f["train"]["steps"] == 7
    finally:
        study.close()


def test_max_seconds_shares_the_budget_and_counts_resumed_fine_tunes(tmp_path: Path, monkeypatch) -> None:
    shares: list[float] = []
    real = study_mod.fit_steps

    def spy(model, arrays, cfg, seconds, feature_kd=None):
        shares.append(seconds)
        return real(model, arrays, cfg, seconds, feature_kd)

    monkeypatch.setattr(study_mod, "fit_steps", spy)
    cfg = tiny_config(**{"final.top_k": 0, "final.max_seconds": 600.0, "final.steps": 5})
    study = Study.create(cfg, tmp_path / "r", log=lambda *_: None)
    try:
        study.optimize()
        ids = [r["id"] for r in study.store.candidates("COMPLETE")][:3]
        study.finalize(ids[:1], log=lambda *_: None)
        assert shares == [pytest.approx(600.0)]  # one winner: the whole budget
        spent = study.store.finals()[0]["seconds"]
        study.finalize(ids, log=lambda *_: None)  # the first is done: the other two share what is left
        assert shares[1] == pytest.approx((600.0 - spent) / 2)
        finals = {f["candidate_id"]: f for f in study.store.finals()}
        assert shares[2] == pytest.approx(600.0 - spent - finals[ids[1]]["seconds"])  # the second's time is gone
        assert [f["train"]["steps"] for f in finals.values()] == [5, 5, 5]  # 600 s hold the 5 planned steps
    finally:
        study.close()


@pytest.mark.parametrize("split, said", [("time", "too little for one step"), ("steps", "for one step each")])
def test_max_seconds_too_small_skips_winners_and_says_so(tmp_path: Path, split: str, said: str) -> None:
    lines: list[str] = []
    cfg = tiny_config(**{"final.top_k": 2, "final.max_seconds": 1e-6, "final.split": split})
    study = Study.create(cfg, tmp_path / "r", log=lambda *_: None)
    try:
        study.complete(lines.append)
        assert study.store.finals() == []
        assert any("skipped: final.max_seconds" in ln and said in ln for ln in lines)
    finally:
        study.close()


@pytest.mark.parametrize("key, value", [("final.max_seconds", 0), ("final.max_seconds", -3), ("final.steps", 0)])
def test_bad_final_budget_is_named(tmp_path: Path, key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Study.create(tiny_config(**{key: value}), tmp_path / "r", log=lambda *_: None)


def _probe(step_s: float, planned: int, eval_s: float = 0.0) -> study_mod.StepProbe:
    return study_mod.StepProbe(step_s=step_s, eval_s=eval_s, planned=planned, seconds=0.0)


def test_even_step_count_gives_every_winner_the_same_steps_and_passes_on_a_capped_surplus() -> None:
    fast, slow = _probe(0.01, 10_000), _probe(0.09, 10_000)
    n = study_mod.even_step_count([fast, slow], 100.0)
    assert n == 900  # 0.9 * 100 s / (0.01 + 0.09) s: the same count for both, not the same seconds
    assert fast.cost(n) + slow.cost(n) <= 90.0 + 1e-9 < fast.cost(n + 1) + slow.cost(n + 1)
    capped = _probe(0.01, 100)  # plans only 100 steps: what it does not use goes to the other
    assert study_mod.even_step_count([capped, slow], 100.0) == int((90.0 - 1.0) / 0.09)
    assert study_mod.even_step_count([_probe(0.01, 50), _probe(0.01, 70)], 1e6) == 70  # every plan fits
    assert study_mod.even_step_count([fast, _probe(0.01, 10, eval_s=200.0)], 100.0) == 0  # evaluation alone too long
    assert study_mod.even_step_count([], 100.0) == 0


def test_even_step_replan_keeps_the_count_through_noise_and_lowers_it_past_the_margin() -> None:
    a, b = _probe(0.01, 10**6), _probe(0.01, 10**6)
    common = study_mod.even_step_count([a, b], 100.0)
    assert common == 4500  # 90 s for two winners of 0.01 s a step
    # the first winner ran 11% over its 45 s (timing noise, inside the 10% margin of the phase): kept
    assert min(common, study_mod.even_step_count([b], 100.0 - 50.0, margin=1.0)) == common
    # it ran 60 s: what is left cannot hold 4500 more steps, so the second winner gets fewer
    assert min(common, study_mod.even_step_count([b], 100.0 - 60.0, margin=1.0)) == 4000


def test_split_steps_probes_every_winner_and_trains_them_to_one_step_count(tmp_path: Path, monkeypatch) -> None:
    cfg = tiny_config(**{"final.top_k": 0, "final.max_seconds": 12.0, "final.steps": 10**6, "final.split": "steps",
                         "final.patience": 0})
    study = Study.create(cfg, tmp_path / "r", log=lambda *_: None)
    try:
        study.optimize()
        rows = study.store.candidates("COMPLETE")
        ids = [r["id"] for r in sorted(rows, key=lambda r: r["objective_values"]["params"])]
        ids = [ids[0], ids[-1]]  # the narrowest and the widest: unequal step times
        probed: list[int] = []
        real = study_mod.probe_step

        def spy(model, arrays, tcfg, feature_kd=None):
            probed.append(sum(p.numel() for p in model.parameters()))
            return real(model, arrays, tcfg, feature_kd)

        monkeypatch.setattr(study_mod, "probe_step", spy)
        lines: list[str] = []
        t0 = __import__("time").perf_counter()
        study.finalize(ids, log=lines.append)
        wall = __import__("time").perf_counter() - t0
        finals = {f["candidate_id"]: f for f in study.store.finals()}
        assert len(probed) == 2  # both probed before either trains
        steps = [finals[c]["train"]["steps"] for c in ids]
        assert steps[0] == steps[1] > 1  # the same count for the narrow and the wide winner
        assert wall < 12.0 * 1.2 and sum(f["seconds"] for f in finals.values()) <= 12.0 * 1.05
    finally:
        study.close()


def test_bad_final_split_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"final\.split"):
        Study.create(tiny_config(**{"final.split": "even"}), tmp_path / "r", log=lambda *_: None)
