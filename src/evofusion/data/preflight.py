"""Checks run before a search starts, so a bad data set or teacher fails in seconds, not generations.

Every check raises with a message that names the problem and says what to fix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from evofusion.data.base import DataSplits
from evofusion.errors import DataError, TeacherError

__all__ = ["check_splits", "check_teacher_outputs"]

_SPLITS = ("train", "val", "test")


def check_splits(splits: DataSplits) -> None:
    """Reject splits a search cannot use.

    Raises:
        DataError: fewer than 2 classes; a split whose ``x`` is not 4-D ``(N, C, H, W)``, whose ``x``
            and ``y`` lengths differ, that is empty, whose image shape differs from train's, whose
            labels are not integers or fall outside ``[0, num_classes)``, or whose inputs hold NaN or
            infinite values.
    """
    if splits.num_classes < 2:
        raise DataError(
            f"data set '{splits.name}' has num_classes={splits.num_classes}; classification needs at "
            "least 2 classes (check the labels or the num_classes argument)"
        )
    ref_shape: tuple[int, ...] | None = None
    for which in _SPLITS:
        part = getattr(splits, which)
        x, y = np.asarray(part.x), np.asarray(part.y)
        if x.ndim != 4:
            raise DataError(
                f"{which} split: inputs have shape {x.shape}, expected 4-D (N, C, H, W); add a channel "
                "axis to grey images (x[:, None])"
            )
        if y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{which} split: {len(x)} inputs but labels of shape {y.shape}; every input needs exactly "
                "one label"
            )
        if len(y) == 0:
            raise DataError(
                f"{which} split is empty; check the data source and the limit / val_fraction settings"
            )
        if ref_shape is None:
            ref_shape = x.shape[1:]
        elif x.shape[1:] != ref_shape:
            raise DataError(
                f"{which} split: inputs are {x.shape[1:]} per example but train's are {ref_shape}"
            )
        if which == "train" and len(y) and len(np.unique(y)) < 2:
            raise DataError(
                f"train split: every label is class {int(y[0])}; a classifier needs examples of at least 2 "
                "classes (check the label file or how the labels were read)"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(
                f"{which} split: labels have dtype {y.dtype}; convert them to int64 class indices"
            )
        bad = (y < 0) | (y >= splits.num_classes)
        if bad.any():
            values = np.unique(y[bad])
            shown = ", ".join(str(int(v)) for v in values[:5]) + (", ..." if len(values) > 5 else "")
            raise DataError(
                f"{which} split: {int(bad.sum())} labels outside [0, {splits.num_classes}) (values: {shown}); "
                "remap the labels to 0..num_classes-1 or raise num_classes"
            )
        if np.issubdtype(x.dtype, np.floating):
            n_nan = int(np.isnan(x).sum())
            n_inf = int(np.isinf(x).sum())
            if n_nan or n_inf:
                raise DataError(
                    f"{which} split: inputs hold {n_nan} NaN and {n_inf} infinite values; clean the data "
                    "(a constant channel divided by std=0 is a common cause)"
                )


PREFLIGHT_TIMEOUT_S = 120.0  # a teacher that takes longer on 2 examples is taken to hang


def _call_with_timeout(teacher: Callable[[torch.Tensor], Any], batch: torch.Tensor) -> Any:
    """``teacher(batch)`` without gradients, or TeacherError after ``PREFLIGHT_TIMEOUT_S`` (the call is
    left in a daemon thread: a hung TorchScript loop cannot be interrupted, but it no longer blocks)."""
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            with torch.no_grad():
                result["out"] = teacher(batch)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = e

    worker = threading.Thread(target=call, name="evofusion-teacher-preflight", daemon=True)
    worker.start()
    worker.join(PREFLIGHT_TIMEOUT_S)
    if worker.is_alive():
        raise TeacherError(f"teacher did not answer on 2 examples within {PREFLIGHT_TIMEOUT_S:g} s; it may loop "
                           "forever (check its forward) or be far too large for this machine")
    if "error" in result:
        raise result["error"]
    return result["out"]


def check_teacher_outputs(
    logits_shape_or_fn: Callable[[torch.Tensor], torch.Tensor] | Sequence[int],
    splits: DataSplits,
) -> None:
    """Check that a teacher's logits fit the data set.

    Args:
        logits_shape_or_fn: either a callable teacher (``(B, C, H, W)`` float tensor -> ``(B, K)``
            logits), which is run on 2 validation examples on CPU without gradients (an
            ``nn.Module`` is put in eval mode for the call and restored after), or the shape of its
            logits, whose last entry is the number of outputs per example.
        splits: the data the teacher will be distilled on.

    Raises:
        TeacherError: the teacher raises on the sample batch, returns a shape other than
            ``(2, num_classes)`` or returns non-finite values.
    """
    k = splits.num_classes
    outputs = getattr(logits_shape_or_fn, "outputs", None)  # a precomputed-outputs teacher: its arrays
    if isinstance(outputs, dict) and "val" in outputs:
        logits_shape_or_fn = tuple(outputs["val"].shape)
    if not callable(logits_shape_or_fn):
        shape = tuple(int(d) for d in logits_shape_or_fn)
        if not shape or shape[-1] != k:
            n = shape[-1] if shape else 0
            raise TeacherError(
                f"teacher outputs {n} values per sample but the data set has {k} classes: give the "
                f"teacher a final layer with {k} outputs or choose the data set it was trained on"
            )
        return
    teacher = logits_shape_or_fn
    source = splits.val if len(splits.val) else splits.train
    batch = torch.from_numpy(np.ascontiguousarray(source.x[:2], dtype=np.float32))
    n = int(batch.shape[0])
    was_training = isinstance(teacher, torch.nn.Module) and teacher.training
    try:
        if isinstance(teacher, torch.nn.Module):
            teacher.eval()
        out = _call_with_timeout(teacher, batch)
    except TeacherError:
        raise
    except Exception as exc:
        raise TeacherError(
            f"teacher failed on a batch of shape {tuple(batch.shape)} from '{splits.name}': {exc!r}; "
            "check that it accepts this input size and channel count, on CPU"
        ) from exc
    finally:
        if was_training and isinstance(teacher, torch.nn.Module):
            teacher.train()
    if not isinstance(out, torch.Tensor):
        raise TeacherError(
            f"teacher returned {type(out).__name__}, expected a logits tensor; wrap it so it returns "
            "only the logits"
        )
    if out.ndim != 2 or out.shape[0] != n:
        raise TeacherError(
            f"teacher returned shape {tuple(out.shape)} for {n} samples, expected ({n}, {k}); flatten "
            "or pool its output to one logits vector per sample"
        )
    if out.shape[1] != k:
        raise TeacherError(
            f"teacher outputs {out.shape[1]} values per sample but the data set has {k} classes: give "
            f"the teacher a final layer with {k} outputs or choose the data set it was trained on"
        )
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        raise TeacherError(
            f"teacher returned {bad} non-finite logits on 2 validation samples; check its weights and "
            f"that the inputs are normalized as it expects (mean={splits.mean}, std={splits.std})"
        )
