"""GA / NSGA-II pruning with knowledge distillation in the loop: the "winning ticket".

After "Knowledge Distillation with Genetic Architecture Search for Tiny IoT Devices" (the KD + GA
pruning seed): a binary keep/remove chromosome over a trained CNN's filters, each candidate scored by
its accuracy after a short distillation from the unpruned teacher, elitist evolution, and a full KD
fine-tune of the winner. ``PruneStudy`` is the project's ``Study`` (ask -> evaluate -> store -> tell
-> checkpoint, resumable, any executor) with a pruning search space and evaluator.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from evofusion.config import SearchConfig, validate_config
from evofusion.data import DataSplits, check_splits, check_teacher_outputs, load_dataset
from evofusion.distill.loop import TrainConfig
from evofusion.engine.callbacks import Callback
from evofusion.engine.context import EvalContext, cache_root, load_arrays, prepare_arrays
from evofusion.engine.executors import Executor
from evofusion.engine.study import Study, StudySetup, completed, data_meta
from evofusion.errors import ConfigError, RunStoreError, TeacherError
from evofusion.genome.prune import PruneGenome
from evofusion.genome.prune_space import PruneSpace
from evofusion.objectives.base import STATIC_METRICS, ObjectiveSet
from evofusion.objectives.metrics import count_params, measure_latency_ms
from evofusion.prune.budget import BudgetFill, largest_fitting
from evofusion.prune.config import PruneConfig, validate_prune_config
from evofusion.prune.evaluate import evaluate_prune, pruning_metrics
from evofusion.prune.graph import group_importance, prunable_groups
from evofusion.prune.model import build_pruned, input_shape
from evofusion.prune.robust import noise_accuracy
from evofusion.store import RunStore
from evofusion.teachers import Teacher, TeacherCache
from evofusion.teachers.teacher import WEIGHTS_FILE


class ParamsFeasibility:
    """``SearchSpace.admissible`` for pruning genomes: the static hard constraints (params, FLOPs ...)
    hold for the pruned architecture. Cached by genome hash."""

    def __init__(self, objectives: ObjectiveSet, extra: dict[str, Any]):
        self.objectives, self.extra = objectives, extra
        self.cache: dict[str, bool] = {}

    def __call__(self, genome: Any) -> bool:
        if genome.hash not in self.cache:
            model = build_pruned(genome)
            needs_flops = any(c.name in ("flops", "macs") for c in self.objectives.constraints)
            values = pruning_metrics(model, genome, self.extra) if needs_flops else {"params": count_params(model)}
            self.cache[genome.hash] = self.objectives.static_violation(values) == 0
        return self.cache[genome.hash]


def _params_at(space: PruneSpace, keep: float, importance: bool, rng: np.random.Generator) -> float:
    t = space.template
    assert t is not None
    if importance:
        genome = space.from_masks(space.importance_masks(keep))
    else:  # expected count of a random mask: average a few draws
        return float(np.mean([count_params(build_pruned(dataclasses.replace(space, importance_fraction=0.0,
                                                                              keep_range=(keep, keep))
                                                        ._sample_valid(rng))) for _ in range(3)]))
    return float(count_params(build_pruned(genome)))


def keep_for_params(space: PruneSpace, target: float, importance: bool, seed: int = 0) -> float:
    """Kept channel share whose pruned network has about ``target`` parameters (bisection)."""
    rng = np.random.default_rng(seed)
    return largest_fitting(lambda k: _params_at(space, k, importance, rng) <= target, 1e-3, 1.0, 14)


def _objectives(cfg: SearchConfig, pcfg: PruneConfig) -> ObjectiveSet:
    constraints = list(cfg.objectives.constraints)
    if pcfg.target_params is not None:
        constraints.append(f"params <= {pcfg.target_params}")
    return ObjectiveSet.from_names(cfg.objectives.names, constraints, cfg.objectives.weights)


def setup_prune(cfg: SearchConfig, pcfg: PruneConfig, splits: DataSplits | None = None,
                log: Any = print) -> StudySetup:
    """Data, teacher, cached teacher outputs, channel groups, importance scores and the search space.

    Raises:
        TeacherError / DataError / ConfigError: bad input, named.
    """
    root = cache_root(cfg.cache_dir)
    if splits is None:
        splits = load_dataset(cfg.data.name, data_dir=cfg.data.data_dir, val_fraction=cfg.data.val_fraction,
                              seed=cfg.data.seed, limit=cfg.data.limit)
    check_splits(splits)
    if pcfg.teacher_module:  # a user's network by import path + its trained weights (safetensors)
        from evofusion.engine.study import teacher_from_module

        teacher = teacher_from_module(pcfg.teacher_module, pcfg.teacher)
        meta = {**teacher.meta, "arch": pcfg.teacher_module, "width": 1.0, "in_channels": splits.in_channels,
                "input_size": splits.input_size}
        weights_file = Path(pcfg.teacher).resolve()
    else:
        tdir = Path(pcfg.teacher)
        if not tdir.is_dir():
            raise TeacherError(f"--teacher: {tdir} is not a teacher directory (teacher.json + {WEIGHTS_FILE}, "
                               "e.g. from `evofusion teacher train`), nor weights of a --teacher-module network")
        teacher = Teacher.from_dir(tdir)
        meta = dict(teacher.meta)
        weights_file = (tdir / WEIGHTS_FILE).resolve()
    model = teacher.module
    assert model is not None
    check_teacher_outputs(teacher, splits)
    cached = TeacherCache(root / "teachers").get(teacher, splits)
    data_dir = prepare_arrays(splits, root)
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    if (meta.get("in_channels"), meta.get("input_size")) != (splits.in_channels, splits.input_size):
        raise TeacherError(f"--teacher: the teacher takes {meta.get('in_channels')}x{meta.get('input_size')} "
                           f"inputs, data '{splits.name}' has {splits.in_channels}x{splits.input_size}")
    groups = prunable_groups(model, shape, splits.num_classes)
    template = PruneGenome(teacher=teacher.weights_hash[:16], arch=meta["arch"], width=float(meta.get("width", 1.0)),
                           in_channels=splits.in_channels, num_classes=splits.num_classes,
                           input_size=splits.input_size, encoding=pcfg.encoding, levels=pcfg.levels,
                           groups=tuple(g.size for g in groups),
                           genes=(tuple([1] * PruneGenome.gene_count(pcfg.encoding, [g.size for g in groups],
                                                                     pcfg.levels))
                                  if pcfg.encoding != "layer" else tuple([pcfg.levels] * len(groups))))
    from evofusion.engine.evaluator import static_metrics

    tm = static_metrics(model, shape)
    extra: dict[str, Any] = {"teacher_weights": str(weights_file), "teacher_params": tm["params"],
                             "teacher_flops": tm["flops"], "val_limit": pcfg.val_limit,
                             **({"save_optimizer": True} if cfg.scheduler else {})}
    method = "l1" if pcfg.init == "random" else pcfg.init
    batches = []
    if method == "taylor":
        x, y = splits.train.tensors()
        batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 512, 64)]
    scores = group_importance(model, groups, shape, method, batches)
    objectives = _objectives(cfg, pcfg)
    space = PruneSpace(template=template, scores=tuple(tuple(float(v) for v in s) for s in scores),
                       importance_fraction=0.0 if pcfg.init == "random" else pcfg.importance_fraction,
                       in_channels=splits.in_channels, input_size=splits.input_size, num_classes=splits.num_classes)
    if pcfg.keep_range is not None:
        space = dataclasses.replace(space, keep_range=tuple(pcfg.keep_range))
    elif pcfg.target_params is not None:
        k_imp = keep_for_params(space, pcfg.target_params, True)
        k_rand = keep_for_params(space, pcfg.target_params, False)
        space = dataclasses.replace(space, keep_range=(max(1e-3, 0.8 * min(k_imp, k_rand)),
                                                       min(1.0, 1.05 * max(k_imp, k_rand))))
    if pcfg.encoding == "layer":
        space = dataclasses.replace(space, shape_sigma=pcfg.shape_sigma, tilt_range=tuple(pcfg.tilt_range))
    if pcfg.fills_budget:
        assert pcfg.target_params is not None
        space = dataclasses.replace(space, repair=BudgetFill(pcfg.target_params))
    if any(c.name in STATIC_METRICS for c in objectives.constraints):
        space = dataclasses.replace(space, admissible=ParamsFeasibility(objectives, extra))
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    train_cfg = {k: v for k, v in cfg.distill.model_dump().items() if k in known}
    train_cfg["eval_every"] = pcfg.eval_every
    threads = cfg.threads or (max(1, torch.get_num_threads() // cfg.workers) if cfg.executor == "process"
                              else torch.get_num_threads())
    ctx = EvalContext(data_dir=str(data_dir), teacher_dir=str(cached.dir), train=train_cfg,
                      objectives=tuple(objectives.names), constraints=tuple(f"{c.name} {c.op} {c.value:g}"
                                                                           for c in objectives.constraints),
                      latency_threads=cfg.objectives.latency_threads, threads=threads, inherit_weights=False,
                      device=cfg.device, extra=extra,
                      custom_objectives={k: v.model_dump() for k, v in cfg.objectives.custom.items()})
    val_logits, test_logits = cached.logits("val"), cached.logits("test")
    info = {"name": teacher.name, "weights_hash": teacher.weights_hash, "cache": str(cached.dir),
            **meta, "dir": str(Path(pcfg.teacher).resolve()), "params": tm["params"], "flops": tm["flops"],
            "val_accuracy": float((val_logits.argmax(1) == torch.as_tensor(splits.val.y)).float().mean()),
            "test_accuracy": float((test_logits.argmax(1) == torch.as_tensor(splits.test.y)).float().mean())
            if len(splits.test) else None,
            "groups": [{"root": g.root, "size": g.size, "members": list(g.members)} for g in groups],
            "keep_range": list(space.keep_range), "fill_budget": pcfg.fills_budget}
    log(f"teacher {meta['arch']} (width {meta.get('width', 1.0)}): {int(tm['params'])} params, "
        f"{len(groups)} channel groups ({sum(template.groups)} channels), {len(template.genes)} genes "
        f"({pcfg.encoding}); keep range {space.keep_range[0]:.3f}-{space.keep_range[1]:.3f}"
        + (f"; every candidate scaled up to {pcfg.target_params} params (budget fill)" if pcfg.fills_budget else ""))
    return StudySetup(splits, teacher, ctx, space, objectives, info)


def ticket_verdict(report: dict[str, Any], max_drop: float) -> dict[str, Any]:
    """Whether the fine-tuned ticket is a winner: within ``max_drop`` of the teacher's test accuracy
    (a ticket far below it is reported as such, never as a winner), with the failed-candidate count."""
    t_acc, k_acc = report["teacher"].get("test_accuracy"), report["ticket"]["test_accuracy"]
    drop = None if t_acc is None or k_acc is None else float(t_acc) - float(k_acc)
    winner = drop is None or drop <= max_drop
    text = ("winning ticket" if winner else
            f"no winning ticket: the best candidate is {drop * 100:.1f} pp below the teacher (more than "
            f"max_drop {max_drop * 100:g} pp); more generations, a larger --target-params or longer fine-tunes")
    if report.get("failed"):
        text += f"; {report['failed']} of {report['evaluated']} candidates FAILED (see `evofusion show`)"
    return {"winner": winner, "drop": drop, "max_drop": max_drop, "text": text}


class PruneStudy(Study):
    """A pruning search run. ``PruneStudy.create(search_cfg, prune_cfg, run_dir)`` or ``.resume(run_dir)``;
    ``optimize()`` runs the search, ``finish()`` fine-tunes the winning ticket and measures it."""

    kind = "prune"
    evaluate_fn = staticmethod(evaluate_prune)

    def __init__(self, cfg: SearchConfig, pcfg: PruneConfig, store: RunStore, setup: StudySetup,
                 callbacks: Sequence[Callback] = (), executor: Executor | None = None):
        self.pcfg = pcfg
        super().__init__(cfg, store, setup, callbacks, executor)

    @classmethod
    def create(cls, config: SearchConfig | dict, run_dir: str | Path, *, prune: PruneConfig | dict | None = None,
               splits: DataSplits | None = None, teacher: Any = None, callbacks: Sequence[Callback] = (),
               executor: Executor | None = None, log: Any = print) -> PruneStudy:
        cfg = config if isinstance(config, SearchConfig) else validate_config(config)
        if prune is None:
            raise ConfigError("prune", "a pruning run needs prune settings (at least prune.teacher)")
        pcfg = prune if isinstance(prune, PruneConfig) else validate_prune_config(prune)
        cls._refuse_existing(run_dir)  # before any set-up work
        setup = setup_prune(cfg, pcfg, splits, log)
        store = cls._new_store(run_dir, cfg.to_dict(), data_meta(setup.splits), setup.teacher_info,
                               prune=pcfg.to_dict())
        return cls(cfg, pcfg, store, setup, callbacks, executor)

    @classmethod
    def resume(cls, run_dir: str | Path, *, overrides: dict[str, Any] | None = None,  # type: ignore[override]
               allow_config_change: bool = False, splits: DataSplits | None = None, teacher: Any = None,
               callbacks: Sequence[Callback] = (), executor: Executor | None = None, log: Any = print
               ) -> PruneStudy:
        store = cls._reopen(run_dir)
        try:
            cfg, change = cls._resume_config(store, overrides, allow_config_change, validate_config)
            stored = dict(store.get_meta("prune"))
            # a run created before the budget fill and shaped sampling existed resumes as it ran
            for key, before in (("fill_budget", False), ("shape_sigma", 0.0), ("tilt_range", (0.0, 0.0))):
                stored.setdefault(key, before)
            pcfg = validate_prune_config(stored)
            setup = setup_prune(cfg, pcfg, splits, log)
            cls._check_data(store, setup.splits.fingerprint())
            study = cls(cfg, pcfg, store, setup, callbacks, executor)
            study._restore(log)
            study._commit_config(change)
            return study
        except BaseException:
            store.close()
            raise

    def _finalize(self, log: Any) -> dict[str, Any]:
        return self.finish(log=log)

    def result_text(self, result: dict[str, Any]) -> str:
        from evofusion.viz.prune_section import prune_markdown

        return prune_markdown(result)

    # --- the winning ticket --------------------------------------------------------------------
    def winning_ticket(self) -> int | None:
        """The candidate to fine-tune: with a parameter target, the most accurate feasible one; without,
        the most compressed one within ``tolerance`` of the most accurate (ties: fewer params, lower id)."""
        rows = [r for r in completed(self.store, self.setup.objectives)
                if math.isfinite(r["objective_values"].get("accuracy", math.nan))]
        if not rows:
            return None
        acc = {r["id"]: r["objective_values"]["accuracy"] for r in rows}
        if self.pcfg.target_params is not None:
            return min(rows, key=lambda r: (-acc[r["id"]], r["objective_values"]["params"], r["id"]))["id"]
        best = max(acc.values())
        near = [r for r in rows if acc[r["id"]] >= best - self.pcfg.tolerance]
        return min(near, key=lambda r: (r["objective_values"]["params"], -acc[r["id"]], r["id"]))["id"]

    def finish(self, log: Any = print) -> dict[str, Any]:
        """Full KD fine-tune of the winning ticket (skipped when already done), then test accuracy,
        latency and Gaussian-noise robustness of teacher and ticket; stored as meta ``prune_report``."""
        cid = self.winning_ticket()
        if cid is None:
            raise RunStoreError("no candidate completed: nothing to fine-tune (see the FAILED reasons with "
                                "`evofusion show`)")
        self.finalize([cid], log=log)
        final = next(r for r in self.store.finals() if r["candidate_id"] == cid)
        row = self.store.candidate(cid)
        assert row is not None
        genome = PruneGenome.from_dict(row["genome"])
        model = build_pruned(genome)
        model.load_state_dict(load_file(self.store.resolve(final["weights_file"])))
        model.eval()
        teacher = self.setup.teacher.module
        shape = input_shape(genome)
        arrays = load_arrays(self.setup.context.data_dir, self.setup.context.teacher_dir)
        x, y = arrays["test_x"], arrays["test_y"]
        levels = list(self.pcfg.noise_levels)
        t_info = self.setup.teacher_info
        t_lat = measure_latency_ms(teacher, shape, threads=self.cfg.objectives.latency_threads)["latency_ms"]
        s_lat = measure_latency_ms(model, shape, threads=self.cfg.objectives.latency_threads)["latency_ms"]
        v = row["objective_values"]
        report = {
            "candidate_id": cid,
            "genome_hash": row["genome_hash"],
            "encoding": genome.encoding,
            "target_params": self.pcfg.target_params,
            "teacher": {"arch": t_info.get("arch"), "width": t_info.get("width"), "params": t_info["params"],
                        "flops": t_info["flops"], "test_accuracy": t_info.get("test_accuracy"),
                        "latency_ms": float(t_lat)},
            "ticket": {"params": v["params"], "flops": v["flops"], "compression": v["compression"],
                       "flops_reduction": v["flops_reduction"], "val_accuracy": final["val_accuracy"],
                       "test_accuracy": final["test_accuracy"], "latency_ms": float(s_lat),
                       "kept": [int(m.sum()) for m in genome.keep_masks()], "groups": list(genome.groups),
                       "roots": [g["root"] for g in t_info.get("groups", [])]},
            "robustness": {"sigma": levels,
                           "teacher": noise_accuracy(teacher, x, y, levels, self.pcfg.noise_seed),
                           "ticket": noise_accuracy(model, x, y, levels, self.pcfg.noise_seed)},
            "evaluated": self.store.count(),
            "failed": len(self.store.candidates("FAILED")),
            "finished_at": time.time(),
        }
        report["verdict"] = ticket_verdict(report, self.pcfg.max_drop)
        self.store.set_meta("prune_report", report)
        return report
