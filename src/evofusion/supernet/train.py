"""Training a supernet with KD: the sandwich rule and in-place distillation (a ``supernet`` run).

Every step, on one mini-batch (BigNAS's sandwich rule, OFA's KD from the largest subnet):

* the **largest** subnet learns from the labels and the external teacher's cached logits
  (``kd_loss``: ``alpha * CE + (1 - alpha) * T^2 * KL``);
* the **smallest** subnet and ``supernet.random_subnets`` random ones learn from the labels and
  a KD term that mixes the teacher (weight ``1 - inplace_weight``) with the largest subnet's logits
  of the same batch (weight ``inplace_weight``, detached: in-place distillation);
* the gradients of all of them are summed and one optimizer step updates the shared weights.

Random subnets are drawn among those that satisfy ``supernet.max_params`` (the device budget the
search will use), so the shared weights are trained where the search looks. The learning rate
follows the project's one schedule (``distill.loop.lr_at``) over the planned step count
(``supernet.steps``; with ``supernet.max_seconds``, re-planned from the measured step time after
every step so the schedule ends inside the wall clock, never above ``steps``), so training runs in chunks: after every ``checkpoint_every`` steps the run checkpoints
(weights, AdamW moments, the batch order and every RNG state) and ``evofusion resume`` continues
exactly. At the end the run directory holds ``supernet.safetensors`` and ``supernet.json`` (the
spec), which a search names with ``supernet: {run: DIR}`` (see :mod:`evofusion.supernet.score`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from evofusion.config import DataConfig, RecipeConfig, Strict, TeacherConfig, check_data_name, validate_model
from evofusion.distill.loop import (
    augment,
    evaluate_accuracy,
    load_optimizer_tensors,
    lr_at,
    make_optimizer,
    optimizer_tensors,
)
from evofusion.distill.losses import kd_loss
from evofusion.engine.callbacks import Callback
from evofusion.engine.run import Run
from evofusion.errors import CandidateFailed, ConfigError
from evofusion.growth.trainer import BatchStream
from evofusion.operators.morph import params_of
from evofusion.seeding import generator_state_from_str, generator_state_to_str, torch_seeded
from evofusion.store import RunStore
from evofusion.store.atomic import atomic_write_json
from evofusion.store.weights import cpu_state, save_weights
from evofusion.supernet.elastic import Supernet, SupernetSpec, recalibrate_bn

SUPERNET_WEIGHTS, SUPERNET_SPEC = "supernet.safetensors", "supernet.json"


class SupernetSpaceConfig(Strict):
    """The supernet's elastic dimensions and its fixed choices (docs/supernet.md)."""

    max_widths: list[int] = Field(default_factory=lambda: [24, 48, 64], min_length=1, max_length=12)
    widths: list[int] = Field(default_factory=lambda: [4, 6, 8, 12, 16, 24, 32, 48, 64], min_length=1)
    min_depth: int = Field(1, ge=1, le=8)
    max_depth: int = Field(2, ge=1, le=8)
    kernels: list[int] = Field(default_factory=lambda: [3, 5], min_length=1)
    activation: str = "relu"
    pool: Literal["max", "avg", "none"] = "max"
    head_kind: Literal["gap", "flatten"] = "gap"
    head_hidden: int = Field(0, ge=0, le=4096)


class SupernetTrainSettings(Strict):
    steps: int = Field(3000, ge=1)  # optimizer steps of the shared weights (each one sandwich); with max_seconds the most
    # wall-clock seconds of training (steps + curve evaluations): the step count is re-planned from the measured
    # step time after every step so the learning-rate schedule ends inside it (None: exactly `steps` steps)
    max_seconds: float | None = Field(None, gt=0)
    random_subnets: int = Field(2, ge=0, le=16)  # random subnets per step besides the largest and smallest
    inplace_weight: float = Field(0.5, ge=0, le=1)  # share of a smaller subnet's KD term from the largest
    max_params: int | None = Field(None, ge=1)  # random subnets are drawn among those with <= this many params
    checkpoint_every: int = Field(200, ge=1)  # steps between checkpoints (and curve points)
    eval_size: int = Field(1000, ge=10)  # val examples for the curve (largest / smallest subnet)
    calib_batches: int = Field(4, ge=1, le=256)  # training batches for BatchNorm recalibration


