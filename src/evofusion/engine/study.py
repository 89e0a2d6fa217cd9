"""The Study: the one loop every search runs (ask -> evaluate -> store -> tell -> checkpoint)."""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from evofusion.config import CDKA_KEYS, SearchConfig, validate_config
from evofusion.data import DataSplits, check_splits, check_teacher_outputs, load_dataset
from evofusion.distill.loop import evaluate_accuracy, train
from evofusion.engine.callbacks import Callback
from evofusion.engine.context import EvalContext, cache_root, load_arrays, prepare_arrays, resolve_device
from evofusion.engine.evaluator import (
    DISK_FAILURE,
    SCORERS,
    EvalJob,
    EvalOutcome,
    evaluate,
    save_weights,
    static_metrics,
)
from evofusion.engine.executors import EXECUTORS, Executor
from evofusion.engine.feature_kd import feature_kd_from_spec, feature_kd_spec
from evofusion.engine.lamarck import optimizer_path
from evofusion.engine.run import Run
from evofusion.engine.scheduler import RungScheduler
from evofusion.errors import ConfigError, TeacherError
from evofusion.genome import build, genome_from_dict
from evofusion.genome.space import SearchSpace
from evofusion.objectives.base import STATIC_METRICS, ObjectiveSet
from evofusion.objectives.selection import completed, pareto_ids, pick_winners  # noqa: F401 - re-exported
from evofusion.seeding import derive_seed, torch_seeded
from evofusion.store import RunStore
from evofusion.strategies import STRATEGIES, Proposal, Result, Strategy, create_strategy
from evofusion.strategies.operator_control import OperatorController, child_reward, create_operator_controller
from evofusion.teachers import Teacher, TeacherCache, default_teacher_for, train_teacher

# keys a resume may change without --allow-config-change: budgets and where candidates run
TERMINATION_KEYS = ("generations", "max_evaluations", "max_seconds", "final", "executor", "workers", "threads",
                    "address", "timeout", "retries", "recycle_after", "resources")


def candidate_seed(run_seed: int, cid: int) -> int:
    """Per-candidate seed from (run seed, candidate id): the same on any worker or resume."""
    return derive_seed(run_seed, cid)


def exact_morphs() -> frozenset[str]:
    """Operators whose child is exactly its parent's function (Lamarckian starts use ``morph``)."""
    from evofusion.operators.morph import morph_operator_names

    return frozenset(morph_operator_names(preserving_only=True))


def data_meta(splits: DataSplits) -> dict[str, Any]:
    """What a run records of its data: name, fingerprint (checked on resume), split sizes, and the
    input shape and normalization an exported student needs to take raw images."""
    return {"name": splits.name, "fingerprint": splits.fingerprint(), "train": len(splits.train),
            "val": len(splits.val), "test": len(splits.test), "num_classes": splits.num_classes,
            "input_shape": [splits.in_channels, splits.input_size, splits.input_size],
            "mean": list(splits.mean), "std": list(splits.std)}


def resolve_teacher(cfg: SearchConfig, splits: DataSplits, root: Path, log: Any = print) -> Teacher | None:
    """The configured teacher: a teacher dir or file, else the zoo default for the data, trained once
    and cached under ``root/zoo``."""
    t = cfg.teacher
    if not t.enabled:
        return None
    if t.module is not None:
        teacher = teacher_from_module(t.module, t.path)
        check_teacher_fits(teacher.meta, splits, t.module, log)
        return teacher
    if t.path is not None:
        p = Path(t.path)
        if p.is_dir():
            teacher = Teacher.from_dir(p)
        elif t.arch is not None:  # a weights file of a zoo arch: the shape comes from the data set
            teacher = Teacher.from_file(p, arch=t.arch, in_channels=splits.in_channels,
                                        num_classes=splits.num_classes, input_size=splits.input_size,
                                        width=t.width or 1.0)
        else:
            teacher = Teacher.from_file(p)
        teacher.meta = {**teacher.meta, "dir": str(p.resolve())}
        check_teacher_fits(teacher.meta, splits, str(p), log)
        return teacher
    spec = default_teacher_for(splits.name)
    arch, width, epochs = t.arch or spec["arch"], t.width or spec["width"], t.epochs or spec["epochs"]
    d = root / "zoo" / f"{splits.name}-{splits.fingerprint()}-{arch}-w{width}-e{epochs}"
    if not (d / "teacher.json").exists():
        log(f"training the default teacher {arch} (width {width}, {epochs} epochs) on {splits.name}; "
            f"cached in {d}")
        meta = train_teacher(arch, splits, epochs, d, width=width, seed=0,
                             progress=lambda step, acc: log(f"  teacher step {step}: val acc {acc:.4f}"))
        log(f"teacher: val acc {meta['val_accuracy']:.4f}, test acc {meta['test_accuracy']:.4f}, "
            f"{meta['params']} params, {meta['seconds']:.0f} s")
    teacher = Teacher.from_dir(d)
    teacher.meta = {**teacher.meta, "dir": str(d)}
    return teacher


