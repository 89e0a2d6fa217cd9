"""Evaluate one pruning candidate: prune the teacher, KD fine-tune briefly, measure.

The KD + GA pruning seed scores every pruned candidate by its accuracy *after* a short distillation
from the unpruned teacher. This evaluator is the Study's per-candidate function for pruning genomes
(``PruneStudy.evaluate_fn``), with the same contract as ``evofusion.engine.evaluator.evaluate``: a
picklable pure function of the job, every failure returned as a FAILED outcome. A candidate starts
from the teacher's trained weights (the surviving channels keep them), never from a parent's.

``job.context.extra`` carries ``teacher_weights`` (path of the teacher's safetensors),
``teacher_params``, ``teacher_flops`` and optionally ``val_limit`` (use only the first N validation
examples to score candidates during the search).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from evofusion.distill.loop import TrainConfig, evaluate_accuracy, train
from evofusion.engine.context import load_arrays, resolve_device
from evofusion.engine.evaluator import (
    EvalJob,
    EvalOutcome,
    failed_outcome,
    finish_candidate,
    infeasible_outcome,
    static_metrics,
)
from evofusion.engine.lamarck import start_model
from evofusion.errors import CandidateFailed
from evofusion.genome.io import genome_from_dict
from evofusion.genome.prune import PruneGenome
from evofusion.objectives.base import ObjectiveSet
from evofusion.objectives.custom import declare
from evofusion.prune.graph import group_importance, rankings
from evofusion.prune.model import build_pruned, groups_of, input_shape, teacher_arch


@functools.lru_cache(maxsize=4)
def teacher_state(path: str) -> dict[str, torch.Tensor]:
    """The teacher's weights, read once per process."""
    return load_file(path)


_RANKINGS: dict[tuple[str, str], list[np.ndarray]] = {}


def l1_rankings(genome: PruneGenome, weights_path: str) -> list[np.ndarray]:
    """Channel order of every group by the teacher's L1 importance (cached per process): decides
    which channels a block or layer gene keeps."""
    key = (weights_path, genome.arch + str(genome.width) + str(genome.groups))
    if key not in _RANKINGS:
        model = teacher_arch(genome)
        model.load_state_dict(teacher_state(weights_path))
        _RANKINGS[key] = rankings(group_importance(model, groups_of(model, genome), input_shape(genome), "l1"))
    return _RANKINGS[key]


def pruned_from_teacher(genome: PruneGenome, weights_path: str) -> torch.nn.Module:
    """The pruned student with the teacher's surviving weights."""
    ranks = None if genome.encoding == "channel" else l1_rankings(genome, weights_path)
    return build_pruned(genome, teacher_state(weights_path), ranks)


def pruning_metrics(model: torch.nn.Module, genome: PruneGenome, extra: dict[str, Any]) -> dict[str, float]:
    """params, flops, macs, size_bytes, compression (share of the teacher's parameters removed) and
    flops_reduction (share of its FLOPs removed)."""
    values = static_metrics(model, input_shape(genome))
    values["compression"] = 1.0 - values["params"] / float(extra["teacher_params"])
    values["flops_reduction"] = 1.0 - values["flops"] / float(extra["teacher_flops"])
    values["kept_channels"] = float(sum(int(m.sum()) for m in genome.keep_masks()))
    return values


def evaluate_prune(job: EvalJob) -> EvalOutcome:
    """Prune, KD fine-tune with the context's (short) budget and early stopping, measure; never
    raises for a candidate's own failure."""
    t0 = time.perf_counter()
    ctx = job.context
    try:
        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        genome = genome_from_dict(job.genome)
        if not isinstance(genome, PruneGenome):
            raise CandidateFailed(f"evaluate_prune needs a pruning genome, got kind {genome.kind!r}")
        model = pruned_from_teacher(genome, ctx.extra["teacher_weights"])
        values = pruning_metrics(model, genome, ctx.extra)
        declare(ctx.custom_objectives)  # user objectives by import path, in whichever worker this is
        objectives = ObjectiveSet.from_names(list(ctx.objectives), list(ctx.constraints))
        if objectives.static_violation(values) > 0:
            return infeasible_outcome(job, values, objectives, t0)
        arrays = load_arrays(ctx.data_dir, ctx.teacher_dir)
        n_val = ctx.extra.get("val_limit") or len(arrays["val_y"])
        val = (arrays["val_x"][:n_val], arrays["val_y"][:n_val])
        gen = torch.Generator().manual_seed(job.seed)
        info: dict[str, Any] = {}
        # a multi-fidelity promotion continues its own row's weights and optimizer state (never pruned
        # again from the teacher); every other job starts from the teacher's surviving weights, since a
        # pruning context does not inherit weights
        model, opt_state = start_model(job, genome, model, info)
        model.to(resolve_device(ctx.device))
        tcfg = {**ctx.train, **({"steps": job.steps} if job.steps is not None else {})}
        if tcfg.get("steps") != 0:
            rep = train(model, arrays["train_x"], arrays["train_y"], TrainConfig(**tcfg),
                        teacher_logits=arrays.get("train_t"), val=val, generator=gen, optimizer_state=opt_state)
            info.update(steps=rep.steps, epochs=rep.epochs, seconds=rep.seconds,
                        stopped_early=rep.stopped_early, samples_seen=rep.samples_seen, curve=rep.curve,
                        optimizer_state=rep.optimizer_state)
        info["rung"], info["steps_total"] = job.rung, job.lineage_steps + int(info.get("steps", 0))
        values["accuracy"] = evaluate_accuracy(model, *val)
        return finish_candidate(job, model, input_shape(genome), values, info, objectives, t0)
    except Exception as e:  # a candidate's crash is data, not a crashed run
        return failed_outcome(job, e, t0)
