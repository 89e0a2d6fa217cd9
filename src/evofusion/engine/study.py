"""The Study: the one loop every search runs (ask -> evaluate -> store -> tell -> checkpoint)."""

from __future__ import annotations

import dataclasses
import inspect
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from evofusion.config import CDKA_KEYS, SearchConfig, config_diff, validate_config
from evofusion.data import DataSplits, check_splits, check_teacher_outputs, load_dataset
from evofusion.distill.loop import TrainConfig, evaluate_accuracy, train
from evofusion.engine.callbacks import Callback, JsonlLogger
from evofusion.engine.context import EvalContext, cache_root, load_arrays, prepare_arrays, resolve_device
from evofusion.engine.evaluator import (
    DISK_FAILURE,
    EvalJob,
    EvalOutcome,
    evaluate,
    save_weights,
    static_metrics,
)
from evofusion.engine.executors import EXECUTORS, Executor
from evofusion.engine.feature_kd import feature_kd_from_spec, feature_kd_spec
from evofusion.errors import ConfigError, RunStoreError
from evofusion.genome import build, genome_from_dict
from evofusion.genome.space import SearchSpace
from evofusion.objectives.base import STATIC_METRICS, ObjectiveSet
from evofusion.objectives.pareto import pareto_front
from evofusion.store import RunStore
from evofusion.store.integrity import is_disk_error
from evofusion.strategies import STRATEGIES, Proposal, Result, Strategy, create_strategy
from evofusion.teachers import Teacher, TeacherCache, default_teacher_for, train_teacher

# keys a resume may change without --allow-config-change: budgets and where candidates run
TERMINATION_KEYS = ("generations", "max_evaluations", "max_seconds", "final", "executor", "workers", "threads",
                    "address", "timeout", "retries", "recycle_after", "resources")


def candidate_seed(run_seed: int, cid: int) -> int:
    """Per-candidate seed from (run seed, candidate id): the same on any worker or resume."""
    return int(np.random.SeedSequence([run_seed, cid]).generate_state(1)[0])


def resolve_teacher(cfg: SearchConfig, splits: DataSplits, root: Path, log: Any = print) -> Teacher | None:
    """The configured teacher: a teacher dir or file, else the zoo default for the data, trained once
    and cached under ``root/zoo``."""
    t = cfg.teacher
    if not t.enabled:
        return None
    if t.path is not None:
        p = Path(t.path)
        teacher = Teacher.from_dir(p) if p.is_dir() else Teacher.from_file(p, arch=t.arch)
        teacher.meta = {**teacher.meta, "dir": str(p.resolve())}
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


class StaticFeasibility:
    """Predicate for ``SearchSpace.admissible``: the genome meets the hard constraints that are known
    before training (params, FLOPs, MACs, size). The model is built on the meta device (no memory,
    no RNG use) and the answer is cached by genome hash."""

    def __init__(self, objectives: ObjectiveSet):
        self.objectives = objectives
        self.cache: dict[str, bool] = {}

    def __call__(self, genome: Any) -> bool:
        h = genome.hash
        if h not in self.cache:
            student = genome.to_student()
            with torch.device("meta"):
                model = build(genome)
            shape = (student.in_channels, student.input_size, student.input_size)
            self.cache[h] = self.objectives.static_violation(static_metrics(model, shape)) == 0
        return self.cache[h]


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
                      extra={"feature_kd": fkd_spec} if fkd_spec else {})
    s = cfg.space
    space = SearchSpace(in_channels=splits.in_channels, input_size=splits.input_size,
                        num_classes=splits.num_classes, encoding=s.encoding, min_stages=s.min_stages,
                        max_stages=s.max_stages, widths=tuple(s.widths), min_depth=s.min_depth,
                        max_depth=s.max_depth, kernels=tuple(s.kernels), activations=tuple(s.activations),
                        pools=tuple(s.pools), allow_skip=s.allow_skip, head_kinds=tuple(s.head_kinds),
                        head_hidden=tuple(s.head_hidden), chromosome_blocks=s.chromosome_blocks,
                        chromosome_base_width=s.chromosome_base_width)
    objectives = ObjectiveSet.from_names(cfg.objectives.names, cfg.objectives.constraints, cfg.objectives.weights)
    if any(c.name in STATIC_METRICS for c in objectives.constraints):
        space = dataclasses.replace(space, admissible=StaticFeasibility(objectives))
    return StudySetup(splits, teacher, ctx, space, objectives, info)


