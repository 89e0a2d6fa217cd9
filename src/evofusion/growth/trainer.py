"""KD training of a student whose architecture changes mid-run.

``distill.loop.train`` owns one model and one optimizer for a whole call (and restores its best
weights at the end, which makes no sense across architectures), so online growth drives the same
pieces step by step instead: ``kd_loss``, ``make_optimizer``, ``augment`` and ``evaluate_accuracy``
from the one training loop, plus the two things growth adds: swapping in a morphed model with the
optimizer state carried through the morph's plan, and counting training FLOPs.
"""

from __future__ import annotations

import torch
from torch import nn

from evofusion.distill.loop import TrainConfig, augment, evaluate_accuracy, lr_at, make_optimizer
from evofusion.distill.losses import kd_loss
from evofusion.engine.lamarck import carry_optimizer  # noqa: F401 - used below and re-exported
from evofusion.errors import CandidateFailed
from evofusion.objectives.metrics import flops_and_macs
from evofusion.operators.morph import MorphResult


class BatchStream:
    """Shuffled mini-batches of indices, epoch after epoch, from one ``torch.Generator`` (as in
    ``distill.loop.train``); its state (order, position, generator) is part of a checkpoint."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.order = torch.randperm(n, generator=generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos >= self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.generator), 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx


class GrowthTrainer:
    """Trains the live student step by step; ``swap`` replaces it with a morphed child.

    The learning rate follows ``cfg.schedule`` over ``total_steps`` (``distill.loop.lr_at``: the same
    schedule as ``train``), computed from the step counter so it survives swaps.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None,
                 cfg: TrainConfig, total_steps: int, generator: torch.Generator):
        self.model, self.x, self.y, self.t = model, x, y, teacher_logits
        self.cfg, self.total_steps, self.generator = cfg, total_steps, generator
        self.opt = make_optimizer(model, cfg)
        self.stream = BatchStream(len(x), cfg.batch_size, generator)
        self.step = 0
        self.rewarm_steps = 0  # [0, inf) steps of learning-rate re-warm-up after each swap; 0 = off
        self.last_swap = -1  # step of the last swap (-1: none yet)
        self.train_flops = 0.0  # 3 x forward FLOPs per trained example (forward + backward)
        self.eval_flops = 0.0
        self._fwd: dict[str, float] = {}
        self.input_shape = tuple(x.shape[1:])

    def lr_at(self, step: int) -> float:
        """The project's one schedule (``distill.loop.lr_at``) over the whole step budget, from the
        step count, so it survives optimizer swaps; times the re-warm ramp after a morph."""
        lr = lr_at(self.cfg.schedule, self.cfg.lr, step, max(1, self.total_steps))
        if self.rewarm_steps and self.last_swap >= 0 and step - self.last_swap < self.rewarm_steps:
            # after a morph, ramp the rate up again (new parameters start with fresh Adam state)
            lr *= 0.1 + 0.9 * (step - self.last_swap) / self.rewarm_steps
        return lr

    def forward_flops(self, model: nn.Module) -> float:
        key = model.genome.hash if hasattr(model, "genome") else str(id(model))
        if key not in self._fwd:
            self._fwd[key] = float(flops_and_macs(model, self.input_shape)[0])
        return self._fwd[key]

    def train_step(self, model: nn.Module, opt: torch.optim.Optimizer, idx: torch.Tensor, step: int) -> float:
        """One KD step of ``model`` on examples ``idx``; counts its FLOPs."""
        model.train()
        for group in opt.param_groups:
            group["lr"] = self.lr_at(step)
        xb = augment(self.x[idx], self.cfg.augment, self.generator)
        out = model(xb)
        loss = kd_loss(out, self.y[idx], None if self.t is None else self.t[idx],
                       alpha=self.cfg.alpha, temperature=self.cfg.temperature)
        if not torch.isfinite(loss):
            raise CandidateFailed(f"non-finite loss ({float(loss.detach())}) at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        self.train_flops += 3 * self.forward_flops(model) * len(idx)
        return float(loss.detach())

    def run(self, n: int) -> float:
        """Train the live model ``n`` steps; returns the last loss."""
        loss = float("nan")
        for _ in range(n):
            loss = self.train_step(self.model, self.opt, self.stream.next(), self.step)
            self.step += 1
        return loss

    def accuracy(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        self.eval_flops += self.forward_flops(model) * len(x)
        return evaluate_accuracy(model, x, y)

    def swap(self, result: MorphResult) -> None:
        """Continue training ``result.model`` with the optimizer state carried over."""
        self.opt = carry_optimizer(result.plan, self.model, self.opt, result.model, self.cfg)
        self.model = result.model
        self.last_swap = self.step

    def trial(self, result: MorphResult, batches: list[torch.Tensor]) -> nn.Module:
        """Train a copy of a candidate child on ``batches`` (short-horizon scoring); the live model,
        its optimizer and the data stream are untouched. FLOPs are counted."""
        import copy

        model = copy.deepcopy(result.model)
        opt = carry_optimizer(result.plan, self.model, self.opt, model, self.cfg)
        for k, idx in enumerate(batches):
            self.train_step(model, opt, idx, self.step + k)
        return model
