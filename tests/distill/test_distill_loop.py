"""train(): budgets, data fraction, determinism, early stopping, restore_best, failures, config errors."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

from evofusion.data import load_dataset
from evofusion.distill.loop import TrainConfig, evaluate_accuracy, predict_logits, train
from evofusion.errors import CandidateFailed, ConfigError
from evofusion.genome.build import build
from evofusion.genome.spec import StageGene, StudentGenome

SMALL = StudentGenome(stages=(StageGene(8), StageGene(16)), input_size=8, num_classes=10)


class IndexRecorder(nn.Module):
    """Input row i is the number i; records which rows each training step used. Logits ignore x."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.lin = nn.Linear(1, classes)
        self.batches: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.batches.append(x[:, 0].round().long().clone())
        return self.lin(x) * 0.0  # constant (zero) logits: accuracy can never change


def _index_data(n: int, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % classes


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    s = load_dataset("digits")
    xt, yt = s.train.tensors()
    xv, yv = s.val.tensors()
    return {"x": xt, "y": yt, "xv": xv, "yv": yv}


# --- budgets and data fraction ---------------------------------------------------------------------

@pytest.mark.parametrize(("n", "batch", "steps"), [(30, 8, 7), (30, 8, 1), (10, 64, 5), (64, 16, 12)])
def test_step_budget(n: int, batch: int, steps: int) -> None:
    model = IndexRecorder()
    x, y = _index_data(n)
    report = train(model, x, y, TrainConfig(steps=steps, batch_size=batch, epochs=50))
    assert report.steps == steps == len(model.batches)
    per_epoch = math.ceil(n / batch)
    assert report.epochs == pytest.approx(steps / per_epoch)
    full, rest = divmod(steps, per_epoch)
    last = [min(batch, n - i * batch) for i in range(rest)]
    assert report.samples_seen == full * n + sum(last) == sum(len(b) for b in model.batches)
    assert not report.stopped_early and report.best_val_accuracy is None


@pytest.mark.parametrize(("n", "frac", "batch", "epochs"), [
    (100, 0.5, 16, 2.0), (100, 1.0, 40, 1.0), (97, 0.3, 7, 3.0), (40, 0.25, 64, 2.0), (100, 0.5, 16, 1.5),
])
def test_epoch_budget_and_data_fraction(n: int, frac: float, batch: int, epochs: float) -> None:
    model = IndexRecorder()
    x, y = _index_data(n)
    report = train(model, x, y, TrainConfig(epochs=epochs, data_fraction=frac, batch_size=batch),
                   generator=torch.Generator().manual_seed(3))
    n_use = round(frac * n)
    per_epoch = math.ceil(n_use / batch)
    assert report.steps == round(per_epoch * epochs) == len(model.batches)
    assert report.epochs == pytest.approx(report.steps / per_epoch)
    used = torch.cat(model.batches)
    assert len(set(used.tolist())) == n_use  # a fixed subset of round(frac * N) examples
    assert used.min() >= 0 and used.max() < n
    if float(epochs).is_integer():
        assert report.samples_seen == int(epochs) * n_use == len(used)
        assert torch.bincount(used).max() == int(epochs)  # every used example once per epoch
    assert len(report.loss_history) >= 1


def test_subset_is_fixed_for_the_whole_call_and_depends_on_the_generator() -> None:
    x, y = _index_data(50)
    seen = []
    for seed in (0, 0, 1):
        model = IndexRecorder()
        train(model, x, y, TrainConfig(epochs=4, data_fraction=0.2, batch_size=4),
              generator=torch.Generator().manual_seed(seed))
        seen.append(set(torch.cat(model.batches).tolist()))
        assert len(seen[-1]) == 10
    assert seen[0] == seen[1]
    assert seen[0] != seen[2]


# --- determinism -----------------------------------------------------------------------------------

def _train_copy(init: nn.Module, data: dict[str, torch.Tensor], seed: int) -> nn.Module:
    model = copy.deepcopy(init)
    train(model, data["x"][:256], data["y"][:256],
          TrainConfig(steps=6, batch_size=32, augment="flip_shift", data_fraction=0.5),
          teacher_logits=torch.zeros(256, 10), generator=torch.Generator().manual_seed(seed))
    return model


def test_same_seed_same_weights_different_seed_different(digits: dict[str, torch.Tensor]) -> None:
    torch.manual_seed(0)
    init = build(SMALL)
    a, b, c = (_train_copy(init, digits, s) for s in (5, 5, 6))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    assert any(not torch.equal(sa[k], v) for k, v in init.state_dict().items() if v.is_floating_point())


# --- early stopping and restore_best ---------------------------------------------------------------

@pytest.mark.parametrize("patience", [1, 3])
def test_patience_stops_when_val_cannot_improve(patience: int) -> None:
    x, y = _index_data(40)
    evals: list[tuple[int, float]] = []
    report = train(IndexRecorder(), x, y, TrainConfig(steps=50, batch_size=8, patience=patience, eval_every=1),
                   val=(x[:9], y[:9]), on_eval=lambda step, acc: evals.append((step, acc)))
    assert report.stopped_early
    assert report.steps == patience + 1 < 50  # first eval sets the best, then `patience` bad ones
    assert [s for s, _ in evals] == list(range(1, patience + 2))
    assert report.best_val_accuracy == report.final_val_accuracy == pytest.approx(3 / 9)


def test_no_early_stop_with_patience_zero() -> None:
    x, y = _index_data(40)
    report = train(IndexRecorder(), x, y, TrainConfig(steps=12, batch_size=8, eval_every=1),
                   val=(x[:9], y[:9]))
    assert not report.stopped_early and report.steps == 12


def test_patience_stops_on_random_labels(digits: dict[str, torch.Tensor]) -> None:
    torch.manual_seed(1)
    model = build(SMALL)
    g = torch.Generator().manual_seed(0)
    yv = torch.randint(0, 10, (len(digits["yv"]),), generator=g)
    report = train(model, digits["x"], digits["y"], TrainConfig(steps=200, batch_size=32, patience=1,
                                                                eval_every=1),
                   val=(digits["xv"], yv), generator=g)
    assert report.stopped_early and report.steps < 200


def test_eval_once_per_epoch_by_default() -> None:
    x, y = _index_data(40)
    steps: list[int] = []
    train(IndexRecorder(), x, y, TrainConfig(epochs=3, batch_size=16), val=(x[:5], y[:5]),
          on_eval=lambda s, _: steps.append(s))
    assert steps == [3, 6, 9]


@pytest.mark.parametrize("restore", [True, False])
def test_restore_best(digits: dict[str, torch.Tensor], restore: bool) -> None:
    # validation labels shifted by one: learning the training labels makes val accuracy fall
    x, y = digits["x"][:400], digits["y"][:400]
    val = (x[:200], (y[:200] + 1) % 10)
    torch.manual_seed(2)
    model = build(SMALL)
    evals: list[float] = []
    report = train(model, x, y, TrainConfig(steps=60, batch_size=32, eval_every=5, restore_best=restore),
                   val=val, on_eval=lambda _, acc: evals.append(acc))
    assert len(evals) == 12
    assert report.best_val_accuracy == max(evals) and report.final_val_accuracy == evals[-1]
    assert report.best_val_accuracy > report.final_val_accuracy
    after = evaluate_accuracy(model, *val)
    assert after == (report.best_val_accuracy if restore else report.final_val_accuracy)
    assert not model.training


# --- failures and config ---------------------------------------------------------------------------

def test_nan_teacher_logits_fail_the_candidate() -> None:
    x, y = _index_data(16)
    model = nn.Linear(1, 3)
    with pytest.raises(CandidateFailed, match="non-finite loss"):
        train(model, x, y, TrainConfig(steps=3, batch_size=4), teacher_logits=torch.full((16, 3), float("nan")))
    # with alpha = 1 the teacher is ignored
    report = train(nn.Linear(1, 3), x / 16, y, TrainConfig(steps=3, batch_size=4, alpha=1.0),
                   teacher_logits=torch.full((16, 3), float("nan")))
    assert report.steps == 3


def test_teacher_logits_must_align() -> None:
    x, y = _index_data(16)
    with pytest.raises(ValueError, match="teacher_logits"):
        train(nn.Linear(1, 3), x, y, TrainConfig(steps=1), teacher_logits=torch.zeros(15, 3))


@pytest.mark.parametrize(("field", "value"), [
    ("epochs", 0), ("epochs", -1.0), ("epochs", 1001), ("epochs", float("nan")),
    ("steps", 0), ("steps", -5),
    ("data_fraction", 0.0), ("data_fraction", 1.01),
    ("batch_size", 0), ("batch_size", 65537),
    ("optimizer", "adam"), ("lr", 0.0), ("lr", 11.0), ("weight_decay", -0.1), ("weight_decay", 1.5),
    ("schedule", "step"), ("alpha", -0.1), ("alpha", 1.1), ("temperature", 0.0), ("temperature", 101.0),
    ("patience", -1), ("eval_every", -1), ("augment", "crop"),
])
def test_bad_config_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})
    assert info.value.field == f"distill.{field}"
    assert str(info.value).startswith(f"distill.{field}: ")