def make_strategy(cfg: SearchConfig, setup: StudySetup) -> Strategy:
    """The configured strategy, its rng seeded from the run seed; bad params raise ConfigError naming
    ``strategy.params.<name>``."""
    params = dict(cfg.strategy.params)
    if "population_size" in inspect.signature(STRATEGIES.get(cfg.strategy.name)).parameters:
        params.setdefault("population_size", cfg.strategy.population)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(1,)))
    try:
        return create_strategy(cfg.strategy.name, setup.space, setup.objectives, rng, **params)
    except ConfigError as e:
        if e.field.startswith("strategy."):
            raise
        raise ConfigError(f"strategy.params.{e.field}", str(e).split(": ", 1)[-1]) from None
    except TypeError as e:
        raise ConfigError("strategy.params", str(e)) from None


class Study:
    """One search run. Create with ``Study.create`` (new run dir) or ``Study.resume`` (existing)."""

    # the picklable per-candidate evaluation; a subclass for another genome kind (e.g. pruning) swaps it
    evaluate_fn = staticmethod(evaluate)

    def __init__(self, cfg: SearchConfig, store: RunStore, setup: StudySetup,
                 callbacks: Sequence[Callback] = (), executor: Executor | None = None):
        self.cfg, self.store, self.setup = cfg, store, setup
        self.callbacks = [JsonlLogger(store.dir / "logs.jsonl"), *callbacks]
        self.strategy: Strategy = make_strategy(cfg, setup)
        self.executor = executor or make_executor(cfg, setup.context.threads)
        self.generation = 0
        self.next_id = 0
        self.elapsed = 0.0
        self.warnings: list[str] = []

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def create(cls, config: SearchConfig | dict, run_dir: str | Path, *, splits: DataSplits | None = None,
               teacher: Any = None, callbacks: Sequence[Callback] = (), executor: Executor | None = None,
               log: Any = print) -> Study:
        cfg = config if isinstance(config, SearchConfig) else validate_config(config)
        if (Path(run_dir) / "run.db").exists():
            raise RunStoreError(f"{run_dir} already holds a run; use `evofusion resume {run_dir}` "
                                "or choose another --run-dir")
        setup = setup_study(cfg, splits, teacher, log)  # all validation before the run dir exists
        make_strategy(cfg, setup)
        executor = executor or make_executor(cfg, setup.context.threads)  # no GPU, no Ray cluster: fail here
        store = RunStore(run_dir, create=True)
        store.set_meta("config", cfg.to_dict())
        store.set_meta("data", {"name": setup.splits.name, "fingerprint": setup.splits.fingerprint(),
                                "train": len(setup.splits.train), "val": len(setup.splits.val),
                                "test": len(setup.splits.test), "num_classes": setup.splits.num_classes})
        store.set_meta("teacher", setup.teacher_info)
        return cls(cfg, store, setup, callbacks, executor)

    @classmethod
    def resume(cls, run_dir: str | Path, *, overrides: dict[str, Any] | None = None,
               allow_config_change: bool = False, splits: DataSplits | None = None, teacher: Any = None,
               callbacks: Sequence[Callback] = (), executor: Executor | None = None, log: Any = print) -> Study:
        store = RunStore(run_dir, recover=True)  # a corrupt run.db is replaced by its newest valid backup
        try:
            if store.get_meta("prune") is not None:  # PruneStudy.resume handles pruning runs
                raise RunStoreError(f"{run_dir} is a pruning run; continue it with `evofusion prune --resume {run_dir}`")
            old = store.get_meta("config")
            new = dict(old)
            for k, v in (overrides or {}).items():
                new[k] = v
            cfg = validate_config(new)
            diff = [d for d in config_diff(old, cfg.to_dict())
                    if d.split(".")[0].split(":")[0] not in TERMINATION_KEYS]
            if diff and not allow_config_change:
                raise RunStoreError("the config differs from the run's; pass --allow-config-change to resume "
                                    "anyway:\n  " + "\n  ".join(diff))
            setup = setup_study(cfg, splits, teacher, log)
            data = store.get_meta("data")
            if data["fingerprint"] != setup.splits.fingerprint():
                raise RunStoreError(f"the data differ from the run's (fingerprint {setup.splits.fingerprint()} "
                                    f"vs {data['fingerprint']}); resume with the same data set")
            store.set_meta("config", cfg.to_dict())
            study = cls(cfg, store, setup, callbacks, executor)
            state, warnings = consistent_checkpoint(store)
            study.warnings = warnings
            for w in warnings:
                log(w)
            if state is not None:
                study._load_state(state)
            return study
        except BaseException:
            store.close()
            raise

    # --- state ---------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"next_id": self.next_id, "elapsed": self.elapsed, "strategy": self.strategy.state_dict(),
                "callbacks": [{"class": type(c).__name__, "state": c.state_dict()} for c in self.callbacks]}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.generation = state["generation"]
        self.next_id = state["next_id"]
        self.elapsed = state["elapsed"]
        self.strategy.load_state_dict(state["strategy"])
        # match saved callback states by class (the list may differ, e.g. --quiet drops the progress bar)
        saved: dict[str, list[dict[str, Any]]] = {}
        for entry in state.get("callbacks", []):
            saved.setdefault(entry["class"], []).append(entry["state"])
        for c in self.callbacks:
            pending = saved.get(type(c).__name__)
            if pending:
                c.load_state_dict(pending.pop(0))

    # --- the loop ------------------------------------------------------------------------------
    def done(self) -> bool:
        c = self.cfg
        return (self.generation >= c.generations
                or (c.max_evaluations is not None and self.next_id >= c.max_evaluations)
                or (c.max_seconds is not None and self.elapsed >= c.max_seconds))

    def optimize(self) -> Study:
        for cb in self.callbacks:
            cb.on_study_start(self)
        while not self.done():
            self.step()
        for cb in self.callbacks:
            cb.on_study_end(self)
        return self

    def step(self) -> list[EvalOutcome]:
        """Run one generation: ask, evaluate (reusing results stored before a crash), tell, checkpoint.
        A full, read-only or failing disk stops the run with RunStoreError; the last checkpoint stays."""
        try:
            return self._step()
        except (OSError, sqlite3.OperationalError) as e:
            if is_disk_error(e):
                raise self._disk_error(f"{type(e).__name__}: {e}") from e
            raise

    def _disk_error(self, what: str) -> RunStoreError:
        state, _ = self.store.latest_checkpoint()
        last = f"checkpoint of generation {state['generation']}" if state else "no checkpoint yet"
        return RunStoreError(f"cannot write to the run directory {self.store.dir} ({what}); the run stopped. "
                             f"Its last {last} is intact: free disk space (or make it writable) and run "
                             f"`evofusion resume {self.store.dir}`")

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
        t0 = time.perf_counter()
        n = self.cfg.strategy.population
        if self.cfg.max_evaluations is not None:
            n = min(n, self.cfg.max_evaluations - self.next_id)
        proposals = self.strategy.ask(n)
        for cb in self.callbacks:
            cb.on_generation_start(self, self.generation, len(proposals))
        ids = list(range(self.next_id, self.next_id + len(proposals)))
        outcomes: dict[int, EvalOutcome] = {}
        jobs = []
        elites = self.store.evaluated_hashes()
        for cid, p in zip(ids, proposals, strict=True):
            row = self.store.candidate(cid)
            if row is not None and row["genome_hash"] == p.genome.hash and row["status"] != "PENDING":
                outcomes[cid] = EvalOutcome(cid, row["status"], row["objective_values"], row["reason"],
                                            row["weights_hash"], row["weights_file"], row["train"],
                                            row["seconds"] or 0.0)
                continue
            seed = candidate_seed(self.cfg.seed, cid)
            self.store.add_candidate(cid, self.generation, p.genome.to_dict(), p.genome.hash, list(p.parents),
                                     p.operator, p.operator_args, seed)
            jobs.append(EvalJob(cid, p.genome.to_dict(), seed, str(self.store.weights_path(cid)),
                                self.setup.context, self._parent_weights(p),
                                priority=self._priority(p.genome, elites)))
        run = getattr(self.executor, "imap", None) or self.executor.map  # imap: store each as it ends
        for out in run(self.evaluate_fn, jobs):
            if out.status == "FAILED" and out.reason.startswith(DISK_FAILURE):
                raise self._disk_error(out.reason)  # not stored: the candidate runs again on resume
            self.store.finish_candidate(out.candidate_id, out.status, out.values, out.reason, out.weights_hash,
                                        out.weights_file, out.train, out.seconds)
            outcomes[out.candidate_id] = out
            for cb in self.callbacks:
                cb.on_candidate_end(self, out)
        ordered = [outcomes[cid] for cid in ids]
        self.strategy.tell([Result(o.candidate_id, p.genome, o.status, o.values, tuple(p.parents), o.reason)
                            for o, p in zip(ordered, proposals, strict=True)])
        self.next_id += len(proposals)
        self.elapsed += time.perf_counter() - t0
        state = {**self._state(), "db_digest": self.store.rows_digest(self.next_id)}
        self.store.write_checkpoint(self.generation + 1, state)
        self.store.backup(self.generation + 1)
        self.generation += 1
        for cb in self.callbacks:
            cb.on_generation_end(self, self.generation - 1, ordered)
        return ordered

    def _parent_weights(self, p: Proposal) -> str | None:
        if not self.cfg.inherit_weights or not p.parents:
            return None
        row = self.store.candidate(p.parents[0])
        return row["weights_file"] if row and row["weights_file"] and Path(row["weights_file"]).exists() else None

    # --- results -------------------------------------------------------------------------------
    def pareto_ids(self) -> list[int]:
        return pareto_ids(self.store, self.setup.objectives)

    def finalize(self, ids: Sequence[int] | None = None, log: Any = print) -> list[dict[str, Any]]:
        """Full-data KD fine-tune of the winners (default: ``final.top_k`` spread along the Pareto front),
        then validation and test accuracy. Test accuracy is reported, never used for selection."""
        if ids is None:
            ids = pick_winners(self.store, self.setup.objectives, self.cfg.final.top_k)
        arrays = load_arrays(self.setup.context.data_dir, self.setup.context.teacher_dir)
        f, d = self.cfg.final, self.cfg.distill
        tcfg = TrainConfig(epochs=f.epochs, data_fraction=f.data_fraction, batch_size=d.batch_size,
                           optimizer=d.optimizer, lr=f.lr or d.lr, weight_decay=d.weight_decay,
                           schedule=d.schedule, alpha=d.alpha, temperature=d.temperature, patience=f.patience,
                           augment=f.augment)
        done = {r["candidate_id"] for r in self.store.finals()}
        out = []
        for cid in ids:
            if cid in done:
                continue
            row = self.store.candidate(cid)
            genome = genome_from_dict(row["genome"])
            seed = candidate_seed(self.cfg.seed, 10_000_000 + cid)
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                model = build(genome)
            if row["weights_file"] and Path(row["weights_file"]).exists():
                model.load_state_dict(load_file(row["weights_file"]))
            model.to(resolve_device(self.cfg.device))
            t0 = time.perf_counter()
            rep = train(model, arrays["train_x"], arrays["train_y"], tcfg, teacher_logits=arrays.get("train_t"),
                        val=(arrays["val_x"], arrays["val_y"]), generator=torch.Generator().manual_seed(seed),
                        feature_kd=feature_kd_from_spec(self.setup.context.extra.get("feature_kd"),
                                                        spatial=f.augment == "none"))
            val_acc = evaluate_accuracy(model, arrays["val_x"], arrays["val_y"])
            test_acc = evaluate_accuracy(model, arrays["test_x"], arrays["test_y"])
            path = self.store.weights_path(cid, final=True)
            whash = save_weights(model.cpu(), path)
            values = dict(row["objective_values"], accuracy=val_acc)
            secs = time.perf_counter() - t0
            self.store.add_final(cid, val_acc, test_acc, values, str(path), whash, secs,
                                 {"steps": rep.steps, "epochs": rep.epochs, "stopped_early": rep.stopped_early})
            log(f"final fine-tune of candidate {cid}: val {val_acc:.4f} test {test_acc:.4f} "
                f"({int(values['params'])} params, {secs:.1f} s)")
            out.append({"candidate_id": cid, "val_accuracy": val_acc, "test_accuracy": test_acc})
        return out

    def close(self) -> None:
        self.executor.close()
        self.store.close()


