"""The one training loop of the project: plain training, KD from cached teacher outputs, search-time
low-fidelity training and the final full-data fine-tune all run through ``train``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from evofusion.distill.losses import kd_loss
from evofusion.errors import CandidateFailed, ConfigError

if TYPE_CHECKING:
    from evofusion.distill.cdka import FeatureKD


@dataclass(frozen=True)
class TrainConfig:
    """Training budget and recipe. Units in the comments."""

    epochs: float = 1.0  # (0, 1000] passes over the used part of the training data
    steps: int | None = None  # if set, a step budget that replaces ``epochs``
    data_fraction: float = 1.0  # (0, 1] share of the training split used (low fidelity in search)
    batch_size: int = 128  # [1, 65536]
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 5e-4
    momentum: float = 0.9  # sgd only (nesterov)
    schedule: str = "onecycle"  # onecycle | cosine | constant
    alpha: float = 0.5  # [0, 1] weight of the hard-label CE; 1 - alpha goes to KD
    temperature: float = 4.0  # [0.5, 100] KD temperature
    patience: int = 0  # evaluations without val improvement before stopping; 0 = never stop early
    min_delta: float = 1e-4  # improvement in val accuracy that resets patience
    eval_every: int = 0  # steps between val evaluations; 0 = once per epoch
    restore_best: bool = True  # end with the weights of the best val evaluation
    augment: str = "none"  # none | flip | flip_shift

    def __post_init__(self) -> None:
        checks = [
            ("epochs", 0 < self.epochs <= 1000, "(0, 1000]"),
            ("steps", self.steps is None or self.steps >= 1, ">= 1"),
            ("data_fraction", 0 < self.data_fraction <= 1, "(0, 1]"),
            ("batch_size", 1 <= self.batch_size <= 65536, "[1, 65536]"),
            ("optimizer", self.optimizer in ("adamw", "sgd"), "adamw | sgd"),
            ("lr", 0 < self.lr <= 10, "(0, 10]"),
            ("weight_decay", 0 <= self.weight_decay <= 1, "[0, 1]"),
            ("schedule", self.schedule in ("onecycle", "cosine", "constant"), "onecycle | cosine | constant"),
            ("alpha", 0 <= self.alpha <= 1, "[0, 1]"),
            ("temperature", 0.5 <= self.temperature <= 100, "[0.5, 100] (below 0.5 the KD term underflows)"),
            ("patience", self.patience >= 0, ">= 0"),
            ("eval_every", self.eval_every >= 0, ">= 0"),
            ("augment", self.augment in ("none", "flip", "flip_shift"), "none | flip | flip_shift"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"distill.{name}", f"must be {allowed}, got {getattr(self, name)!r}")

    def plan(self, n: int) -> tuple[int, int]:
        """(steps per epoch, total steps) of training on ``n`` examples with this config."""
        per_epoch = max(1, math.ceil(max(1, int(round(self.data_fraction * n))) / self.batch_size))
        return per_epoch, self.steps if self.steps is not None else max(1, int(round(self.epochs * per_epoch)))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainReport:
    steps: int = 0
    epochs: float = 0.0
    best_val_accuracy: float | None = None
    final_val_accuracy: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    samples_seen: int = 0
    loss_history: list[float] = field(default_factory=list)
    # the training curve: mean training loss over each stretch of ~1/CURVE_POINTS of the run
    # ([step, loss] pairs) and every validation accuracy ([step, accuracy]), for the dashboard
    curve: dict[str, list[list[float]]] = field(default_factory=lambda: {"loss": [], "val": []})
    optimizer_state: dict[str, torch.Tensor] = field(default_factory=dict)  # see optimizer_tensors


CURVE_POINTS = 24  # loss points per training call in TrainReport.curve

MOMENTS = ("exp_avg", "exp_avg_sq", "momentum_buffer")  # per-parameter optimizer state that is carried


def optimizer_tensors(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as ``{"<param name>/<key>": tensor}`` (moments and step
    counts, on the CPU): safetensors-ready, and keyed by name so another optimizer can take it."""
    out = {}
    for name, p in model.named_parameters():
        st = opt.state.get(p, {})
        for key in (*MOMENTS, "step"):
            if key in st:
                v = st[key]
                out[f"{name}/{key}"] = (v if torch.is_tensor(v) else torch.tensor(float(v))).detach().cpu().clone()
    return out


