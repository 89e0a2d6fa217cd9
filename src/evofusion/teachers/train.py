"""Training a zoo teacher with the project's one training loop, and the default teacher per data set."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from evofusion.data.base import DataSplits
from evofusion.errors import TeacherError
from evofusion.seeding import torch_seeded
from evofusion.teachers.teacher import save_teacher
from evofusion.teachers.zoo import build_teacher

# Measured recipes: (arch, width, epochs) that reach a useful teacher on CPU in minutes.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"arch": "small_cnn", "width": 1.0, "epochs": 8},
    "mnist": {"arch": "small_cnn", "width": 1.0, "epochs": 8},
    "digits": {"arch": "small_cnn", "width": 0.25, "epochs": 15},
    "cifar10": {"arch": "resnet18", "width": 0.25, "epochs": 15},
}


def default_teacher_for(data_name: str) -> dict[str, Any]:
    """The default teacher recipe ``{"arch", "width", "epochs"}`` for a data set name (case, ``_``
    versus ``-`` and ``cifar-10`` spellings are accepted).

    Raises:
        TeacherError: no default for this data set (the message lists the known ones).
    """
    name = data_name.lower().replace("_", "-")
    name = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist"}.get(name, name)
    if name not in _DEFAULTS:
        raise TeacherError(f"no default teacher for data set '{data_name}'; known: {', '.join(sorted(_DEFAULTS))}. "
                           "Pass arch=, width= and epochs= explicitly.")
    return dict(_DEFAULTS[name])


def train_teacher(
    arch: str,
    splits: DataSplits,
    epochs: int,
    out_dir: str | Path,
    width: float = 1.0,
    seed: int = 0,
    lr: float | None = None,
    batch_size: int = 128,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train zoo architecture ``arch`` on ``splits.train``, select on ``splits.val``, save to ``out_dir``.

    Initialization runs under ``torch.random.fork_rng`` seeded with ``seed``, and all training
    randomness comes from a generator seeded with ``seed``: the same seed gives the same teacher and
    the global RNG state is left untouched. Recipe: SGD (nesterov) with one-cycle schedule, peak ``lr``
    (default 0.1), random flips, hard labels only, best-val weights restored. Test accuracy is
    measured once, at the end, for reporting.

    Args:
        progress: called as ``progress(step, val_accuracy)`` after every validation evaluation.

    Returns:
        The metadata written to ``out_dir/teacher.json``: arch, width, in_channels, num_classes,
        input_size, data, data_fingerprint, epochs, seed, lr, batch_size, val_accuracy,
        test_accuracy, params, seconds, weights_hash, train_config.
    """
    if len(splits.train) == 0 or len(splits.val) == 0:
        raise TeacherError(f"train_teacher: data '{splits.name}' needs non-empty train and val splits, got "
                           f"{len(splits.train)} and {len(splits.val)} examples")
    # distill sits above teachers in the package order (it imports teachers), so import it late
    from evofusion.distill.loop import TrainConfig, evaluate_accuracy, train

    t0 = time.perf_counter()
    with torch_seeded(seed):
        model = build_teacher(arch, in_channels=splits.in_channels, num_classes=splits.num_classes,
                              input_size=splits.input_size, width=width)
    cfg = TrainConfig(epochs=epochs, optimizer="sgd", lr=0.1 if lr is None else lr, schedule="onecycle",
                      augment="flip", alpha=1.0, restore_best=True, batch_size=batch_size)
    x, y = splits.train.tensors()
    val = splits.val.tensors()
    report = train(model, x, y, cfg, val=val, generator=torch.Generator().manual_seed(seed), on_eval=progress)
    val_acc = evaluate_accuracy(model, *val)
    test_acc = evaluate_accuracy(model, *splits.test.tensors()) if len(splits.test) else None
    meta: dict[str, Any] = {
        "arch": arch,
        "width": width,
        "in_channels": splits.in_channels,
        "num_classes": splits.num_classes,
        "input_size": splits.input_size,
        "data": splits.name,
        "data_fingerprint": splits.fingerprint(),
        "mean": list(splits.mean),
        "std": list(splits.std),
        "epochs": epochs,
        "steps": report.steps,
        "seed": seed,
        "lr": cfg.lr,
        "batch_size": batch_size,
        "val_accuracy": val_acc,
        "test_accuracy": test_acc,
        "train_config": cfg.to_dict(),
    }
    meta["seconds"] = time.perf_counter() - t0
    return save_teacher(model, out_dir, meta)
