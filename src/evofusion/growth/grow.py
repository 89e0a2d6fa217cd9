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

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from evofusion.config import DataConfig, RecipeConfig, Strict, TeacherConfig, check_data_name, validate_model
from evofusion.distill.loop import MOMENTS, make_optimizer
from evofusion.engine.callbacks import Callback
from evofusion.engine.run import Run
from evofusion.errors import ConfigError
from evofusion.genome.build import build
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import StageGene, StudentGenome
from evofusion.growth.controller import Controller, Edit, create_controller
from evofusion.growth.trainer import GrowthTrainer
from evofusion.objectives.base import ObjectiveSet
from evofusion.operators import create_operator
from evofusion.operators.morph import MorphOperator, morph, morph_operator_names, params_of
from evofusion.seeding import generator_state_from_str, generator_state_to_str, torch_seeded
from evofusion.store import RunStore
from evofusion.store.weights import cpu_state, save_weights


class GrowthSpaceConfig(Strict):
    """Bounds the morphs respect (a ``SearchSpace``; task shape comes from the data)."""

    max_stages: int = Field(4, ge=1, le=12)
    widths: list[int] = [4, 8, 12, 16, 24, 32, 48, 64, 96, 128]
    max_depth: int = Field(4, ge=1, le=8)
    kernels: list[int] = [3, 5]
    activations: list[str] = ["relu", "gelu", "silu", "hardswish"]
    head_hidden: list[int] = [0, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256]
    allow_skip: bool = True


WIDENINGS = ("fp_widen", "fp_widen_head")  # the morphs that take growth.widen_init


class GrowthTrainConfig(RecipeConfig):
    """KD recipe of the live student: the shared recipe, cosine schedule by default."""

    schedule: Literal["onecycle", "cosine", "constant"] = "cosine"


class GrowthSettings(Strict):
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
    # when an evaluation may grow: "clock" = every one; "plateau" = only when val accuracy rose by at
    # most plateau_delta since the previous evaluation (capacity when the current size stops paying)
    trigger: Literal["clock", "plateau"] = "clock"
    plateau_delta: float = Field(0.005, ge=0, le=1)
    # how widening morphs start their new units: "split" = Net2WiderNet copies sharing the outgoing
    # weights; "fresh" = random incoming, zero outgoing weights (exact too; new features, see docs)
    widen_init: Literal["split", "fresh"] = "fresh"


class ControllerConfig(Strict):
    name: str = "evolutionary"  # evolutionary | rl | random
    params: dict[str, Any] = {}  # e.g. {"k": 4} (evolutionary), {"lr": 0.5} (rl)


def default_start(in_channels: int, input_size: int, num_classes: int) -> dict[str, Any]:
    """The tiny default student: two stages of 4 and 8 channels (3x3, relu, max-pool), GAP head."""
    return StudentGenome(stages=(StageGene(4), StageGene(8)), in_channels=in_channels, input_size=input_size,
                         num_classes=num_classes).to_dict()


class GrowConfig(Strict):
    seed: int = Field(0, ge=0)
    data: DataConfig = DataConfig(name="fashion-mnist")
    teacher: TeacherConfig = TeacherConfig()
    start: dict[str, Any] | None = None  # start genome (StudentGenome JSON); None = default_start
    space: GrowthSpaceConfig = GrowthSpaceConfig()
    train: GrowthTrainConfig = GrowthTrainConfig()
    growth: GrowthSettings = GrowthSettings()
    controller: ControllerConfig = ControllerConfig()
    objective_weights: dict[str, float] = {}  # MOFE weights of accuracy / params (defaults 1.0 / 0.02)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_grow_config(data: dict[str, Any] | GrowConfig) -> GrowConfig:
    """Validate a grow config; ConfigError names the first bad field."""
    cfg = validate_model(GrowConfig, data)
    from evofusion.growth.controller import CONTROLLERS

    check_data_name(cfg.data.name)
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


