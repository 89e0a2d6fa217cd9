"""Online growth: a tiny student trained with KD changes its own architecture while it learns.

Every ``growth.grow_every`` steps the live student is evaluated on the validation split, then the
controller (MCAE) picks one function-preserving morph (FPMM) among those that keep the student under
``growth.max_params``; the morph is applied to the live model with its weights and optimizer state
carried over, and training continues. The run stops when the step budget is spent or, with
``growth.patience``, when validation accuracy has stopped improving.

Everything goes to the run directory: every architecture the student had is a candidate (parent =
the architecture it grew from, operator + arguments = the morph), every morph a ``growth_events`` row
(step, operator, params and accuracy before/after, damage), every evaluation a ``growth_curve`` row.
After every growth interval a checkpoint (genome JSON + safetensors of weights and optimizer state +
every RNG state + controller state) lets ``evofusion grow --resume`` continue exactly where it stopped.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load_file, save

from evofusion.config import DataConfig, TeacherConfig, config_error
from evofusion.distill.loop import TrainConfig
from evofusion.errors import ConfigError, RunStoreError
from evofusion.genome.build import build
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import StageGene, StudentGenome
from evofusion.growth.controller import Controller, Edit, create_controller
from evofusion.growth.trainer import MOMENTS, GrowthTrainer
from evofusion.objectives.base import ObjectiveSet
from evofusion.operators import create_operator
from evofusion.operators.morph import MorphOperator, morph, morph_operator_names, params_of
from evofusion.store import RunStore, atomic_write_bytes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GrowthSpaceConfig(_Strict):
    """Bounds the morphs respect (a ``SearchSpace``; task shape comes from the data)."""

    max_stages: int = Field(4, ge=1, le=12)
    widths: list[int] = [4, 8, 12, 16, 24, 32, 48, 64, 96, 128]
    max_depth: int = Field(4, ge=1, le=8)
    kernels: list[int] = [3, 5]
    activations: list[str] = ["relu", "gelu", "silu", "hardswish"]
    head_hidden: list[int] = [0, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256]
    allow_skip: bool = True


class GrowthTrainConfig(_Strict):
    """KD recipe of the live student (see ``distill.TrainConfig``)."""

    batch_size: int = Field(128, ge=1, le=65536)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0, le=10)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    schedule: Literal["onecycle", "cosine", "constant"] = "cosine"
    alpha: float = Field(0.5, ge=0, le=1)  # weight of hard-label CE
    temperature: float = Field(4.0, gt=0, le=100)

    def train_config(self) -> TrainConfig:
        return TrainConfig(batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
                           weight_decay=self.weight_decay, schedule=self.schedule, alpha=self.alpha,
                           temperature=self.temperature)


class GrowthSettings(_Strict):
    steps: int = Field(3000, ge=1)  # training steps of the live student (the budget)
    grow_every: int = Field(250, ge=1)  # steps between evaluations / growth events
    max_params: int = Field(100_000, ge=1)  # morphs whose child exceeds this are not offered
    max_events: int | None = Field(None, ge=0)  # at most this many morphs (None: no limit)
    patience: int = Field(0, ge=0)  # evaluations without val improvement before stopping; 0 = never
    min_delta: float = Field(1e-3, ge=0, le=1)  # val accuracy gain that counts as improvement
    eval_size: int | None = Field(2000, ge=10)  # val examples used by events and the curve (None: all)
    calib_size: int = Field(256, ge=0, le=65536)  # training examples for BN statistics and damage
    noise: float = Field(0.0, ge=0, le=1)  # symmetry-breaking noise of widen (relative to weight std)
    operators: list[str] | None = None  # morph operators offered; None = every function-preserving one
    horizon: int = Field(20, ge=1)  # steps of short-horizon scoring (evolutionary controller)
    rewarm_steps: int = Field(0, ge=0)  # learning-rate ramp (from 10%) after each morph; 0 = off


class ControllerConfig(_Strict):
    name: str = "evolutionary"  # evolutionary | rl | random
    params: dict[str, Any] = {}  # e.g. {"k": 4} (evolutionary), {"lr": 0.5} (rl)


def default_start(in_channels: int, input_size: int, num_classes: int) -> dict[str, Any]:
    """The tiny default student: two stages of 4 and 8 channels (3x3, relu, max-pool), GAP head."""
    return StudentGenome(stages=(StageGene(4), StageGene(8)), in_channels=in_channels, input_size=input_size,
                         num_classes=num_classes).to_dict()


class GrowConfig(_Strict):
    seed: int = Field(0, ge=0)
    data: DataConfig = DataConfig(name="fashion-mnist")
    teacher: TeacherConfig = TeacherConfig()
    start: dict[str, Any] | None = None  # start genome (StudentGenome JSON); None = default_start
    space: GrowthSpaceConfig = GrowthSpaceConfig()
    train: GrowthTrainConfig = GrowthTrainConfig()
    growth: GrowthSettings = GrowthSettings()
    controller: ControllerConfig = ControllerConfig()
    objective_weights: dict[str, float] = {}  # MOFE weights of accuracy / params (defaults 1.0 / 0.02)


def validate_grow_config(data: dict[str, Any] | GrowConfig) -> GrowConfig:
    """Validate a grow config; ConfigError names the first bad field."""
    if isinstance(data, GrowConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError("config", "must be a mapping of keys to values")
    try:
        cfg = GrowConfig.model_validate(data)
    except ValidationError as e:
        raise config_error(e) from None
    from evofusion.data import dataset_names
    from evofusion.growth.controller import CONTROLLERS

    if cfg.data.name not in dataset_names():
        raise ConfigError("data.name", f"unknown data set {cfg.data.name!r}; valid: {', '.join(dataset_names())}")
    if cfg.controller.name not in CONTROLLERS.names():
        raise ConfigError("controller.name", f"unknown controller {cfg.controller.name!r}; valid: "
                          f"{', '.join(CONTROLLERS.names())}")
    valid_ops = morph_operator_names(preserving_only=False)
    for op in cfg.growth.operators or []:
        if op not in valid_ops:
            raise ConfigError("growth.operators", f"unknown morph operator {op!r}; valid: {', '.join(valid_ops)}")
    if cfg.growth.operators is not None and not cfg.growth.operators:
        raise ConfigError("growth.operators", "need at least one operator")
    bad = set(cfg.objective_weights) - {"accuracy", "params"}
    if bad:
        raise ConfigError("objective_weights", f"unknown objective {sorted(bad)[0]!r}; valid: accuracy, params")
    return cfg


def _gen_to_str(g: torch.Generator) -> str:
    return base64.b64encode(g.get_state().numpy().tobytes()).decode("ascii")


def _gen_from_str(g: torch.Generator, text: str) -> None:
    g.set_state(torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone())


class GrowthRun:
    """One online-growth run. ``GrowthRun.create(cfg, run_dir)`` or ``GrowthRun.resume(run_dir)``,
    then ``run()``; ``close()`` releases the run directory."""

    def __init__(self, cfg: GrowConfig, store: RunStore | None, log: Callable[[str], Any] = print,
                 splits: Any = None, teacher_logits: torch.Tensor | None = None):
        from evofusion.data import load_dataset

        self.cfg, self.log, self._store = cfg, log, store
        d = cfg.data
        self.splits = splits if splits is not None else load_dataset(
            d.name, data_dir=d.data_dir, val_fraction=d.val_fraction, seed=d.seed, limit=d.limit)
        sp = self.splits
        self.x, self.y = sp.train.tensors()
        vx, vy = sp.val.tensors()
        n_eval = len(vy) if cfg.growth.eval_size is None else min(cfg.growth.eval_size, len(vy))
        self.val = (vx[:n_eval], vy[:n_eval])
        self.test = sp.test.tensors()
        self.space = SearchSpace(in_channels=sp.in_channels, input_size=sp.input_size, num_classes=sp.num_classes,
                                 max_stages=cfg.space.max_stages, widths=tuple(cfg.space.widths),
                                 max_depth=cfg.space.max_depth, kernels=tuple(cfg.space.kernels),
                                 activations=tuple(cfg.space.activations), pools=("max", "avg", "none"),
                                 allow_skip=cfg.space.allow_skip, head_kinds=("gap", "flatten"),
                                 head_hidden=tuple(cfg.space.head_hidden))
        start = cfg.start or default_start(sp.in_channels, sp.input_size, sp.num_classes)
        try:
            self.start = StudentGenome.from_dict(start)
        except ConfigError as e:
            raise ConfigError(f"start.{e.field}", str(e).split(": ", 1)[-1]) from None
        task = (self.start.in_channels, self.start.input_size, self.start.num_classes)
        if task != (sp.in_channels, sp.input_size, sp.num_classes):
            raise ConfigError("start", f"genome task (channels, size, classes) {task} does not fit the data "
                              f"{(sp.in_channels, sp.input_size, sp.num_classes)}")
        if params_of(self.start) > cfg.growth.max_params:
            raise ConfigError("growth.max_params", f"the start genome already has {params_of(self.start)} "
                              "params; raise max_params or start smaller")
        self.op_names = list(cfg.growth.operators or morph_operator_names(preserving_only=True))
        self.ops: dict[str, MorphOperator] = {n: create_operator(n, self.space) for n in self.op_names}  # type: ignore[misc]
        self.controller: Controller = create_controller(cfg.controller.name, self.op_names, cfg.space.max_stages,
                                                        **cfg.controller.params)
        self.objectives = ObjectiveSet.from_names(["accuracy", "params"], [], dict(cfg.objective_weights))
        self._teacher_info: dict[str, Any] | None = None
        self.teacher_logits = teacher_logits if teacher_logits is not None else self._teacher_logits()
        if self.teacher_logits is not None and len(self.teacher_logits) != len(self.x):
            raise ConfigError("teacher", f"teacher logits have {len(self.teacher_logits)} rows, the training "
                              f"split {len(self.x)}")
        seeds = np.random.SeedSequence(cfg.seed).spawn(4)
        self.rng_ctrl = np.random.default_rng(seeds[0])
        self.rng_morph = np.random.default_rng(seeds[1])
        calib_rng = np.random.default_rng(seeds[2])
        n_cal = min(cfg.growth.calib_size, len(self.x))
        self.calib = self.x[torch.as_tensor(np.sort(calib_rng.choice(len(self.x), n_cal, replace=False)))]
        gen = torch.Generator().manual_seed(int(seeds[3].generate_state(1)[0]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seeds[3].generate_state(2)[1]))
            model = build(self.start)
        self.trainer = GrowthTrainer(model, self.x, self.y, self.teacher_logits, cfg.train.train_config(),
                                     cfg.growth.steps, gen)
        self.trainer.rewarm_steps = cfg.growth.rewarm_steps
        self.candidate_id = 0
        self.events = 0
        self.best_acc = -1.0
        self.bad_evals = 0
        self.last_fitness: float | None = None
        self.seconds = 0.0
        self.stopped = ""
        self.checkpoints = 0

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: dict[str, Any] | GrowConfig, run_dir: str | Path, log: Callable[[str], Any] = print,
               splits: Any = None, teacher_logits: torch.Tensor | None = None) -> GrowthRun:
        """Validate, load data and teacher, then create ``run_dir`` (nothing is created on bad input)."""
        gcfg = validate_grow_config(cfg)
        run_dir = Path(run_dir)
        if (run_dir / "run.db").exists():
            raise RunStoreError(f"{run_dir} already holds a run; use `evofusion grow --resume --run-dir {run_dir}` "
                                "or choose another --run-dir")
        run = cls(gcfg, None, log, splits, teacher_logits)
        store = RunStore(run_dir, create=True)
        try:
            run._store = store
            store.ensure_growth_tables()
            store.set_meta("config", {"objectives": {"names": ["accuracy", "params"], "constraints": [],
                                                     "weights": dict(gcfg.objective_weights)},
                                      "grow": gcfg.model_dump()})
            store.set_meta("kind", "grow")
            store.set_meta("data", {"name": run.splits.name, "fingerprint": run.splits.fingerprint(),
                                    "num_classes": run.splits.num_classes})
            store.set_meta("teacher", run._teacher_info)
            run._new_candidate(run.start, [], None, {})
            return run
        except BaseException:
            store.close()
            raise

    @classmethod
    def resume(cls, run_dir: str | Path, log: Callable[[str], Any] = print, splits: Any = None,
               teacher_logits: torch.Tensor | None = None) -> GrowthRun:
        """Reopen a grow run and continue from its newest readable checkpoint."""
        store = RunStore(run_dir)
        try:
            if store.get_meta("kind") != "grow":
                raise RunStoreError(f"{run_dir} is not a grow run; resume it with its own command")
            cfg = validate_grow_config(store.get_meta("config")["grow"])
            run = cls(cfg, store, log, splits, teacher_logits)
            if run.splits.fingerprint() != store.get_meta("data")["fingerprint"]:
                raise RunStoreError("the data differ from the run's; resume with the same data set")
            state, warnings = store.latest_checkpoint()
            for w in warnings:
                log(w)
            if state is not None:
                run._load(state)
            store.truncate_growth(run.trainer.step if state else -1, run.candidate_id if state else 0)
            if state is None:  # interrupted before the first checkpoint: start over
                run._new_candidate(run.start, [], None, {})
            return run
        except BaseException:
            store.close()
            raise

    @property
    def store(self) -> RunStore:
        if self._store is None:
            raise RunStoreError("this growth run has no run directory yet")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def _teacher_logits(self) -> torch.Tensor | None:
        from evofusion.data import check_teacher_outputs
        from evofusion.engine.context import cache_root
        from evofusion.engine.study import resolve_teacher
        from evofusion.teachers import TeacherCache

        root = cache_root()
        # resolve_teacher reads only ``cfg.teacher`` of a search config
        teacher = resolve_teacher(SimpleNamespace(teacher=self.cfg.teacher), self.splits, root, self.log)  # type: ignore[arg-type]
        if teacher is None:
            return None
        check_teacher_outputs(teacher, self.splits)
        cached = TeacherCache(root / "teachers").get(teacher, self.splits)
        self._teacher_info = {"name": getattr(teacher, "name", "teacher"), "weights_hash": teacher.weights_hash,
                              "cache": str(cached.dir), **getattr(teacher, "meta", {})}
        return cached.logits("train")

    # --- the loop ------------------------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        return self.trainer.model

    @property
    def genome(self) -> StudentGenome:
        return self.trainer.model.genome  # type: ignore[return-value]

    def params(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def fitness(self, acc: float, params: int) -> float:
        return self.objectives.fitness({"accuracy": acc, "params": params})

    def edits(self) -> list[Edit]:
        """Every morph the operators offer for the live genome that stays under ``max_params``."""
        out = []
        for name, op in self.ops.items():
            for child, info in op.edits(self.genome, self.rng_morph):
                p = params_of(child)
                if p <= self.cfg.growth.max_params:
                    out.append(Edit(name, child, info, p))
        return out

    def score(self, edits: list[Edit]) -> list[float]:
        """Short-horizon fitness of each edit: train a copy ``growth.horizon`` steps on the same
        batches (drawn from the controller's rng), then measure val accuracy and params."""
        bs = self.cfg.train.batch_size
        batches = [torch.as_tensor(self.rng_ctrl.choice(len(self.x), min(bs, len(self.x)), replace=False))
                   for _ in range(self.cfg.growth.horizon)]
        out = []
        for e in edits:
            res = morph(self.ops[e.operator], self.model, e.genome, e.info, self.rng_morph,
                        calib=self.calib if len(self.calib) else None)
            trained = self.trainer.trial(res, batches)
            out.append(self.fitness(self.trainer.accuracy(trained, *self.val), e.params))
        return out

    def run(self, until_step: int | None = None) -> dict[str, Any]:
        """Train and grow until the step budget (or ``until_step``, for tests of resume) or a plateau."""
        g = self.cfg.growth
        end = g.steps if until_step is None else min(until_step, g.steps)
        t0 = time.perf_counter()
        while self.trainer.step < end and not self.stopped:
            n = min(g.grow_every - self.trainer.step % g.grow_every, end - self.trainer.step)
            loss = self.trainer.run(n)
            if self.trainer.step % g.grow_every and self.trainer.step < g.steps:
                break  # stopped by until_step between two evaluations
            self.seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            self._interval(loss)
            self.seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
        self.seconds += time.perf_counter() - t0
        if self.trainer.step >= g.steps or self.stopped:
            return self._finish()
        return self.summary()

    def _interval(self, loss: float) -> None:
        g, tr = self.cfg.growth, self.trainer
        acc = tr.accuracy(self.model, *self.val)
        params = self.params()
        self.store.add_growth_point(tr.step, params, acc, tr.train_flops, self.seconds)
        fit = self.fitness(acc, params)
        if self.last_fitness is not None:
            self.controller.observe(fit - self.last_fitness)
        self.last_fitness = None
        self.log(f"step {tr.step}: loss {loss:.4f}, val acc {acc:.4f}, {params} params, "
                 f"{tr.train_flops / 1e12:.3f} TFLOPs")
        if acc > self.best_acc + g.min_delta:
            self.best_acc, self.bad_evals = acc, 0
        else:
            self.bad_evals += 1
            if g.patience and self.bad_evals >= g.patience:
                self.stopped = f"plateau: no val gain > {g.min_delta} in {g.patience} evaluations"
                self.log(f"stopping at step {tr.step}: {self.stopped}")
        if tr.step < g.steps and not self.stopped and (g.max_events is None or self.events < g.max_events):
            self._grow(acc, params, fit)
        self._checkpoint()

    def _grow(self, acc: float, params: int, fit: float) -> None:
        t0 = time.perf_counter()
        edits = self.edits()
        choice = self.controller.choose(edits, self, self.rng_ctrl)
        if choice is None:
            return
        op = self.ops[choice.operator]
        calib = self.calib if len(self.calib) else None
        res = morph(op, self.model, choice.genome, choice.info, self.rng_morph, noise=self.cfg.growth.noise,
                    calib=calib)
        acc_after = self.trainer.accuracy(res.model, *self.val)
        before = self.genome
        self.store.finish_candidate(self.candidate_id, "COMPLETE", {"accuracy": acc, "params": params},
                                    train={"until_step": self.trainer.step})
        self.trainer.swap(res)
        self.events += 1
        self._new_candidate(res.genome, [self.candidate_id], choice.operator, res.info)
        self.last_fitness = fit
        self.store.add_growth_event(self.trainer.step, choice.operator, params, self.params(), acc, acc_after,
                                    res.info, before.to_json(), res.genome.to_json(), op.preserves_function,
                                    res.damage, self.candidate_id, time.perf_counter() - t0)
        self.log(f"  grew by {choice.operator} {res.info}: {params} -> {self.params()} params, "
                 f"val acc {acc:.4f} -> {acc_after:.4f}")

    def _new_candidate(self, genome: StudentGenome, parents: list[int], operator: str | None,
                       info: dict[str, Any]) -> None:
        self.candidate_id += 1
        self.store.add_candidate(self.candidate_id, self.events, genome.to_dict(), genome.hash, parents,
                                 operator, info, self.cfg.seed, status="PENDING")

    def _finish(self) -> dict[str, Any]:
        from evofusion.distill.loop import evaluate_accuracy

        val_acc = evaluate_accuracy(self.model, *self.splits.val.tensors())
        test_acc = evaluate_accuracy(self.model, *self.test)
        params = self.params()
        sd = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        path = self.store.weights_path(self.candidate_id, final=True)
        atomic_write_bytes(path, save(sd))
        (path.parent / f"{self.candidate_id}.json").write_text(self.genome.to_json())
        self.store.finish_candidate(self.candidate_id, "COMPLETE", {"accuracy": val_acc, "params": params},
                                    train={"until_step": self.trainer.step}, seconds=self.seconds)
        self.store.add_final(self.candidate_id, val_acc, test_acc, {"accuracy": val_acc, "params": params},
                             str(path), "", self.seconds, {"steps": self.trainer.step})
        self.store.set_meta("growth_summary", {**self.summary(), "val_accuracy": val_acc, "test_accuracy": test_acc})
        return {**self.summary(), "val_accuracy": val_acc, "test_accuracy": test_acc}

    def summary(self) -> dict[str, Any]:
        return {"step": self.trainer.step, "events": self.events, "params": self.params(),
                "genome": self.genome.to_dict(), "train_flops": self.trainer.train_flops,
                "eval_flops": self.trainer.eval_flops, "seconds": self.seconds, "stopped": self.stopped,
                "candidate_id": self.candidate_id}

    # --- checkpoints ---------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        tr = self.trainer
        self.checkpoints += 1
        k = self.checkpoints
        base = self.store.dir / "checkpoints"
        tensors = {f"model/{n}": v.detach().cpu().contiguous() for n, v in self.model.state_dict().items()}
        steps: dict[str, float] = {}
        for n, p in self.model.named_parameters():
            st = tr.opt.state.get(p, {})
            for key in MOMENTS:
                if key in st:
                    tensors[f"optim/{n}/{key}"] = st[key].detach().cpu().contiguous()
            if "step" in st:
                steps[n] = float(st["step"])
        tensors["stream/order"] = tr.stream.order.contiguous()
        atomic_write_bytes(base / f"grow_{k:05d}.safetensors", save(tensors))
        state = {
            "strategy": self.controller.state_dict(), "tensors": f"grow_{k:05d}.safetensors",
            "genome": self.genome.to_dict(), "step": tr.step, "stream_pos": tr.stream.pos,
            "train_flops": tr.train_flops, "eval_flops": tr.eval_flops, "optim_steps": steps,
            "candidate_id": self.candidate_id, "events": self.events, "best_acc": self.best_acc,
            "bad_evals": self.bad_evals, "last_fitness": self.last_fitness, "seconds": self.seconds,
            "stopped": self.stopped, "checkpoints": k,
            "rng_ctrl": self.rng_ctrl.bit_generator.state, "rng_morph": self.rng_morph.bit_generator.state,
            "generator": _gen_to_str(tr.generator), "last_swap": tr.last_swap,
        }
        self.store.write_checkpoint(k, json.loads(json.dumps(state)))
        for old in (base / f"gen_{k - 3:05d}.json", base / f"grow_{k - 3:05d}.safetensors"):
            old.unlink(missing_ok=True)  # keep the newest three checkpoints

    def _load(self, state: dict[str, Any]) -> None:
        tr = self.trainer
        tensors = load_file(str(self.store.dir / "checkpoints" / state["tensors"]))
        genome = StudentGenome.from_dict(state["genome"])
        model = build(genome)
        model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        tr.model = model
        from evofusion.distill.loop import _optimizer

        tr.opt = _optimizer(model, tr.cfg)
        for n, p in model.named_parameters():
            st: dict[str, Any] = {}
            for key in MOMENTS:
                if f"optim/{n}/{key}" in tensors:
                    st[key] = tensors[f"optim/{n}/{key}"]
            if st:
                st["step"] = torch.tensor(state["optim_steps"][n])
                tr.opt.state[p] = st
        tr.stream.order, tr.stream.pos = tensors["stream/order"], int(state["stream_pos"])
        _gen_from_str(tr.generator, state["generator"])
        tr.last_swap = int(state.get("last_swap", -1))
        tr.step, tr.train_flops, tr.eval_flops = int(state["step"]), float(state["train_flops"]), \
            float(state["eval_flops"])
        self.rng_ctrl.bit_generator.state = state["rng_ctrl"]
        self.rng_morph.bit_generator.state = state["rng_morph"]
        self.controller.load_state_dict(state["strategy"])
        self.candidate_id, self.events = int(state["candidate_id"]), int(state["events"])
        self.best_acc, self.bad_evals = float(state["best_acc"]), int(state["bad_evals"])
        self.last_fitness, self.seconds = state["last_fitness"], float(state["seconds"])
        self.stopped, self.checkpoints = state["stopped"], int(state["checkpoints"])


def grow(cfg: dict[str, Any] | GrowConfig, run_dir: str | Path, log: Callable[[str], Any] = print,
         splits: Any = None, teacher_logits: torch.Tensor | None = None) -> dict[str, Any]:
    """Create a grow run in ``run_dir``, run it to the end, write report.html; returns the summary
    (final genome, params, val/test accuracy, growth events, training FLOPs, seconds)."""
    from evofusion.viz import write_html_report

    run = GrowthRun.create(cfg, run_dir, log, splits, teacher_logits)
    try:
        out = run.run()
        write_html_report(run.store)
        return out
    finally:
        run.close()