def cached_teacher_logits(teacher_cfg: Any, splits: DataSplits, log: Any = print
                          ) -> tuple[torch.Tensor | None, dict[str, Any] | None]:
    """(the teacher's cached training-split logits, its meta for the run store) for a run kind that
    trains one model with KD (grow, supernet); (None, None) without a teacher. ``teacher_cfg`` is the
    kind's ``teacher:`` section (a ``TeacherConfig``)."""
    from types import SimpleNamespace

    root = cache_root()
    teacher = resolve_teacher(SimpleNamespace(teacher=teacher_cfg), splits, root, log)  # type: ignore[arg-type]
    if teacher is None:
        return None, None
    check_teacher_outputs(teacher, splits)
    cached = TeacherCache(root / "teachers").get(teacher, splits)
    info = {"name": getattr(teacher, "name", "teacher"), "weights_hash": teacher.weights_hash,
            "cache": str(cached.dir), **getattr(teacher, "meta", {})}
    return cached.logits("train"), info


def teacher_from_module(factory_path: str, weights: str | None) -> Teacher:
    """A user's own teacher network: ``factory_path`` ("pkg.mod:factory") returns an ``nn.Module``
    (or is the module class), loaded strictly with the safetensors ``weights`` when given."""
    from evofusion.teachers.zoo import build_user_module

    model = build_user_module(factory_path)
    meta: dict[str, Any] = {"format": "module", "module": factory_path}
    if weights is not None:
        p = Path(weights)
        if p.suffix != ".safetensors" or not p.is_file():
            raise TeacherError(f"teacher.path: {p} must be an existing .safetensors file of the module's weights")
        try:
            model.load_state_dict(load_file(p), strict=True)
        except RuntimeError as e:
            first = " ".join(x.strip() for x in str(e).splitlines()[1:3]) or str(e)
            raise TeacherError(f"teacher.path: {p} does not fit {factory_path}: {first}") from None
        meta["weights"] = str(p.resolve())
    return Teacher(model, name=factory_path.rpartition(":")[2], meta=meta)


def check_teacher_fits(meta: dict[str, Any], splits: DataSplits, where: str, log: Any = print) -> None:
    """A teacher's recorded input channels, input size and classes must match the data (TeacherError
    naming both otherwise); a teacher trained on another data set is used with a warning."""
    have = {"in_channels": splits.in_channels, "input_size": splits.input_size, "num_classes": splits.num_classes}
    bad = [f"{k} {meta[k]} (the data have {v})" for k, v in have.items()
           if isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool) and meta[k] != v]
    trained_on = meta.get("data")
    if bad:
        raise TeacherError(f"{where}: the teacher was built for other inputs: {', '.join(bad)}"
                           + (f"; it was trained on {trained_on}" if trained_on else "")
                           + f". Use a teacher trained on {splits.name}, or leave teacher.path unset for the zoo "
                             "default")
    if isinstance(trained_on, str) and trained_on != splits.name:
        log(f"warning: the teacher in {where} was trained on {trained_on}, the search distills on {splits.name}")


class _Both:
    """Two admissibility predicates (a supernet's subnets and the static constraints)."""

    def __init__(self, first: Any, second: Any):
        self.first, self.second = first, second

    def __call__(self, genome: Any) -> bool:
        return bool(self.first(genome)) and bool(self.second(genome))


class StaticFeasibility:
    """Predicate for ``SearchSpace.admissible``: the genome meets the hard constraints that are known
    before training (params, FLOPs, MACs, size). The model is built on the meta device (no memory,
    no RNG use) and the answer is cached by genome hash."""

    def __init__(self, objectives: ObjectiveSet, max_params: int | None = None):
        self.objectives = objectives
        self.max_params = max_params  # space.max_params (the teacher's size by default)
        self.cache: dict[str, bool] = {}

    def __call__(self, genome: Any) -> bool:
        h = genome.hash
        if h not in self.cache:
            with torch.device("meta"):
                model = build(genome)
            params = sum(p.numel() for p in model.parameters())
            ok = self.max_params is None or params <= self.max_params
            if ok and any(c.name in STATIC_METRICS for c in self.objectives.constraints):
                student = genome.to_student()  # FLOPs and the other static metrics only when constrained
                shape = (student.in_channels, student.input_size, student.input_size)
                ok = self.objectives.static_violation(static_metrics(model, shape)) == 0
            self.cache[h] = ok
        return self.cache[h]


def teacher_params(teacher: Any, info: dict[str, Any]) -> int | None:
    """The teacher's parameter count (its card, else its module), None when it cannot be known."""
    if isinstance(info.get("params"), int) and not isinstance(info.get("params"), bool):
        return int(info["params"])
    fn = getattr(teacher, "fn", None)
    if isinstance(fn, torch.nn.Module):
        n = sum(p.numel() for p in fn.parameters())
        return int(n) if n > 0 else None
    return None


