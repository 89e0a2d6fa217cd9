"""Distil one given genome (no search): the ``evofusion distill`` command and its Python API.

Uses the search config's ``data``, ``teacher`` and ``distill`` sections (so feature KD, several
teachers and the text teacher work exactly as in a search), the same teacher-output caches and the
one training loop, and reports validation and test accuracy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from evofusion.config import SearchConfig, validate_config
from evofusion.data import DataSplits
from evofusion.distill.loop import TrainConfig, evaluate_accuracy, train
from evofusion.engine.context import load_arrays, resolve_device
from evofusion.engine.evaluator import save_weights, static_metrics
from evofusion.engine.feature_kd import feature_kd_from_spec
from evofusion.engine.study import setup_study
from evofusion.errors import ConfigError
from evofusion.genome import StudentGenome, build
from evofusion.store.atomic import atomic_write_json


def distill_genome(genome: StudentGenome, config: SearchConfig | dict[str, Any], *, seed: int = 0,
                   out_dir: str | Path | None = None, splits: DataSplits | None = None, teacher: Any = None,
                   log: Any = print) -> dict[str, Any]:
    """Train ``genome`` with the config's distillation recipe; return accuracies, timings, loss terms.

    With ``out_dir`` the student is written as ``genome.json`` + ``weights.safetensors`` +
    ``card.json`` (loadable with ``evofusion.export.load_student``); adapters are not part of it.

    Raises:
        ConfigError / DataError / TeacherError: naming what to fix (e.g. a genome whose input shape
            does not fit the data).
    """
    cfg = config if isinstance(config, SearchConfig) else validate_config(config)
    setup = setup_study(cfg, splits, teacher, log)
    student = genome.to_student()
    s = setup.splits
    if (student.in_channels, student.input_size, student.num_classes) != (s.in_channels, s.input_size, s.num_classes):
        raise ConfigError("genome", f"expects inputs ({student.in_channels}, {student.input_size}) and "
                          f"{student.num_classes} classes; {s.name} has ({s.in_channels}, {s.input_size}) and "
                          f"{s.num_classes}: set in_channels / input_size / num_classes in the genome")
    ctx = setup.context
    if ctx.threads:  # as in a search evaluation (config key `threads`; 0 = all cores)
        torch.set_num_threads(ctx.threads)
    arrays = load_arrays(ctx.data_dir, ctx.teacher_dir)
    model = build(genome, seed=seed)
    model.to(resolve_device(cfg.device))
    fkd = feature_kd_from_spec(ctx.extra.get("feature_kd"))
    t0 = time.perf_counter()
    tcfg = TrainConfig(**ctx.train)
    last = [t0]

    def progress(step: int, acc: float) -> None:  # at each validation, at most one line per 10 s
        if time.perf_counter() - last[0] >= 10:
            last[0] = time.perf_counter()
            log(f"  step {step}: val acc {acc:.4f}, {last[0] - t0:.0f} s")

    rep = train(model, arrays["train_x"], arrays["train_y"], tcfg,
                teacher_logits=arrays.get("train_t"), val=(arrays["val_x"], arrays["val_y"]),
                generator=torch.Generator().manual_seed(seed), feature_kd=fkd, on_eval=progress)
    result: dict[str, Any] = {
        "val_accuracy": evaluate_accuracy(model, arrays["val_x"], arrays["val_y"]),
        "test_accuracy": evaluate_accuracy(model, arrays["test_x"], arrays["test_y"]),
        "train_seconds": rep.seconds, "seconds": time.perf_counter() - t0, "steps": rep.steps,
        "feature_kd": bool(fkd), "loss_terms": dict(fkd.last) if fkd else {},
        "adapter_params": sum(p.numel() for p in fkd.adapters.parameters()) if fkd else 0,
        **static_metrics(model.cpu(), (student.in_channels, student.input_size, student.input_size)),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result["weights_hash"] = save_weights(model, out / "weights.safetensors")
        atomic_write_json(out / "genome.json", genome.to_dict())
        atomic_write_json(out / "card.json", {**result, "config": cfg.to_dict(), "seed": seed,
                                              "teacher": setup.teacher_info})
        result["out_dir"] = str(out)
    log(f"distilled {result['steps']} steps in {result['seconds']:.1f} s: val accuracy {result['val_accuracy']:.4f}, "
        f"test accuracy {result['test_accuracy']:.4f}")
    return result