def test_config_round_trip() -> None:
    cfg = TrainConfig(steps=5, alpha=0.2, augment="flip")
    assert TrainConfig(**cfg.to_dict()) == cfg


# --- it learns -------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_tiny_kd_run_on_digits_learns(digits: dict[str, torch.Tensor], optimizer: str) -> None:
    torch.manual_seed(0)
    model = build(SMALL)
    before = evaluate_accuracy(model, digits["xv"], digits["yv"])
    teacher = 4.0 * nn.functional.one_hot(digits["y"], 10).float()  # a confident, correct teacher
    lr = 3e-3 if optimizer == "adamw" else 0.05
    report = train(model, digits["x"], digits["y"],
                   TrainConfig(steps=100, batch_size=64, optimizer=optimizer, lr=lr, alpha=0.5, temperature=2.0),
                   teacher_logits=teacher, val=(digits["xv"], digits["yv"]),
                   generator=torch.Generator().manual_seed(0))
    acc = evaluate_accuracy(model, digits["xv"], digits["yv"])
    assert report.steps == 100
    assert acc > 0.5 and acc > before
    assert report.loss_history[-1] < report.loss_history[0]
    logits = predict_logits(model, digits["xv"], batch_size=50)
    assert logits.shape == (len(digits["yv"]), 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("cfg", [TrainConfig(steps=4, batch_size=4), TrainConfig(epochs=1, batch_size=128)],
                         ids=["steps-4", "one-epoch-of-4-batches"])
def test_short_runs_with_onecycle_do_not_crash(cfg: TrainConfig) -> None:
    # OneCycleLR divides by zero at exactly 4 steps; short runs fall back to a constant lr
    x = torch.randn(16 if cfg.steps else 500, 1)
    y = torch.arange(len(x)) % 3
    report = train(nn.Linear(1, 3), x, y, cfg)
    assert report.steps == 4


def test_on_epoch_sees_every_epoch_and_its_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.randn(40, 1, 2, 2), torch.arange(40) % 3
    seen: list[tuple[int, torch.Tensor]] = []
    train(model, x, y, TrainConfig(epochs=3, batch_size=10, schedule="constant"),
          on_epoch=lambda e, m: seen.append((e, m[1].weight.detach().clone())))
    assert [e for e, _ in seen] == [1, 2, 3]
    assert not torch.equal(seen[0][1], seen[1][1])
    torch.testing.assert_close(seen[-1][1], model[1].weight)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
@pytest.mark.parametrize("total", [4, 9, 40, 333])
def test_lr_at_is_the_schedule_train_steps(schedule: str, total: int) -> None:
    """One learning-rate schedule: the closed form a growing student uses equals the torch scheduler
    ``train`` steps, at every step."""
    from evofusion.distill.loop import _scheduler, lr_at

    model = torch.nn.Linear(3, 2)
    cfg = TrainConfig(lr=0.02, schedule=schedule)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sched = _scheduler(opt, cfg, total)
    for step in range(total):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(schedule, cfg.lr, step, total), rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()