def load_optimizer_tensors(model: nn.Module, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> int:
    """Put ``optimizer_tensors`` back into ``opt`` for ``model``'s parameters of the same name and
    shape (others keep a fresh state); returns how many parameters got their state."""
    n = 0
    for name, p in model.named_parameters():
        st = {k: tensors[f"{name}/{k}"] for k in MOMENTS if f"{name}/{k}" in tensors
              and tensors[f"{name}/{k}"].shape == p.shape}
        if st:
            if f"{name}/step" in tensors:
                st["step"] = tensors[f"{name}/step"].clone()
            opt.state[p] = {k: v.to(p.device) if k != "step" else v for k, v in st.items()}
            n += 1
    return n


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    was_training = model.training
    model.eval()
    dev = _device(model)
    out = torch.cat([model(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]) \
        if len(x) else torch.empty(0)
    model.train(was_training)
    return out


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy in [0, 1] in eval mode."""
    if len(y) == 0:
        raise ValueError("cannot measure accuracy on an empty split")
    return float((predict_logits(model, x, batch_size).argmax(1) == y).float().mean())


def augment(x: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    """``none`` | ``flip`` (random horizontal flips) | ``flip_shift`` (and a shift of up to 2 pixels),
    every draw from ``g``."""
    if kind == "none":
        return x
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if kind == "flip_shift":
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
        x = torch.roll(F.pad(x, (2, 2, 2, 2)), shifts=(dy, dx), dims=(2, 3))[:, :, 2:-2, 2:-2]
    return x


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` (AdamW, or SGD with Nesterov momentum); no weight decay on biases
    and normalization parameters."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


ONECYCLE_PCT, ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 0.25, 25.0, 1e4


def lr_at(schedule: str, peak: float, step: int, total: int) -> float:
    """The learning rate before optimizer step ``step`` (0-based) of ``total``: the project's one
    schedule. ``onecycle`` is torch's ``OneCycleLR`` (cosine from peak/25 up to ``peak`` over the first
    25% of the steps, then down to peak/25e4), ``cosine`` torch's ``CosineAnnealingLR`` down to 0,
    ``constant`` the peak. ``train`` steps torch's schedulers (onecycle also cycles momentum); a loop
    that swaps its optimizer (growth) computes the rate from the step count with this function.
    Runs of fewer than 8 steps use the constant rate with onecycle (OneCycleLR needs more)."""
    if schedule == "onecycle" and total >= 8:
        start, low = peak / ONECYCLE_DIV, peak / ONECYCLE_DIV / ONECYCLE_FINAL_DIV
        end1, end2 = float(ONECYCLE_PCT * total) - 1, float(total - 1)
        if step <= end1:
            a, b, pct = start, peak, step / end1
        else:
            a, b, pct = peak, low, (step - end1) / (end2 - end1)
        return b + (a - b) / 2.0 * (math.cos(math.pi * min(1.0, pct)) + 1)
    if schedule == "cosine" and total > 1:
        return peak * (1 + math.cos(math.pi * min(step, total) / total)) / 2
    return peak


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle" and total >= 8:  # shorter runs: OneCycleLR divides by zero at 4 steps
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=ONECYCLE_PCT,
                                                   div_factor=ONECYCLE_DIV, final_div_factor=ONECYCLE_FINAL_DIV)
    if cfg.schedule == "cosine" and total > 1:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    teacher_logits: torch.Tensor | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    on_eval: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
    feature_kd: FeatureKD | None = None,
    optimizer_state: dict[str, torch.Tensor] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainReport:
    """Train ``model`` in place on (x, y), with KD when ``teacher_logits`` (aligned with x) are given.

    Uses ``cfg.data_fraction`` of the examples (a subset fixed for the whole call), runs
    ``cfg.steps`` steps or ``cfg.epochs`` epochs, evaluates on ``val`` once per epoch (or every
    ``eval_every`` steps), stops after ``patience`` evaluations without improvement and, with
    ``restore_best``, ends with the best evaluated weights. All randomness (subset, shuffling,
    augmentation) comes from ``generator``. ``on_epoch(epoch, model)`` runs after every full epoch
    (e.g. to save the last epochs' weights as "ancestors" for weight-space evolution).
    ``feature_kd`` (see :mod:`evofusion.distill.cdka`) adds feature terms, adapters and several
    teachers to the loss; without it the step is plain (logit) KD, unchanged.
    ``optimizer_state`` (``optimizer_tensors`` of an earlier call) continues the optimizer where that
    training stopped (AdamW moments and step counts); the report's ``optimizer_state`` is the state at
    the end, so a multi-fidelity scheduler can continue a candidate without restarting it.
    ``on_step(step, total)`` runs after every optimizer step (progress inside a training).

    Raises:
        CandidateFailed: the loss became NaN or infinite.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    if teacher_logits is not None and len(teacher_logits) != len(x):
        raise ValueError(f"teacher_logits has {len(teacher_logits)} rows but the data has {len(x)}")
    if feature_kd is not None:
        feature_kd.check_rows(len(x))
    n_use = max(1, int(round(cfg.data_fraction * len(x))))
    subset = torch.randperm(len(x), generator=g)[:n_use]
    steps_per_epoch, total = cfg.plan(len(x))
    eval_every = cfg.eval_every or steps_per_epoch
    opt = make_optimizer(model, cfg)
    if optimizer_state:
        load_optimizer_tensors(model, opt, optimizer_state)
    if feature_kd is not None:  # adapter parameters join the optimizer before the schedule sees it
        feature_kd.attach(model, opt, x[:2], cfg.weight_decay)
    sched = _scheduler(opt, cfg, total)
    report = TrainReport()
    best_state: dict | None = None
    bad_evals = 0
    t0 = time.perf_counter()
    model.train()
    dev = _device(model)  # data stay on the CPU; each batch moves to the model's device
    step = 0
    order = subset[torch.randperm(n_use, generator=g)]
    pos = 0
    curve_every = max(1, total // CURVE_POINTS)
    loss_sum, loss_n = torch.zeros(()), 0  # summed on the model's device: no sync every step
    while step < total:
        if pos >= n_use:
            order, pos = subset[torch.randperm(n_use, generator=g)], 0
        idx = order[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        xb = augment(x[idx], cfg.augment, g).to(dev, non_blocking=True)
        tl = None if teacher_logits is None else teacher_logits[idx].to(dev)
        if feature_kd is None:
            out = model(xb)
            loss = kd_loss(out, y[idx].to(dev), tl, alpha=cfg.alpha, temperature=cfg.temperature)
        else:
            out, loss = feature_kd(model, xb, y[idx].to(dev), idx, tl, cfg.alpha, cfg.temperature)
        if not torch.isfinite(loss):
            raise CandidateFailed(f"non-finite loss ({float(loss.detach())}) at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        report.samples_seen += len(idx)
        if on_step is not None:
            on_step(step, total)
        loss_sum, loss_n = loss_sum.to(loss.device) + loss.detach(), loss_n + 1
        if step % curve_every == 0 or step == total:
            report.curve["loss"].append([step, round(float(loss_sum) / loss_n, 5)])
            loss_sum, loss_n = torch.zeros((), device=loss.device), 0
        if step % steps_per_epoch == 0 or step == total:
            report.loss_history.append(float(loss.detach()))
        if on_epoch is not None and step % steps_per_epoch == 0:
            on_epoch(step // steps_per_epoch, model)
            model.train()
        if val is not None and (step % eval_every == 0 or step == total):
            acc = evaluate_accuracy(model, *val)
            report.final_val_accuracy = acc
            report.curve["val"].append([step, round(acc, 5)])
            if on_eval is not None:
                on_eval(step, acc)
            if report.best_val_accuracy is None or acc > report.best_val_accuracy + cfg.min_delta:
                report.best_val_accuracy, bad_evals = acc, 0
                if cfg.restore_best:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                bad_evals += 1
                if cfg.patience and bad_evals >= cfg.patience:
                    report.stopped_early = True
                    break
            model.train()
    if best_state is not None and report.final_val_accuracy is not None \
            and report.best_val_accuracy is not None and report.final_val_accuracy < report.best_val_accuracy:
        model.load_state_dict(best_state)
    report.steps = step
    report.optimizer_state = optimizer_tensors(model, opt)
    report.epochs = step / steps_per_epoch
    report.seconds = time.perf_counter() - t0
    model.eval()
    return report