@dataclass
class StudySetup:
    splits: DataSplits
    teacher: Teacher | None
    context: EvalContext
    space: SearchSpace
    objectives: ObjectiveSet
    teacher_info: dict[str, Any]


def setup_study(cfg: SearchConfig, splits: DataSplits | None = None, teacher: Any = None,
                log: Any = print) -> StudySetup:
    """Everything a search needs before the run directory exists: data, pre-flight checks, teacher,
    teacher-output cache. Raises DataError/TeacherError/ConfigError on bad input."""
    root = cache_root(cfg.cache_dir)
    if splits is None:
        splits = load_dataset(cfg.data.name, data_dir=cfg.data.data_dir, val_fraction=cfg.data.val_fraction,
                              seed=cfg.data.seed, limit=cfg.data.limit)
    check_splits(splits)
    if teacher is None:
        teacher = resolve_teacher(cfg, splits, root, log)
    elif not isinstance(teacher, Teacher):
        teacher = Teacher(teacher)
    teacher_dir, info = None, {}
    if teacher is not None:
        check_teacher_outputs(teacher, splits)
        cached = TeacherCache(root / "teachers").get(teacher, splits)
        teacher_dir = str(cached.dir)
        info = {"name": getattr(teacher, "name", "teacher"), "weights_hash": teacher.weights_hash,
                "cache": teacher_dir, **getattr(teacher, "meta", {})}
    data_dir = prepare_arrays(splits, root)
    threads = cfg.threads or (max(1, torch.get_num_threads() // cfg.workers) if cfg.executor == "process"
                              else max(1, int(cfg.resources.cpus)) if cfg.executor == "ray"
                              else torch.get_num_threads())
    train_cfg = cfg.distill.model_dump(exclude=set(CDKA_KEYS))
    fkd_spec = feature_kd_spec(cfg.distill, splits, teacher, root / "teachers", log)
    ctx = EvalContext(data_dir=str(data_dir), teacher_dir=teacher_dir, train=train_cfg,
                      objectives=tuple(cfg.objectives.names), constraints=tuple(cfg.objectives.constraints),
                      latency_threads=cfg.objectives.latency_threads, threads=threads,
                      inherit_weights=cfg.inherit_weights, device=cfg.device,
                      extra={**({"feature_kd": fkd_spec} if fkd_spec else {}),
                             **({"save_optimizer": True} if cfg.scheduler or cfg.lamarckian else {}),
                             **({"evaluate_fn": cfg.evaluate_fn} if cfg.evaluate_fn else {})},
                      custom_objectives={k: v.model_dump() for k, v in cfg.objectives.custom.items()})
    s = cfg.space
    space = SearchSpace(in_channels=splits.in_channels, input_size=splits.input_size,
                        num_classes=splits.num_classes, encoding=s.encoding, min_stages=s.min_stages,
                        max_stages=s.max_stages, widths=tuple(s.widths), min_depth=s.min_depth,
                        max_depth=s.max_depth, kernels=tuple(s.kernels), activations=tuple(s.activations),
                        pools=tuple(s.pools), allow_skip=s.allow_skip, head_kinds=tuple(s.head_kinds),
                        head_hidden=tuple(s.head_hidden), chromosome_blocks=s.chromosome_blocks,
                        chromosome_base_width=s.chromosome_base_width)
    objectives = ObjectiveSet.from_names(cfg.objectives.names, cfg.objectives.constraints, cfg.objectives.weights)
    if cfg.supernet is not None:  # the space is the supernet's subnets; candidates are scored, not trained
        space, ref = SCORERS.get("supernet").setup(cfg.supernet, splits, space, log)
        ctx = dataclasses.replace(ctx, extra={**ctx.extra, "scorer": {"name": "supernet", **ref}})
    max_params = teacher_params(teacher, info) if s.max_params == "teacher" else s.max_params
    if max_params is not None and s.max_params == "teacher":
        log(f"search space bounded by the teacher: students of at most {max_params:,} params "
            "(space.max_params; null lifts the bound)")
    if any(c.name in STATIC_METRICS for c in objectives.constraints) or max_params is not None:
        static = StaticFeasibility(objectives, max_params)
        inner = space.admissible
        space = dataclasses.replace(space, admissible=static if inner is None else _Both(inner, static))
    space.sample(np.random.default_rng(0))  # ConfigError now, not after the run directory exists
    return StudySetup(splits, teacher, ctx, space, objectives, info)


def make_strategy(cfg: SearchConfig, setup: StudySetup) -> Strategy:
    """The configured strategy, its rng seeded from the run seed; bad params raise ConfigError naming
    ``strategy.params.<name>``."""
    params = dict(cfg.strategy.params)
    if "population_size" in inspect.signature(STRATEGIES.get(cfg.strategy.name)).parameters:
        params.setdefault("population_size", cfg.strategy.population)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(1,)))
    try:
        strategy = create_strategy(cfg.strategy.name, setup.space, setup.objectives, rng, **params)
    except ConfigError as e:
        if e.field.startswith("strategy."):
            raise
        raise ConfigError(f"strategy.params.{e.field}", str(e).split(": ", 1)[-1]) from None
    except TypeError as e:
        raise ConfigError("strategy.params", str(e)) from None
    if cfg.controller is not None:
        variation = getattr(strategy, "variation", None)
        if variation is None or not variation.mutation_names:
            raise ConfigError("controller", f"strategy {cfg.strategy.name!r} makes no mutated children to choose "
                              "operators for; use nsga2, ga or regularized, or drop the controller")
        variation.controller = create_operator_controller(cfg.controller.name, variation.mutation_names,
                                                          **cfg.controller.params)
    return strategy