def _failed_outcome(job: EvalJob, reason: str) -> EvalOutcome:
    return EvalOutcome(job.candidate_id, "FAILED", reason=reason)


def make_executor(cfg: SearchConfig, threads: int) -> Executor:
    """The configured executor with the run's reliability settings (timeout, retries, recycling)."""
    return EXECUTORS.create(cfg.executor, workers=cfg.workers, threads=threads, on_failure=_failed_outcome,
                            device=cfg.device, gpus=cfg.resources.gpus, gpu_memory_mb=cfg.resources.gpu_memory_mb,
                            cpus=cfg.resources.cpus, timeout=cfg.timeout, retries=cfg.retries,
                            recycle_after=cfg.recycle_after, address=cfg.address)


def consistent_checkpoint(store: RunStore) -> tuple[dict[str, Any] | None, list[str]]:
    """The newest valid checkpoint whose candidate rows the database reproduces (its ``db_digest``);
    a database that does not is replaced by its newest valid backup and the matching checkpoint used."""
    warnings = list(store.recovered)
    state, w = store.latest_checkpoint(store.restored_generation)
    warnings += w
    while state is not None and "db_digest" in state \
            and store.rows_digest(state["next_id"]) != state["db_digest"]:
        reason = (f"its candidate rows differ from the digest in checkpoint gen_{state['generation']:05d}.json "
                  "(a damaged row)")
        before = len(store.recovered)
        gen = store.restore_backup(reason)
        warnings += store.recovered[before:]
        state, w = store.latest_checkpoint(gen)
        warnings += w
    return state, warnings


