"""A user's own evaluation of a candidate, in place of the built-in KD loop.

``evaluate_fn: "mypkg.train:fit"`` in a search config names a callable that trains the freshly built
(or inherited) student and scores it::

    def fit(model, data, *, steps, epochs, seed, device) -> dict[str, float]:
        # data: train_x, train_y, val_x, val_y tensors (normalized like the teacher's inputs) and,
        # when the run has a teacher, train_t: its cached logits aligned with train_x
        ...  # train `model` in place with any loop, loss, optimizer
        return {"accuracy": val_accuracy}  # plus any other metric the run names

EvoFusion does the rest as for any candidate: the static metrics (params, FLOPs, size) and hard
constraints before the call, latency and user objectives after it, the weights file, the store,
resume and every executor (the path is imported in each worker). ``accuracy`` must be in the result
(validation accuracy: selection never sees test); a callable that raises or returns anything else
makes that candidate FAILED with the reason, never the run.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from evofusion.errors import CandidateFailed
from evofusion.registry import import_callable


def resolve_evaluate_fn(path: str) -> Any:
    """The callable at ``"package.module:attribute"``; ConfigError (field ``evaluate_fn``) otherwise."""
    return import_callable(path, "evaluate_fn")


def run_user_evaluate(path: str, model: torch.nn.Module, arrays: dict[str, torch.Tensor], *, steps: int | None,
                      epochs: float | None, seed: int, device: torch.device) -> dict[str, float]:
    """Call the user's evaluate function and check its answer: a mapping of finite numbers with
    ``accuracy`` in [0, 1]. Raises CandidateFailed naming the function and what was wrong."""
    fn = resolve_evaluate_fn(path)
    data = {k: arrays[k] for k in ("train_x", "train_y", "val_x", "val_y", "train_t") if k in arrays}
    model.train()
    out = fn(model, data, steps=steps, epochs=epochs, seed=seed, device=device)
    model.eval()
    if not isinstance(out, dict):
        raise CandidateFailed(f"evaluate_fn {path} returned {type(out).__name__}, expected a dict of metrics")
    values: dict[str, float] = {}
    for k, v in out.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise CandidateFailed(f"evaluate_fn {path}: {k!r} is {v!r}, not a finite number")
        values[str(k)] = float(v)
    if "accuracy" not in values or not 0.0 <= values["accuracy"] <= 1.0:
        raise CandidateFailed(f"evaluate_fn {path} must return 'accuracy' in [0, 1] (validation accuracy), "
                              f"got {out.get('accuracy')!r}")
    return values