def operator_controller(strategy: Strategy) -> OperatorController | None:
    """The operator controller a strategy's variation uses (None: uniform draws)."""
    variation = getattr(strategy, "variation", None)
    return getattr(variation, "controller", None)


class Study(Run):
    """One search run. Create with ``Study.create`` (new run dir) or ``Study.resume`` (existing).

    A step is one generation: ask -> evaluate (reusing rows a killed step already finished) -> store
    -> tell; the lifecycle (checkpoints, resume, disk-error stop) is :class:`~evofusion.engine.run.Run`'s.
    """

    kind = "search"
    budget_keys = TERMINATION_KEYS
    legacy_defaults = {"space.max_params": None, "objectives.custom": {}, "evaluate_fn": None, "supernet": None}
    # the picklable per-candidate evaluation; a subclass for another genome kind (e.g. pruning) swaps it
    evaluate_fn = staticmethod(evaluate)

    def __init__(self, cfg: SearchConfig, store: RunStore, setup: StudySetup,
                 callbacks: Sequence[Callback] = (), executor: Executor | None = None):
        self.cfg, self.setup = cfg, setup
        self._init_run(store, callbacks)
        self.strategy: Strategy = make_strategy(cfg, setup)
        self.executor = executor or make_executor(cfg, setup.context.threads)
        self.next_id = 0
        self.scheduler = RungScheduler(tuple(cfg.scheduler.rungs), cfg.scheduler.eta) if cfg.scheduler else None
        self.stop_reason = ""  # why optimize() ended early (a spent wall-clock budget), for the log

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def create(cls, config: SearchConfig | dict, run_dir: str | Path, *, splits: DataSplits | None = None,
               teacher: Any = None, callbacks: Sequence[Callback] = (), executor: Executor | None = None,
               log: Any = print) -> Study:
        cfg = config if isinstance(config, SearchConfig) else validate_config(config)
        cls._refuse_existing(run_dir)  # before any set-up work
        setup = setup_study(cfg, splits, teacher, log)  # all validation before the run dir exists
        make_strategy(cfg, setup)
        executor = executor or make_executor(cfg, setup.context.threads)  # no GPU, no Ray cluster: fail here
        store = cls._new_store(run_dir, cfg.to_dict(), data_meta(setup.splits), setup.teacher_info)
        return cls(cfg, store, setup, callbacks, executor)

    @classmethod
    def resume(cls, run_dir: str | Path, *, overrides: dict[str, Any] | None = None,
               allow_config_change: bool = False, splits: DataSplits | None = None, teacher: Any = None,
               callbacks: Sequence[Callback] = (), executor: Executor | None = None, log: Any = print) -> Study:
        store = cls._reopen(run_dir)  # a corrupt run.db is replaced by its newest valid backup
        try:
            cfg, change = cls._resume_config(store, overrides, allow_config_change, validate_config)
            setup = setup_study(cfg, splits, teacher, log)
            cls._check_data(store, setup.splits.fingerprint())
            study = cls(cfg, store, setup, callbacks, executor)
            study._restore(log)
            study._commit_config(change)  # only once the saved state loaded under the new config
            return study
        except BaseException:
            store.close()
            raise

    # --- state ---------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        ctrl = operator_controller(self.strategy)
        return {"strategy": self.strategy.state_dict(),
                **({"scheduler": self.scheduler.state_dict()} if self.scheduler else {}),
                **({"controller": ctrl.state_dict()} if ctrl is not None else {})}

    def _load_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state["strategy"])
        ctrl = operator_controller(self.strategy)
        if ctrl is not None and state.get("controller") is not None:
            ctrl.load_state_dict(state["controller"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state.get("scheduler") or {"rungs": list(self.scheduler.rungs),
                                                                     "eta": self.scheduler.eta, "promoted": []})

    def progress(self) -> tuple[int, int | None, str]:
        c = self.cfg
        total = c.generations * c.strategy.population
        if c.max_evaluations is not None:
            total = min(total, c.max_evaluations)
        elif c.max_seconds is not None:
            total = None  # the clock ends the run, not a count (see time_budget)
        return self.next_id, total, "candidate"

    def time_budget(self) -> float | None:
        return self.cfg.max_seconds

    # --- the loop ------------------------------------------------------------------------------
    def done(self) -> bool:
        c = self.cfg
        return (self.generation >= c.generations
                or (c.max_evaluations is not None and self.next_id >= c.max_evaluations)
                or (c.max_seconds is not None and self.elapsed >= c.max_seconds))

    def _priority(self, genome: Any, elites: set[str]) -> float:
        """Lower runs first: re-evaluations of already evaluated genomes, then by FLOPs (cheap first)."""
        cache = self.__dict__.setdefault("_flops_cache", {})
        if genome.hash not in cache:
            try:
                student = genome.to_student()
                with torch.device("meta"):
                    model = build(genome)
                shape = (student.in_channels, student.input_size, student.input_size)
                cache[genome.hash] = static_metrics(model, shape)["flops"]
            except Exception:  # a genome kind without a student spec, or invalid: no cost estimate
                cache[genome.hash] = 0.0
        return (0.0 if genome.hash in elites else 1e18) + cache[genome.hash]

    def _step(self) -> list[EvalOutcome]:
        """One generation; a disk error while storing raises (the base stops the run cleanly)."""
        n = self.cfg.strategy.population
        if self.cfg.max_evaluations is not None:
            n = min(n, self.cfg.max_evaluations - self.next_id)
        proposals = self.strategy.ask(n) if n > 0 else []
        n_new = len(proposals)
        proposals += self._promotions()  # multi-fidelity: best candidates of each rung continue
        for cb in self.callbacks:
            cb.on_generation_start(self, self.generation, len(proposals))
        ids = list(range(self.next_id, self.next_id + len(proposals)))
        outcomes: dict[int, EvalOutcome] = {}
        elites = self.store.evaluated_hashes()
        todo = []
        for cid, p in zip(ids, proposals, strict=True):
            row = self.store.candidate(cid)
            if row is not None and row["genome_hash"] == p.genome.hash and row["status"] != "PENDING":
                outcomes[cid] = EvalOutcome(cid, row["status"], row["objective_values"], row["reason"],
                                            row["weights_hash"], row["weights_file"], row["train"],
                                            row["seconds"] or 0.0)
            else:
                todo.append((cid, p))
        # a wall-clock budget hands candidates out a slot's worth at a time, in id order, and stops
        # handing them out once it is spent (the ones running then finish and are kept)
        budget, t0 = self.cfg.max_seconds, time.perf_counter()
        slots = self.cfg.workers if self.cfg.executor != "serial" else 1
        chunk = max(1, len(todo)) if budget is None else max(1, slots)
        cut = ids[-1] + 1 if ids else self.next_id
        for start in range(0, len(todo), chunk):
            if budget is not None and start > 0 and self.elapsed + time.perf_counter() - t0 >= budget:
                cut = todo[start][0]
                self.stop_reason = (f"the wall-clock budget of {budget:g} s was spent during generation "
                                    f"{self.generation}: {len(todo) - start} of its candidates were not started "
                                    "(resume with a larger --max-seconds to continue)")
                break
            self._evaluate(todo[start:start + chunk], elites, outcomes)
        kept = [(cid, p) for cid, p in zip(ids, proposals, strict=True) if cid < cut]
        ordered = [outcomes[cid] for cid, _ in kept]
        results = [Result(o.candidate_id, p.genome, o.status, o.values, tuple(p.parents), o.reason)
                   for o, (_, p) in zip(ordered, kept, strict=True)]
        self._reward_operators(results[:n_new], kept[:n_new])
        self.strategy.tell(results[:n_new])
        self.strategy.update(results[n_new:])  # a promoted genome's better-trained score
        self.next_id += len(kept)
        return ordered

    def _reward_operators(self, results: list[Result], kept: list[tuple[int, Proposal]]) -> None:
        """The operator controller learns from each mutated child's gain over its main parent."""
        ctrl = operator_controller(self.strategy)
        if ctrl is None or self.cfg.controller is None:
            return
        for res, (_, p) in zip(results, kept, strict=True):
            if not p.operator or not p.parents:
                continue
            op = p.operator.split("+")[-1]  # the mutation is applied last
            parent = self.store.candidate(p.parents[0])
            if op not in ctrl.operators or parent is None or not parent["objective_values"]:
                continue
            ctrl.observe(op, child_reward(res.values, res.status, parent["objective_values"],
                                          self.setup.objectives, self.cfg.controller.failure_reward))

    def _promotions(self) -> list[Proposal]:
        """Continuations the rung scheduler promotes (one new row each, same genome, parent = the row)."""
        if self.scheduler is None:
            return []
        scored = []
        for r in completed(self.store, self.setup.objectives):
            if r["id"] >= self.next_id:  # rows of the interrupted generation are re-done, not ranked
                continue
            scored.append((Result(r["id"], genome_from_dict(r["genome"]), r["status"], r["objective_values"]),
                           int(r["train"].get("rung", 0))))
        return [Proposal(genome=next(res.genome for res, _ in scored if res.candidate_id == pr.candidate_id),
                         parents=(pr.candidate_id,), operator="continue",
                         operator_args={"rung": pr.rung, "steps": pr.steps})
                for pr in self.scheduler.promotions(scored, self.setup.objectives)]

    def _job(self, cid: int, p: Proposal, seed: int, elites: set[str]) -> EvalJob:
        """The evaluation job of proposal ``p``: how it starts (inherit / continue / morph), its budget."""
        parent_w = self._parent_weights(p)
        parent = self.store.candidate(p.parents[0]) if p.parents else None
        lineage = int(parent["train"].get("steps_total", parent["train"].get("steps", 0))) if parent else 0
        kw: dict[str, Any] = {"steps": self.scheduler.first_steps if self.scheduler else None, "lineage_steps": 0}
        opt = str(optimizer_path(parent_w)) if parent_w else None
        if p.operator == "continue" and parent is not None:
            kw = {"start": "continue", "parent_optimizer": opt, "steps": int(p.operator_args["steps"]),
                  "lineage_steps": lineage, "rung": int(p.operator_args["rung"])}
        elif self.cfg.lamarckian and parent is not None and p.operator in exact_morphs():
            kw.update(start="morph", parent_optimizer=opt, lineage_steps=lineage,
                      morph={"operator": p.operator, "info": p.operator_args[p.operator],
                             "parent_genome": parent["genome"]})
        return EvalJob(cid, p.genome.to_dict(), seed, str(self.store.weights_path(cid)), self.setup.context,
                       parent_w, priority=self._priority(p.genome, elites), **kw)

    def _evaluate(self, todo: list[tuple[int, Proposal]], elites: set[str], outcomes: dict[int, EvalOutcome]) -> None:
        """Record, run and store candidates ``todo`` (id, proposal) through the executor."""
        jobs = []
        for cid, p in todo:
            seed = candidate_seed(self.cfg.seed, cid)
            self.store.add_candidate(cid, self.generation, p.genome.to_dict(), p.genome.hash, list(p.parents),
                                     p.operator, p.operator_args, seed)
            jobs.append(self._job(cid, p, seed, elites))
        run = getattr(self.executor, "imap", None) or self.executor.map  # imap: store each as it ends
        for out in run(self.evaluate_fn, jobs):
            if out.status == "FAILED" and out.reason.startswith(DISK_FAILURE):
                raise self._disk_error(out.reason)  # not stored: the candidate runs again on resume
            self.store.finish_candidate(out.candidate_id, out.status, out.values, out.reason, out.weights_hash,
                                        out.weights_file, out.train, out.seconds)
            outcomes[out.candidate_id] = out
            for cb in self.callbacks:
                cb.on_candidate_end(self, out)

    def _parent_weights(self, p: Proposal) -> str | None:
        if not p.parents or (not self.cfg.inherit_weights and p.operator != "continue"):
            return None  # a multi-fidelity continuation always resumes its own row's weights
        row = self.store.candidate(p.parents[0])
        path = self.store.resolve(row["weights_file"]) if row else None
        return str(path) if path is not None and path.exists() else None

    # --- results -------------------------------------------------------------------------------
    def _finalize(self, log: Any) -> list[dict[str, Any]]:
        if self.stop_reason:
            log(self.stop_reason)
        return self.finalize(log=log)

    def pareto_ids(self) -> list[int]:
        return pareto_ids(self.store, self.setup.objectives)

    def best_candidates(self, k: int | None = None) -> list[dict[str, Any]]:
        """The Pareto-optimal COMPLETE candidates, most accurate first (at most ``k``): id, genome,
        objective values, training record (rung, steps, steps_total) and the weights file's path."""
        rows = sorted((self.store.candidate(i) for i in self.pareto_ids()),
                      key=lambda r: -float(r["objective_values"].get("accuracy", 0.0)))
        out = [{"id": r["id"], "genome": r["genome"], "values": dict(r["objective_values"]), "train": r["train"],
                "weights": str(self.store.resolve(r["weights_file"])) if r["weights_file"] else None}
               for r in rows]
        return out if k is None else out[:k]

    def trials_dataframe(self) -> Any:
        """Every candidate as one flat row (id, generation, status, operator, parents, seconds, each
        metric, rung, steps, steps_total): a ``pandas.DataFrame`` when pandas is installed, else a list
        of dicts with the same columns."""
        rows = []
        for r in self.store.candidates():
            t = r["train"] or {}
            rows.append({"id": r["id"], "generation": r["generation"], "status": r["status"],
                         "operator": r["operator"], "parents": list(r["parents"] or []), "reason": r["reason"],
                         "seconds": r["seconds"], **{k: v for k, v in (r["objective_values"] or {}).items()},
                         "rung": t.get("rung", 0), "steps": t.get("steps"),
                         "steps_total": t.get("steps_total", t.get("steps"))})
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def export(self, candidate_id: int | None, out_dir: str | Path, *, onnx: bool = False, int8: bool = False,
               force: bool = False, calibration: int = 512) -> Path:
        """Export a candidate (None: the best) like ``evofusion export``: genome + weights + card +
        student.pt, and with ``onnx`` / ``int8`` the measured ONNX graphs. Returns the folder."""
        from evofusion.export.run_export import export_candidate

        return export_candidate(self.store, candidate_id, out_dir, onnx=onnx, int8=int8, calibration=calibration,
                                data_dir=self.cfg.data.data_dir, force=force)[1]

    def finalize(self, ids: Sequence[int] | None = None, log: Any = print) -> list[dict[str, Any]]:
        """Full-data KD fine-tune of the winners (default: ``final.top_k`` spread along the Pareto front),
        then validation and test accuracy. Test accuracy is reported, never used for selection."""
        if ids is None:
            ids = pick_winners(self.store, self.setup.objectives, self.cfg.final.top_k)
        arrays = load_arrays(self.setup.context.data_dir, self.setup.context.teacher_dir)
        f, d = self.cfg.final, self.cfg.distill
        tcfg = d.train_config(epochs=f.epochs, steps=f.steps, data_fraction=f.data_fraction, lr=f.lr or d.lr,
                              patience=f.patience, augment=f.augment)
        finals = self.store.finals()
        done = {r["candidate_id"] for r in finals}
        # a wall-clock budget for the phase: what earlier (resumed) fine-tunes spent counts against it
        wanted = set(ids)
        left = None if f.max_seconds is None else f.max_seconds - sum(
            float(r["seconds"] or 0.0) for r in finals if r["candidate_id"] in wanted)
        todo = [cid for cid in ids if cid not in done]
        feature_kd = feature_kd_from_spec(self.setup.context.extra.get("feature_kd"), spatial=f.augment == "none")
        even_steps = left is not None and f.split == "steps"
        probes: dict[int, StepProbe] = {}
        common = 0
        out = []
        for i, cid in enumerate(todo):
            row = self.store.candidate(cid)
            model, seed = self._final_model(cid, row)
            t0 = time.perf_counter()
            wcfg = tcfg
            if even_steps:
                if i == 0:  # every winner's step time first, so the budget buys all the same step count
                    probes = {c: probe_step(m, arrays, tcfg, feature_kd) for c, m in
                              [(cid, model)] + [(c, self._final_model(c)[0]) for c in todo[i + 1:]]}
                    left -= sum(p.seconds for p in probes.values())
                    t0 = time.perf_counter()
                    common = even_step_count(list(probes.values()), left)
                pending = [probes[c] for c in todo[i:] if c in probes]
                # re-planned after each winner from the time really left, margin spent: only a winner that
                # ran past the plan's 10% margin lowers the count of those after it, not timing noise
                common = min(common, even_step_count(pending, left, margin=1.0))
                steps = min(probes[cid].planned, common)
                if steps < 1:
                    log(f"final fine-tune of candidate {cid} skipped: final.max_seconds left {max(left, 0):.1f} s "
                        f"for {len(pending)} winner(s), too little for one step each")
                    del probes[cid]
                    continue
                wcfg = dataclasses.replace(tcfg, steps=steps)
            elif left is not None:
                share = left / (len(todo) - i)
                steps = fit_steps(model, arrays, tcfg, share, feature_kd)
                if steps < 1:
                    log(f"final fine-tune of candidate {cid} skipped: final.max_seconds left {max(left, 0):.1f} s "
                        f"for {len(todo) - i} winner(s), too little for one step")
                    continue
                wcfg = dataclasses.replace(tcfg, steps=steps)
            rep = train(model, arrays["train_x"], arrays["train_y"], wcfg, teacher_logits=arrays.get("train_t"),
                        val=(arrays["val_x"], arrays["val_y"]), generator=torch.Generator().manual_seed(seed),
                        feature_kd=feature_kd)
            val_acc = evaluate_accuracy(model, arrays["val_x"], arrays["val_y"])
            test_acc = evaluate_accuracy(model, arrays["test_x"], arrays["test_y"])
            path = self.store.weights_path(cid, final=True)
            values = dict(row["objective_values"], accuracy=val_acc)
            secs = time.perf_counter() - t0
            probe_s = probes.pop(cid).seconds if cid in probes else 0.0  # already taken from `left`
            self.guard_disk(lambda: self.store.add_final(  # noqa: B023 - called at once
                cid, val_acc, test_acc, values, path, save_weights(model.cpu(), path), secs + probe_s,  # noqa: B023
                {"steps": rep.steps, "epochs": rep.epochs, "stopped_early": rep.stopped_early}))  # noqa: B023
            if left is not None:
                left -= secs
            log(f"final fine-tune of candidate {cid}: val {val_acc:.4f} test {test_acc:.4f} "
                f"({int(values['params'])} params, {rep.steps} steps, {secs:.1f} s)")
            out.append({"candidate_id": cid, "val_accuracy": val_acc, "test_accuracy": test_acc})
        return out

    def _final_model(self, cid: int, row: dict[str, Any] | None = None) -> tuple[torch.nn.Module, int]:
        """A winner's model with its stored weights on the run's device, and its fine-tune seed."""
        row = row or self.store.candidate(cid)
        seed = candidate_seed(self.cfg.seed, 10_000_000 + cid)
        with torch_seeded(seed):
            model = build(genome_from_dict(row["genome"]))
        weights = self.store.resolve(row["weights_file"])
        if weights is not None and weights.exists():
            model.load_state_dict(load_file(weights))
        return model.to(resolve_device(self.cfg.device)), seed

    def close(self) -> None:
        self.executor.close()
        self.store.close()


PROBE_STEPS = 6


@dataclasses.dataclass(frozen=True)
class StepProbe:
    """A winner's measured cost: seconds per training step, seconds of its validation + test
    evaluation, the steps its schedule plans, and the seconds the probe itself took."""

    step_s: float
    eval_s: float
    planned: int
    seconds: float

    def cost(self, steps: int) -> float:
        return min(steps, self.planned) * self.step_s + self.eval_s


def probe_step(model: torch.nn.Module, arrays: dict[str, Any], cfg: Any, feature_kd: Any = None) -> StepProbe:
    """Time a few training steps of ``cfg`` on a copy of ``model`` (the model itself is not changed)."""
    import copy

    probe = dataclasses.replace(cfg, steps=PROBE_STEPS, patience=0)
    t0 = time.perf_counter()
    train(copy.deepcopy(model), arrays["train_x"], arrays["train_y"], probe, teacher_logits=arrays.get("train_t"),
          generator=torch.Generator().manual_seed(0), feature_kd=feature_kd)
    step_s = max((time.perf_counter() - t0) / PROBE_STEPS, 1e-6)
    # an evaluation batch costs about a third of a training step (forward only)
    eval_s = step_s / 3 * (len(arrays["val_y"]) + len(arrays["test_y"])) / cfg.batch_size
    return StepProbe(step_s, eval_s, cfg.plan(len(arrays["train_y"]))[1], time.perf_counter() - t0)


def even_step_count(probes: Sequence[StepProbe], seconds: float, margin: float = 0.9) -> int:
    """The largest step count N such that every probed winner training min(N, its plan) steps, plus its
    evaluations, ends within ``margin * seconds`` in all (a 10% margin by default). A winner capped at
    its plan leaves the rest to the others. 0 when not even one step each fits; the largest plan when
    all plans fit."""
    budget = seconds * margin
    top = max((p.planned for p in probes), default=0)
    if not probes or sum(p.cost(1) for p in probes) > budget:
        return 0
    lo, hi = 1, top  # cost is monotone in N: bisect for the last N that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(p.cost(mid) for p in probes) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def fit_steps(model: torch.nn.Module, arrays: dict[str, Any], cfg: Any, seconds: float,
              feature_kd: Any = None) -> int:
    """The step count of ``cfg`` (its steps, else its epochs over the used data) cut so that training
    ``model`` with it, plus the validation and test evaluations after it, ends within ``seconds``:
    the step time comes from a timed probe of a few steps on a copy of the model (the model itself is
    not changed). 0 when not even one step fits."""
    if seconds <= 0:
        return 0
    p = probe_step(model, arrays, cfg, feature_kd)
    fit = int((seconds - p.seconds - p.eval_s) * 0.9 / p.step_s)
    return max(0, min(p.planned, fit))


def _failed_outcome(job: EvalJob, reason: str) -> EvalOutcome:
    return EvalOutcome(job.candidate_id, "FAILED", reason=reason)


def make_executor(cfg: SearchConfig, threads: int) -> Executor:
    """The configured executor with the run's reliability settings (timeout, retries, recycling)."""
    return EXECUTORS.create(cfg.executor, workers=cfg.workers, threads=threads, on_failure=_failed_outcome,
                            device=cfg.device, gpus=cfg.resources.gpus, gpu_memory_mb=cfg.resources.gpu_memory_mb,
                            cpus=cfg.resources.cpus, timeout=cfg.timeout, retries=cfg.retries,
                            recycle_after=cfg.recycle_after, address=cfg.address)