def completed(store: RunStore, objectives: ObjectiveSet) -> list[dict[str, Any]]:
    rows = []
    for r in store.candidates("COMPLETE"):
        v = r["objective_values"]
        if all(isinstance(v.get(n), int | float) and math.isfinite(v[n]) for n in objectives.names):
            rows.append(r)
    return rows


def pareto_ids(store: RunStore, objectives: ObjectiveSet) -> list[int]:
    """Ids of the non-dominated COMPLETE candidates (duplicates of a genome counted once)."""
    rows, seen = [], set()
    for r in completed(store, objectives):
        if r["genome_hash"] not in seen:
            seen.add(r["genome_hash"])
            rows.append(r)
    if not rows:
        return []
    F = objectives.F([r["objective_values"] for r in rows])
    return sorted(rows[i]["id"] for i in pareto_front(F))


def pick_winners(store: RunStore, objectives: ObjectiveSet, k: int) -> list[int]:
    """Up to k Pareto candidates: the most accurate first, then spread evenly along the front."""
    ids = pareto_ids(store, objectives)
    if k <= 0 or not ids:
        return []
    rows = sorted((store.candidate(i) for i in ids), key=lambda r: -r["objective_values"]["accuracy"])
    if len(rows) <= k:
        return [r["id"] for r in rows]
    picks = [rows[round(j * (len(rows) - 1) / max(1, k - 1))]["id"] for j in range(k)]
    return list(dict.fromkeys(picks))
