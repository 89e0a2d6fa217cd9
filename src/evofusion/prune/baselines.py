"""Comparisons for a winning ticket at a matched parameter count: uniform L1-norm channel pruning,
random masks, and the ticket's own architecture trained from scratch, each with the same KD
fine-tune the ticket gets (``final_train_config``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from evofusion.config import SearchConfig
from evofusion.distill.loop import TrainConfig, evaluate_accuracy, train
from evofusion.genome.prune import PruneGenome
from evofusion.objectives.metrics import count_params
from evofusion.prune.budget import largest_fitting
from evofusion.prune.model import build_pruned

MaskFn = Callable[[float], list[np.ndarray]]


def final_train_config(cfg: SearchConfig) -> TrainConfig:
    """The full KD fine-tune ``Study.finalize`` gives a winner (``final`` + ``distill`` settings)."""
    f, d = cfg.final, cfg.distill
    return TrainConfig(epochs=f.epochs, data_fraction=f.data_fraction, batch_size=d.batch_size,
                       optimizer=d.optimizer, lr=f.lr or d.lr, weight_decay=d.weight_decay, schedule=d.schedule,
                       alpha=d.alpha, temperature=d.temperature, patience=f.patience, augment=f.augment)


def uniform_masks(scores: Sequence[Sequence[float]], ratio: float) -> list[np.ndarray]:
    """Keep the ``ratio`` share of every group (at least one channel), highest scores first
    (uniform L1-norm pruning when ``scores`` are L1 norms)."""
    out = []
    for s in scores:
        s = np.asarray(s, dtype=float)
        k = max(1, int(round(ratio * len(s))))
        keep = np.zeros(len(s), dtype=bool)
        keep[np.argsort(-s, kind="stable")[:k]] = True
        out.append(keep)
    return out


def tilted_masks(scores: Sequence[Sequence[float]], ratio: float, tilt: float) -> list[np.ndarray]:
    """Like ``uniform_masks`` but a group of size ``s`` keeps ``ratio * (s / smallest) ** -tilt`` of its
    channels (capped at all): the hand rule "thin layers keep more" (``tilt`` 0 = uniform)."""
    sizes = np.asarray([len(s) for s in scores], dtype=float)
    shares = np.minimum(1.0, ratio * (sizes / sizes.min()) ** -float(tilt))
    out = []
    for s, r in zip(scores, shares, strict=True):
        out += uniform_masks([s], float(r))
    return out


def random_masks(sizes: Sequence[int], ratio: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Keep ``ratio`` of every group's channels (at least one), chosen uniformly at random."""
    out = []
    for s in sizes:
        keep = np.zeros(s, dtype=bool)
        keep[rng.choice(s, size=max(1, int(round(ratio * s))), replace=False)] = True
        out.append(keep)
    return out


def channel_genome(template: PruneGenome, masks: Sequence[np.ndarray]) -> PruneGenome:
    """Per-channel-bit genome of ``masks`` over ``template``'s teacher and groups."""
    genes = tuple(int(b) for m in masks for b in m)
    return dataclasses.replace(template, encoding="channel", genes=genes)


def match_params(template: PruneGenome, make: MaskFn, target: float) -> tuple[float, PruneGenome]:
    """The largest uniform keep ratio whose pruned network has at most ``target`` parameters
    (bisection), with its genome."""
    keep = largest_fitting(lambda k: count_params(build_pruned(channel_genome(template, make(k)))) <= target,
                           1e-3, 1.0, 16)
    return keep, channel_genome(template, make(keep))


def kd_finetune(model: nn.Module, arrays: dict[str, torch.Tensor], tcfg: TrainConfig, seed: int,
                pre: TrainConfig | None = None, pre_val_limit: int | None = None) -> dict[str, Any]:
    """KD fine-tune from the cached teacher logits; val and test accuracy.

    ``pre`` (optional) runs first, scored on the first ``pre_val_limit`` validation examples: the
    search-time short fine-tune a winning ticket got, so a baseline gets the ticket's whole budget.
    """
    t0 = time.perf_counter()
    x, y, t = arrays["train_x"], arrays["train_y"], arrays.get("train_t")
    steps = 0
    g = torch.Generator().manual_seed(seed)
    if pre is not None:
        n = pre_val_limit or len(arrays["val_y"])
        steps += train(model, x, y, pre, teacher_logits=t, val=(arrays["val_x"][:n], arrays["val_y"][:n]),
                       generator=g).steps
    steps += train(model, x, y, tcfg, teacher_logits=t, val=(arrays["val_x"], arrays["val_y"]), generator=g).steps
    return {"val_accuracy": evaluate_accuracy(model, arrays["val_x"], arrays["val_y"]),
            "test_accuracy": evaluate_accuracy(model, arrays["test_x"], arrays["test_y"]),
            "params": count_params(model), "steps": steps, "seconds": time.perf_counter() - t0}