class SupernetRecipe(RecipeConfig):
    """KD recipe of the shared weights: the shared recipe, cosine schedule by default."""

    schedule: Literal["onecycle", "cosine", "constant"] = "cosine"
    augment: Literal["none", "flip", "flip_shift"] = "none"


class SupernetConfig(Strict):
    seed: int = Field(0, ge=0)
    device: str = Field("cpu", pattern=r"^(cpu|auto|cuda(:\d+)?)$")  # where the shared weights train; auto = cuda if present
    data: DataConfig = DataConfig(name="fashion-mnist")
    teacher: TeacherConfig = TeacherConfig()
    space: SupernetSpaceConfig = SupernetSpaceConfig()
    train: SupernetRecipe = SupernetRecipe()
    supernet: SupernetTrainSettings = SupernetTrainSettings()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_supernet_config(data: dict[str, Any] | SupernetConfig) -> SupernetConfig:
    """Validate a supernet config; ConfigError names the first bad field."""
    cfg = validate_model(SupernetConfig, data)
    check_data_name(cfg.data.name)
    s = cfg.space
    if s.min_depth > s.max_depth:
        raise ConfigError("space.min_depth", f"must be <= space.max_depth ({s.max_depth}), got {s.min_depth}")
    spec_of(cfg, 1, 28, 10)  # the remaining checks (kernels, activation, widths per stage)
    return cfg


def spec_of(cfg: SupernetConfig, in_channels: int, input_size: int, num_classes: int) -> SupernetSpec:
    s = cfg.space
    try:
        return SupernetSpec(max_widths=tuple(s.max_widths), widths=tuple(s.widths), min_depth=s.min_depth,
                            max_depth=s.max_depth, kernels=tuple(s.kernels), activation=s.activation, pool=s.pool,
                            head_kind=s.head_kind, head_hidden=s.head_hidden, in_channels=in_channels,
                            input_size=input_size, num_classes=num_classes)
    except ConfigError as e:
        raise ConfigError(e.field.replace("supernet.", "space.", 1), str(e).split(": ", 1)[-1]) from None


