"""The evaluator: a picklable pure function of (job) -> outcome, so any executor can run it.

One evaluation builds the student from its genome, measures the static metrics (params, FLOPs,
size), rejects it as INFEASIBLE before any training when a static hard constraint fails, inherits
its parent's weights, distills it with the cached teacher outputs, measures validation accuracy
(and latency when asked) and saves its weights as safetensors. Anything that goes wrong (an
exception, a NaN loss, out of memory) becomes a FAILED outcome with its reason, never a crash.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from evofusion.distill.loop import TrainConfig, evaluate_accuracy, train
from evofusion.engine.context import EvalContext, load_arrays, resolve_device
from evofusion.engine.feature_kd import feature_kd_from_spec
from evofusion.engine.lamarck import optimizer_path, start_model
from evofusion.errors import CandidateFailed
from evofusion.genome import build, genome_from_dict
from evofusion.objectives.base import ObjectiveSet
from evofusion.objectives.custom import custom_values, declare, is_custom
from evofusion.objectives.edge import onnx_latency_ms
from evofusion.objectives.metrics import count_params, flops_and_macs, measure_latency_ms, size_bytes
from evofusion.registry import Registry
from evofusion.store.integrity import DISK_ERRNOS
from evofusion.store.weights import save_weights, state_hash  # noqa: F401 - re-exported

# how a candidate can be scored instead of trained: ``ctx.extra["scorer"] = {"name": ..., ...}`` names an
# object with ``setup(cfg, splits, space, log) -> (space, ref)`` (before the run exists) and
# ``score(ref, genome, arrays, device) -> (model, val_accuracy)``; the package's own is ``supernet``
# (evofusion.supernet.score), registered as an entry point (group ``evofusion.scorers``)
SCORERS: Registry[Any] = Registry("scorers")

DISK_FAILURE = "disk error: "  # reason prefix of an outcome that failed writing to a full/read-only disk


@dataclass(frozen=True)
class EvalJob:
    candidate_id: int
    genome: dict[str, Any]
    seed: int
    out_weights: str
    context: EvalContext
    parent_weights: str | None = None
    priority: float = 0.0  # executors run lower values first (re-evaluations, then cheap candidates)
    # how the candidate starts (engine/lamarck.py): "inherit" (overlap copy of the parent's weights),
    # "continue" (the same genome, trained further from its saved weights and optimizer state: a
    # multi-fidelity promotion) or "morph" (the exact function-preserving transfer of ``morph``)
    start: str = "inherit"
    parent_optimizer: str | None = None  # safetensors of the parent's optimizer state (optimizer_tensors)
    morph: dict[str, Any] | None = None  # {"operator", "info", "parent_genome"} for start == "morph"
    steps: int | None = None  # this job's step budget; None = the context's
    lineage_steps: int = 0  # steps the parent's lineage trained before this job (the store records the sum)
    rung: int = 0  # multi-fidelity rung this job is scored at

    def on_device(self, device: str) -> EvalJob:
        """This job on a worker slot's device (executors call it; cpu keeps an ``auto`` job on cpu)."""
        if device == self.context.device:
            return self
        return dataclasses.replace(self, context=dataclasses.replace(self.context, device=device))


@dataclass
class EvalOutcome:
    candidate_id: int
    status: str
    values: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    weights_hash: str | None = None
    weights_file: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def static_metrics(model: torch.nn.Module, input_shape: tuple[int, ...]) -> dict[str, float]:
    flops, macs = flops_and_macs(model, input_shape)
    return {"params": float(count_params(model)), "flops": float(flops), "macs": float(macs),
            "size_bytes": float(size_bytes(model))}


_TRAINING_PROGRESS: list[Callable[[int, int, int], None] | None] = [None]


def set_training_progress(fn: Callable[[int, int, int], None] | None) -> None:
    """``fn(candidate_id, step, total)`` after every training step of a candidate evaluated in this
    process (the serial executor; workers of other executors report per candidate only); None = off."""
    _TRAINING_PROGRESS[0] = fn


def _train_candidate(model: torch.nn.Module, arrays: dict[str, torch.Tensor], ctx: EvalContext,
                     generator: torch.Generator, steps: int | None = None,
                     optimizer_state: dict[str, torch.Tensor] | None = None, candidate_id: int = -1) -> dict[str, Any]:
    cfg = TrainConfig(**{**ctx.train, **({"steps": steps} if steps is not None else {})})
    fn = _TRAINING_PROGRESS[0]
    report = train(model, arrays["train_x"], arrays["train_y"], cfg, teacher_logits=arrays.get("train_t"),
                   val=(arrays["val_x"], arrays["val_y"]), generator=generator,
                   feature_kd=feature_kd_from_spec(ctx.extra.get("feature_kd")), optimizer_state=optimizer_state,
                   on_step=None if fn is None else (lambda s, t: fn(candidate_id, s, t)))
    return {"steps": report.steps, "epochs": report.epochs, "seconds": report.seconds,
            "stopped_early": report.stopped_early, "samples_seen": report.samples_seen,
            "curve": report.curve, "optimizer_state": report.optimizer_state}