class GrowthRun(Run):
    """One online-growth run. ``GrowthRun.create(cfg, run_dir)`` or ``GrowthRun.resume(run_dir)``,
    then ``run()``; ``close()`` releases the run directory. A checkpoint (a generation of the
    :class:`~evofusion.engine.run.Run` lifecycle) ends every growth interval."""

    kind = "grow"
    budget_keys = ("growth.steps",)
    legacy_defaults = {"growth.trigger": "clock", "growth.plateau_delta": 0.005}
    keep_checkpoints = 3

    def __init__(self, cfg: GrowConfig, store: RunStore | None, log: Callable[[str], Any] = print,
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
        self.ops: dict[str, MorphOperator] = {  # type: ignore[misc]
            n: create_operator(n, self.space, **({"init": cfg.growth.widen_init} if n in WIDENINGS else {}))
            for n in self.op_names}
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
        with torch_seeded(int(seeds[3].generate_state(2)[1])):
            model = build(self.start)
        self.trainer = GrowthTrainer(model, self.x, self.y, self.teacher_logits, cfg.train.train_config(),
                                     cfg.growth.steps, gen)
        self.trainer.rewarm_steps = cfg.growth.rewarm_steps
        self.candidate_id = 0
        self.events = 0
        self.best_acc = -1.0
        self.bad_evals = 0
        self.prev_acc: float | None = None  # val accuracy at the previous evaluation (plateau trigger)
        self.last_fitness: float | None = None
        self.seconds = 0.0
        self.stopped = ""
        self.checkpoints = 0

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: dict[str, Any] | GrowConfig, run_dir: str | Path, log: Callable[[str], Any] = print,
               splits: Any = None, teacher_logits: torch.Tensor | None = None,
               callbacks: Sequence[Callback] = ()) -> GrowthRun:
        """Validate, load data and teacher, then create ``run_dir`` (nothing is created on bad input)."""
        gcfg = validate_grow_config(cfg)
        cls._refuse_existing(run_dir)  # before any set-up work
        run = cls(gcfg, None, log, splits, teacher_logits)
        config = {"objectives": {"names": ["accuracy", "params"], "constraints": [],
                                 "weights": dict(gcfg.objective_weights)}, "grow": gcfg.to_dict()}
        from evofusion.engine.study import data_meta

        store = cls._new_store(run_dir, config, data_meta(run.splits), run._teacher_info)
        try:
            run._init_run(store, callbacks)
            store.ensure_growth_tables()
            run._new_candidate(run.start, [], None, {})
            return run
        except BaseException:
            store.close()
            raise

    @classmethod
    def resume(cls, run_dir: str | Path, log: Callable[[str], Any] = print, splits: Any = None,
               teacher_logits: torch.Tensor | None = None, *, overrides: dict[str, Any] | None = None,
               allow_config_change: bool = False, callbacks: Sequence[Callback] = (), **_: Any) -> GrowthRun:
        """Reopen a grow run and continue from its newest consistent checkpoint."""
        store = cls._reopen(run_dir)
        try:
            cfg, change = cls._resume_config(store, overrides, allow_config_change, validate_grow_config,
                                             section="grow")
            run = cls(cfg, store, log, splits, teacher_logits, callbacks)
            cls._check_data(store, run.splits.fingerprint())
            store.ensure_growth_tables()  # a kill right after creation leaves the run without them
            state = run._restore(log)
            store.truncate_growth(run.trainer.step if state else -1, run.candidate_id if state else 0)
            if state is None:  # interrupted before the first checkpoint: start over
                run._new_candidate(run.start, [], None, {})
            run._commit_config(change)
            return run
        except BaseException:
            store.close()
            raise

    def _teacher_logits(self) -> torch.Tensor | None:
        from evofusion.engine.study import cached_teacher_logits

        logits, self._teacher_info = cached_teacher_logits(self.cfg.teacher, self.splits, self.log)
        return logits

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

    def done(self) -> bool:
        return self.trainer.step >= self.cfg.growth.steps or bool(self.stopped)

    def progress(self) -> tuple[int, int | None, str]:
        return self.trainer.step, self.cfg.growth.steps, "step"

    def optimize(self) -> GrowthRun:
        self._result = self.run()
        return self

    def _finalize(self, log: Any) -> dict[str, Any]:
        return getattr(self, "_result", None) or self.run()

    def result_text(self, result: dict[str, Any]) -> str:
        return (f"grew to {result['params']} params in {result['events']} events; val acc "
                f"{result.get('val_accuracy', float('nan')):.4f}, test acc {result.get('test_accuracy', float('nan')):.4f}")

    def run(self, until_step: int | None = None) -> dict[str, Any]:
        """Train and grow until the step budget (or ``until_step``, for tests of resume) or a plateau.
        A full or read-only disk stops the run with RunStoreError; the last checkpoint stays intact."""
        for cb in self.callbacks:
            cb.on_study_start(self)
        out = self.guard_disk(lambda: self._run(until_step))
        for cb in self.callbacks:
            cb.on_study_end(self)
        return out

    def _run(self, until_step: int | None) -> dict[str, Any]:
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
        improving = g.trigger == "plateau" and self.prev_acc is not None and acc - self.prev_acc > g.plateau_delta
        self.prev_acc = acc
        if tr.step < g.steps and not self.stopped and not improving and (g.max_events is None
                                                                          or self.events < g.max_events):
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
        self._candidate_end(self.candidate_id, {"accuracy": acc, "params": params})
        self.trainer.swap(res)
        self.events += 1
        self._new_candidate(res.genome, [self.candidate_id], choice.operator, res.info)
        self.last_fitness = fit
        self.store.add_growth_event(self.trainer.step, choice.operator, params, self.params(), acc, acc_after,
                                    res.info, before.to_json(), res.genome.to_json(), op.preserves_function,
                                    res.damage, self.candidate_id, time.perf_counter() - t0)
        self.log(f"  grew by {choice.operator} {res.info}: {params} -> {self.params()} params, "
                 f"val acc {acc:.4f} -> {acc_after:.4f}")

    def _candidate_end(self, cid: int, values: dict[str, Any]) -> None:
        from evofusion.engine.evaluator import EvalOutcome

        for cb in self.callbacks:
            cb.on_candidate_end(self, EvalOutcome(cid, "COMPLETE", dict(values), seconds=self.seconds))

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
        path = self.store.weights_path(self.candidate_id, final=True)
        whash = save_weights(cpu_state(self.model), path)
        (path.parent / f"{self.candidate_id}.json").write_text(self.genome.to_json())
        self.store.finish_candidate(self.candidate_id, "COMPLETE", {"accuracy": val_acc, "params": params},
                                    weights_hash=whash, weights_file=path, train={"until_step": self.trainer.step},
                                    seconds=self.seconds)
        self._candidate_end(self.candidate_id, {"accuracy": val_acc, "params": params})
        self.store.add_final(self.candidate_id, val_acc, test_acc, {"accuracy": val_acc, "params": params},
                             path, whash, self.seconds, {"steps": self.trainer.step})
        self.store.set_meta("growth_summary", {**self.summary(), "val_accuracy": val_acc, "test_accuracy": test_acc})
        return {**self.summary(), "val_accuracy": val_acc, "test_accuracy": test_acc}

    def summary(self) -> dict[str, Any]:
        return {"step": self.trainer.step, "events": self.events, "params": self.params(),
                "genome": self.genome.to_dict(), "train_flops": self.trainer.train_flops,
                "eval_flops": self.trainer.eval_flops, "seconds": self.seconds, "stopped": self.stopped,
                "candidate_id": self.candidate_id}

    # --- checkpoints (the Run lifecycle writes and verifies them) -------------------------------
    def _checkpoint(self) -> None:
        """End of a growth interval: one checkpoint (generation = interval count)."""
        self.checkpoints += 1
        self.generation = self.checkpoints
        self.next_id = self.candidate_id  # the live candidate's row still changes; those below are final
        self.elapsed = self.seconds
        self.checkpoint()
        for cb in self.callbacks:
            cb.on_generation_end(self, self.generation - 1, [])

    def _tensors(self) -> dict[str, Any]:
        tr = self.trainer
        tensors = {f"model/{n}": v for n, v in cpu_state(self.model).items()}
        for n, p in self.model.named_parameters():
            st = tr.opt.state.get(p, {})
            for key in MOMENTS:
                if key in st:
                    tensors[f"optim/{n}/{key}"] = st[key].detach().cpu().contiguous()
        tensors["stream/order"] = tr.stream.order.contiguous()
        return tensors

    def _state(self) -> dict[str, Any]:
        tr = self.trainer
        steps = {n: float(tr.opt.state[p]["step"]) for n, p in self.model.named_parameters()
                 if "step" in tr.opt.state.get(p, {})}
        state = {
            "strategy": self.controller.state_dict(),
            "genome": self.genome.to_dict(), "step": tr.step, "stream_pos": tr.stream.pos,
            "train_flops": tr.train_flops, "eval_flops": tr.eval_flops, "optim_steps": steps,
            "candidate_id": self.candidate_id, "events": self.events, "best_acc": self.best_acc,
            "bad_evals": self.bad_evals, "last_fitness": self.last_fitness, "seconds": self.seconds,
            "prev_acc": self.prev_acc,
            "stopped": self.stopped, "checkpoints": self.checkpoints,
            "rng_ctrl": self.rng_ctrl.bit_generator.state, "rng_morph": self.rng_morph.bit_generator.state,
            "generator": generator_state_to_str(tr.generator), "last_swap": tr.last_swap,
        }
        return json.loads(json.dumps(state))

    def _load_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        tr = self.trainer
        genome = StudentGenome.from_dict(state["genome"])
        model = build(genome)
        model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        tr.model = model
        tr.opt = make_optimizer(model, tr.cfg)
        for n, p in model.named_parameters():
            st: dict[str, Any] = {}
            for key in MOMENTS:
                if f"optim/{n}/{key}" in tensors:
                    st[key] = tensors[f"optim/{n}/{key}"]
            if st:
                st["step"] = torch.tensor(state["optim_steps"][n])
                tr.opt.state[p] = st
        tr.stream.order, tr.stream.pos = tensors["stream/order"], int(state["stream_pos"])
        generator_state_from_str(tr.generator, state["generator"])
        tr.last_swap = int(state.get("last_swap", -1))
        tr.step, tr.train_flops, tr.eval_flops = int(state["step"]), float(state["train_flops"]), \
            float(state["eval_flops"])
        self.rng_ctrl.bit_generator.state = state["rng_ctrl"]
        self.rng_morph.bit_generator.state = state["rng_morph"]
        self.controller.load_state_dict(state["strategy"])
        self.candidate_id, self.events = int(state["candidate_id"]), int(state["events"])
        self.best_acc, self.bad_evals = float(state["best_acc"]), int(state["bad_evals"])
        self.prev_acc = state.get("prev_acc")
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