class SandwichTrainer:
    """The shared weights and their optimizer, trained one sandwich step at a time."""

    def __init__(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None,
                 recipe: SupernetRecipe, settings: SupernetTrainSettings, generator: torch.Generator,
                 rng: np.random.Generator):
        self.net, self.x, self.y, self.t = net, x, y, teacher_logits
        self.cfg = recipe.train_config(augment=recipe.augment)
        self.settings, self.generator, self.rng = settings, generator, rng
        self.opt = make_optimizer(net, self.cfg)
        self.stream = BatchStream(len(x), self.cfg.batch_size, generator)
        self.step = 0
        self.total = settings.steps  # the planned step count the schedule runs over (see SupernetRun.replan)
        spec = net.spec
        self.largest, self.smallest = spec.largest(), spec.smallest()
        self._params: dict[str, int] = {}

    def params_of(self, genome: Any) -> int:
        """``operators.morph.params_of`` (meta device), cached per genome: drawn every step."""
        if genome.hash not in self._params:
            self._params[genome.hash] = params_of(genome)
        return self._params[genome.hash]

    def random_subnet(self) -> Any:
        """A uniformly random subnet within ``max_params`` (the smallest when 100 draws find none)."""
        cap = self.settings.max_params
        for _ in range(100):
            g = self.net.spec.sample(self.rng)
            if cap is None or self.params_of(g) <= cap:
                return g
        return self.smallest

    def train_step(self) -> float:
        """One sandwich step; returns the largest subnet's loss."""
        c, dev = self.cfg, next(self.net.parameters()).device
        lr = lr_at(c.schedule, c.lr, self.step, max(1, self.total))
        for group in self.opt.param_groups:
            group["lr"] = lr
        idx = self.stream.next()
        xb = augment(self.x[idx], c.augment, self.generator).to(dev)
        yb = self.y[idx].to(dev)
        tl = None if self.t is None else self.t[idx].to(dev)
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        out = self.net(xb, self.largest)
        loss = kd_loss(out, yb, tl, alpha=c.alpha, temperature=c.temperature)
        self._backward(loss)
        soft, w = out.detach(), self.settings.inplace_weight
        for g in [self.smallest, *(self.random_subnet() for _ in range(self.settings.random_subnets))]:
            o = self.net(xb, g)
            own = kd_loss(o, yb, soft, alpha=c.alpha, temperature=c.temperature)
            if tl is not None and w < 1:  # alpha*CE + (1-alpha)*((1-w)*KD_teacher + w*KD_largest)
                own = w * own + (1 - w) * kd_loss(o, yb, tl, alpha=c.alpha, temperature=c.temperature)
            self._backward(own)
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    def _backward(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise CandidateFailed(f"non-finite supernet loss ({float(loss.detach())}) at step {self.step}")
        loss.backward()


class SupernetRun(Run):
    """Trains one supernet. ``SupernetRun.create(cfg, run_dir)`` or ``SupernetRun.resume(run_dir)``,
    then ``complete()``: the run's steps are chunks of ``checkpoint_every`` training steps."""

    kind = "supernet"
    budget_keys = ("supernet.steps", "supernet.max_seconds")
    keep_checkpoints = 2

    def __init__(self, cfg: SupernetConfig, store: RunStore | None, log: Callable[[str], Any] = print,
                 splits: Any = None, teacher_logits: torch.Tensor | None = None,
                 callbacks: Sequence[Callback] = ()):
        from evofusion.data import load_dataset

        self.cfg, self.log = cfg, log
        if store is not None:
            self._init_run(store, callbacks)
        d = cfg.data
        self.splits = splits if splits is not None else load_dataset(
            d.name, data_dir=d.data_dir, val_fraction=d.val_fraction, seed=d.seed, limit=d.limit)
        sp = self.splits
        self.spec = spec_of(cfg, sp.in_channels, sp.input_size, sp.num_classes)
        self.x, self.y = sp.train.tensors()
        vx, vy = sp.val.tensors()
        n_eval = min(cfg.supernet.eval_size, len(vy))
        self.val = (vx[:n_eval], vy[:n_eval])
        self._teacher_info: dict[str, Any] | None = None
        self.teacher_logits = teacher_logits if teacher_logits is not None else self._teacher_logits()
        if self.teacher_logits is not None and len(self.teacher_logits) != len(self.x):
            raise ConfigError("teacher", f"teacher logits have {len(self.teacher_logits)} rows, the training "
                              f"split {len(self.x)}")
        seeds = np.random.SeedSequence(cfg.seed).spawn(3)
        with torch_seeded(int(seeds[0].generate_state(1)[0])):
            net = Supernet(self.spec)
        from evofusion.engine.context import resolve_device

        net.to(resolve_device(cfg.device))
        gen = torch.Generator().manual_seed(int(seeds[1].generate_state(1)[0]))
        self.trainer = SandwichTrainer(net, self.x, self.y, self.teacher_logits, cfg.train, cfg.supernet, gen,
                                       np.random.default_rng(seeds[2]))
        smallest = self.trainer.params_of(self.spec.smallest())
        if cfg.supernet.max_params is not None and smallest > cfg.supernet.max_params:
            raise ConfigError("supernet.max_params", f"even the smallest subnet has {smallest} params; raise "
                              "max_params or shrink space.widths")
        self.calib = calibration_batches(self.x, cfg.supernet.calib_batches, cfg.train.batch_size)
        self.curve: list[dict[str, float]] = []
        self.seconds = 0.0

    @classmethod
    def create(cls, cfg: dict[str, Any] | SupernetConfig, run_dir: str | Path, log: Callable[[str], Any] = print,
               splits: Any = None, teacher_logits: torch.Tensor | None = None,
               callbacks: Sequence[Callback] = ()) -> SupernetRun:
        """Validate, load data and teacher, then create ``run_dir`` (nothing is created on bad input)."""
        from evofusion.engine.study import data_meta

        scfg = validate_supernet_config(cfg)
        cls._refuse_existing(run_dir)
        run = cls(scfg, None, log, splits, teacher_logits)
        config = {"objectives": {"names": ["accuracy", "params"], "constraints": [], "weights": {}},
                  "supernet": scfg.to_dict()}  # objectives: of the two subnets it records (the report reads them)
        store = cls._new_store(run_dir, config, data_meta(run.splits), run._teacher_info)
        try:
            run._init_run(store, callbacks)
            return run
        except BaseException:
            store.close()
            raise

    @classmethod
    def resume(cls, run_dir: str | Path, log: Callable[[str], Any] = print, splits: Any = None,
               teacher_logits: torch.Tensor | None = None, *, overrides: dict[str, Any] | None = None,
               allow_config_change: bool = False, callbacks: Sequence[Callback] = (), **_: Any) -> SupernetRun:
        """Reopen a supernet run and continue from its newest consistent checkpoint."""
        store = cls._reopen(run_dir)
        try:
            cfg, change = cls._resume_config(store, overrides, allow_config_change, validate_supernet_config,
                                             section="supernet")
            run = cls(cfg, store, log, splits, teacher_logits, callbacks)
            cls._check_data(store, run.splits.fingerprint())
            run._restore(log)
            run._commit_config(change)
            return run
        except BaseException:
            store.close()
            raise

    def _teacher_logits(self) -> torch.Tensor | None:
        from evofusion.engine.study import cached_teacher_logits

        logits, self._teacher_info = cached_teacher_logits(self.cfg.teacher, self.splits, self.log)
        return logits

    # --- the loop ------------------------------------------------------------------------------
    @property
    def net(self) -> Supernet:
        return self.trainer.net

    def done(self) -> bool:
        return self.trainer.step >= self.trainer.total

    def progress(self) -> tuple[int, int | None, str]:
        return self.trainer.step, self.trainer.total, "step"

    def time_budget(self) -> float | None:
        return self.cfg.supernet.max_seconds

    def replan(self, chunk_seconds: float) -> None:
        """With ``supernet.max_seconds``: the step count that ends inside it, from the time a step has
        taken so far and the curve evaluations still due (their mean time so far; none measured yet:
        two steps' worth each); at most ``supernet.steps``, never below the steps already taken."""
        s, tr = self.cfg.supernet, self.trainer
        if s.max_seconds is None or tr.step == 0:
            return
        trained = self.seconds + chunk_seconds
        per_step = trained / tr.step
        evals = len(self.curve)
        per_eval = (self.elapsed - self.seconds) / evals if evals else 2 * per_step
        left = s.max_seconds - self.elapsed - chunk_seconds
        lo, hi = 0, s.steps - tr.step  # bisect the most further steps whose time and evaluations fit in `left`
        while lo < hi:
            mid = (lo + hi + 1) // 2
            due = -(-(tr.step + mid) // s.checkpoint_every) - evals  # chunks still to end, each with an evaluation
            if mid * per_step + due * per_eval <= left:
                lo = mid
            else:
                hi = mid - 1
        tr.total = tr.step + lo

    def _step(self) -> list[Any]:
        s, tr = self.cfg.supernet, self.trainer
        end = tr.step + s.checkpoint_every  # or the plan's end, which replan may move during the chunk
        t0 = time.perf_counter()
        loss = float("nan")
        while tr.step < min(end, tr.total):
            loss = tr.train_step()
            self.replan(time.perf_counter() - t0)
        self.seconds += time.perf_counter() - t0
        big, small = (self.subnet_accuracy(g) for g in (tr.largest, tr.smallest))
        self.curve.append({"step": tr.step, "loss": round(loss, 5), "largest": round(big, 5),
                           "smallest": round(small, 5), "seconds": round(self.seconds, 2)})
        self.log(f"supernet step {tr.step}/{tr.total}: loss {loss:.4f}, val acc largest {big:.4f}, smallest "
                 f"{small:.4f} ({self.seconds:.0f} s)")
        return []

    def subnet_accuracy(self, genome: Any, val: tuple[torch.Tensor, torch.Tensor] | None = None) -> float:
        """Validation accuracy of a subnet cut out of the current weights, BatchNorm recalibrated."""
        model = recalibrate_bn(self.net.extract(genome), self.calib)
        return evaluate_accuracy(model, *(val or self.val))

    def _finalize(self, log: Any) -> dict[str, Any]:
        """Write ``supernet.safetensors`` + ``supernet.json``; the largest (candidate 0) and smallest
        (candidate 1) subnets extracted as candidates with their full validation accuracy; idempotent."""
        out = self.store.dir / SUPERNET_WEIGHTS
        whash = save_weights(cpu_state(self.net), out)
        full_val = self.splits.val.tensors()
        vals = {}
        for cid, genome in enumerate((self.trainer.largest, self.trainer.smallest)):
            model = recalibrate_bn(self.net.extract(genome), self.calib)
            vals[cid] = evaluate_accuracy(model, *full_val)
            values = {"accuracy": vals[cid], "params": float(self.trainer.params_of(genome))}
            self.store.add_candidate(cid, self.generation, genome.to_dict(), genome.hash, [], "supernet",
                                     {"subnet": "largest" if cid == 0 else "smallest"}, self.cfg.seed)
            path = self.store.weights_path(cid)
            self.store.finish_candidate(cid, "COMPLETE", values, weights_hash=save_weights(model, path),
                                        weights_file=path, train={"steps": self.trainer.step, "supernet": True})
        summary = {"spec": self.spec.to_dict(), "weights": SUPERNET_WEIGHTS, "weights_hash": whash,
                   "steps": self.trainer.step, "seconds": self.seconds, "curve": self.curve,
                   "params_largest": self.trainer.params_of(self.trainer.largest),
                   "params_smallest": self.trainer.params_of(self.trainer.smallest),
                   "val_largest": vals[0], "val_smallest": vals[1],
                   "calib_batches": self.cfg.supernet.calib_batches, "batch_size": self.cfg.train.batch_size,
                   "data_fingerprint": self.splits.fingerprint()}
        atomic_write_json(self.store.dir / SUPERNET_SPEC, summary)
        self.store.set_meta("supernet_summary", summary)
        log(self.result_text(summary))
        return summary

    def result_text(self, result: dict[str, Any]) -> str:
        return (f"supernet trained {result['steps']} steps in {result['seconds']:.0f} s: largest subnet "
                f"({result['params_largest']} params) val {result['val_largest']:.4f}, smallest "
                f"({result['params_smallest']} params) val {result['val_smallest']:.4f}; search it with "
                f"`supernet: {{run: {self.store.dir}}}` in a search config")

    # --- checkpoints -----------------------------------------------------------------------------
    def _tensors(self) -> dict[str, Any]:
        tr = self.trainer
        tensors = {f"model/{n}": v for n, v in cpu_state(self.net).items()}
        tensors.update({f"optim/{k}": v.contiguous() for k, v in optimizer_tensors(self.net, tr.opt).items()})
        tensors["stream/order"] = tr.stream.order.contiguous()
        return tensors

    def _state(self) -> dict[str, Any]:
        tr = self.trainer
        return json.loads(json.dumps({
            "step": tr.step, "stream_pos": tr.stream.pos, "generator": generator_state_to_str(tr.generator),
            "rng": tr.rng.bit_generator.state, "curve": self.curve, "seconds": self.seconds, "planned": tr.total}))

    def _load_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        tr = self.trainer
        self.net.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        tr.opt = make_optimizer(self.net, tr.cfg)
        load_optimizer_tensors(self.net, tr.opt, {k[len("optim/"):]: v for k, v in tensors.items()
                                                  if k.startswith("optim/")})
        tr.stream.order, tr.stream.pos = tensors["stream/order"], int(state["stream_pos"])
        generator_state_from_str(tr.generator, state["generator"])
        tr.rng.bit_generator.state = state["rng"]
        tr.step = int(state["step"])
        self.curve, self.seconds = list(state["curve"]), float(state["seconds"])
        s = self.cfg.supernet  # a budget changed on resume: the plan follows it (re-planned at the next step)
        tr.total = s.steps if s.max_seconds is None else max(tr.step, min(int(state.get("planned", s.steps)), s.steps))


def calibration_batches(x: torch.Tensor, n_batches: int, batch_size: int, seed: int = 0) -> list[torch.Tensor]:
    """``n_batches`` fixed training batches (one permutation from ``seed``) for BatchNorm recalibration."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return [x[order[i * batch_size:(i + 1) * batch_size]] for i in range(n_batches) if i * batch_size < len(x)]


def train_supernet(cfg: dict[str, Any] | SupernetConfig, run_dir: str | Path, log: Callable[[str], Any] = print,
                   splits: Any = None, teacher_logits: torch.Tensor | None = None) -> dict[str, Any]:
    """Create a supernet run in ``run_dir`` and train it to the end; returns its summary."""
    run = SupernetRun.create(cfg, run_dir, log, splits, teacher_logits)
    try:
        return run.complete(log)  # type: ignore[no-any-return]
    finally:
        run.close()