def evaluate(job: EvalJob) -> EvalOutcome:
    """Evaluate one candidate; never raises for a candidate's own failure."""
    t0 = time.perf_counter()
    ctx = job.context
    try:
        if ctx.threads:
            torch.set_num_threads(ctx.threads)
        genome = genome_from_dict(job.genome)
        model = build(genome, seed=job.seed)
        student = genome.to_student()
        shape = (student.in_channels, student.input_size, student.input_size)
        values = static_metrics(model, shape)
        declare(ctx.custom_objectives)  # user objectives by import path, in whichever worker this is
        objectives = ObjectiveSet.from_names(list(ctx.objectives), list(ctx.constraints))
        if objectives.static_violation(values) > 0:
            return infeasible_outcome(job, values, objectives, t0)
        info: dict[str, Any] = {}
        arrays = load_arrays(ctx.data_dir, ctx.teacher_dir)
        device = resolve_device(ctx.device)
        if ctx.extra.get("scorer"):  # scored, not trained (e.g. from a supernet's shared weights)
            sc = ctx.extra["scorer"]
            t1 = time.perf_counter()
            model, values["accuracy"] = SCORERS.get(sc["name"]).score(sc, genome, arrays, device)
            info.update(steps=0, seconds=time.perf_counter() - t1, scorer=sc["name"], rung=0, steps_total=0)
            return finish_candidate(job, model, shape, values, info, objectives, t0)
        model, opt_state = start_model(job, genome, model, info)
        gen = torch.Generator().manual_seed(job.seed)
        model.to(device)
        if ctx.extra.get("evaluate_fn"):  # the user's own training and scoring (engine/user_evaluate.py)
            from evofusion.engine.user_evaluate import run_user_evaluate

            steps = job.steps if job.steps is not None else ctx.train.get("steps")
            t1 = time.perf_counter()
            values.update(run_user_evaluate(ctx.extra["evaluate_fn"], model, arrays, steps=steps,
                                            epochs=ctx.train.get("epochs"), seed=job.seed, device=device))
            info.update(steps=int(steps or 0), seconds=time.perf_counter() - t1, evaluate_fn=ctx.extra["evaluate_fn"])
        else:
            info.update(_train_candidate(model, arrays, ctx, gen, job.steps, opt_state, job.candidate_id))
            values["accuracy"] = evaluate_accuracy(model, arrays["val_x"], arrays["val_y"])
        info["rung"], info["steps_total"] = job.rung, job.lineage_steps + int(info["steps"])
        return finish_candidate(job, model, shape, values, info, objectives, t0)
    except Exception as e:  # a candidate's crash is data, not a crashed run
        return failed_outcome(job, e, t0)


def infeasible_outcome(job: EvalJob, values: dict[str, float], objectives: ObjectiveSet,
                       t0: float) -> EvalOutcome:
    """INFEASIBLE before training: the static metrics already break a hard constraint."""
    bad = [f"{c.name} {c.op} {c.value:g} (is {values[c.name]:g})" for c in objectives.constraints
           if c.name in values and c.violation(values) > 0]
    return EvalOutcome(job.candidate_id, "INFEASIBLE", values, reason="violates " + "; ".join(bad),
                       seconds=time.perf_counter() - t0)


def finish_candidate(job: EvalJob, model: torch.nn.Module, shape: tuple[int, ...], values: dict[str, float],
                     info: dict[str, Any], objectives: ObjectiveSet, t0: float) -> EvalOutcome:
    """The end every evaluator shares: latency objectives, the finiteness check, the weights file and
    the COMPLETE / INFEASIBLE verdict. ``model`` is trained; ``values`` holds the other objectives."""
    ctx = job.context
    model.cpu()
    wanted = [*ctx.objectives, *(c.name for c in objectives.constraints)]
    if any(is_custom(n) for n in wanted):
        arrays = load_arrays(ctx.data_dir, ctx.teacher_dir)
        values.update(custom_values(wanted, model, arrays["val_x"], arrays["val_y"]))
    if ctx.measure_latency or "latency_ms" in ctx.objectives:
        lat = measure_latency_ms(model, shape, threads=ctx.latency_threads)
        values["latency_ms"] = float(lat["latency_ms"])
        info["latency"] = lat
    if "latency_ort_ms" in ctx.objectives or any(c.name == "latency_ort_ms" for c in objectives.constraints):
        lat = onnx_latency_ms(model, shape, threads=ctx.latency_threads)  # temporary ONNX file
        values["latency_ort_ms"] = float(lat["latency_ms"])
        info["latency_ort"] = lat
    if not all(math.isfinite(v) for v in values.values()):
        raise CandidateFailed(f"non-finite objective values {values}")
    whash = save_weights(model, job.out_weights)
    opt_state = info.pop("optimizer_state", None)
    if opt_state and ctx.extra.get("save_optimizer"):
        save_weights(opt_state, optimizer_path(job.out_weights))
    status = "COMPLETE" if objectives.feasible(values) else "INFEASIBLE"
    return EvalOutcome(job.candidate_id, status, values, weights_hash=whash, weights_file=job.out_weights,
                       train=info, seconds=time.perf_counter() - t0)


def failed_outcome(job: EvalJob, e: BaseException, t0: float) -> EvalOutcome:
    """A candidate's exception as a FAILED outcome with its reason (out of memory and a full or
    read-only disk are recognised; the Study stops the run on the latter)."""
    if isinstance(e, CandidateFailed):
        reason = str(e)
    elif isinstance(e, MemoryError | torch.OutOfMemoryError):
        reason = f"out of memory: {e}"
    elif isinstance(e, OSError):
        # a full or read-only disk is the run's problem, not the candidate's: the Study stops on it
        reason = f"{DISK_FAILURE if e.errno in DISK_ERRNOS else ''}{type(e).__name__}: {e}"
    elif isinstance(e, RuntimeError) and "allocate" in str(e) and "memory" in str(e):
        # torch's CPU allocator raises RuntimeError("... can't allocate memory ...") under a memory limit
        reason = f"out of memory: {e}"
    else:
        reason = f"{type(e).__name__}: {traceback.format_exception_only(type(e), e)[-1].strip()}"
    return EvalOutcome(job.candidate_id, "FAILED", reason=reason[:500], seconds=time.perf_counter() - t0)
