"""Parity-checked ONNX export: a file is only reported when ONNX Runtime reproduces PyTorch.

``export_onnx`` converts a student (dynamo exporter, falling back to the TorchScript one), then runs
the graph in ONNX Runtime's CPU provider and PyTorch (eval mode) on the same batches. When the largest
element-wise difference exceeds ``atol`` the file is deleted and an ``EvoFusionError`` carries the
error; a bad graph never reaches a user.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evofusion.errors import EvoFusionError
from evofusion.objectives.edge import ort_session, require_onnx, torch_to_onnx

PARITY_ATOL = 1e-4
PARITY_BATCH_SIZES = (1, 7, 32)  # several batch sizes also exercise the dynamic batch axis


def parity_batches(input_shape: Sequence[int], inputs: np.ndarray | torch.Tensor | None = None,
                   seed: int = 0, dtype: str = "float32") -> list[np.ndarray]:
    """Random batches of ``input_shape`` (sizes 1, 7, 32; float32 normal, or uint8 pixels), then
    ``inputs`` in chunks of 256."""
    g = torch.Generator().manual_seed(seed)
    if dtype == "uint8":
        batches = [torch.randint(0, 256, (n, *input_shape), generator=g, dtype=torch.uint8).numpy()
                   for n in PARITY_BATCH_SIZES]
    else:
        batches = [torch.randn((n, *input_shape), generator=g).numpy() for n in PARITY_BATCH_SIZES]
    if inputs is not None:
        arr = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
        arr = np.ascontiguousarray(arr, dtype=np.uint8 if dtype == "uint8" else np.float32)
        if tuple(arr.shape[1:]) != tuple(input_shape):
            raise EvoFusionError(f"parity inputs have shape {tuple(arr.shape[1:])} per sample, "
                                 f"the model expects {tuple(input_shape)}")
        batches += [arr[i:i + 256] for i in range(0, len(arr), 256)]
    return batches


def max_abs_error(model: nn.Module, session: Any, batches: Sequence[np.ndarray]) -> float:
    """Largest element-wise |ONNX Runtime - PyTorch| over every output of every batch (eval mode)."""
    name = session.get_inputs()[0].name
    worst = 0.0
    with torch.no_grad():
        for b in batches:
            ref = model(torch.from_numpy(b)).detach().cpu().numpy()
            got = session.run(None, {name: b})[0]
            if got.shape != ref.shape:
                return float("inf")
            err = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
            worst = max(worst, err if np.isfinite(err) else float("inf"))
    return worst


def export_onnx(model: nn.Module, input_shape: Sequence[int], path: str | Path, opset: int = 17,
                atol: float = PARITY_ATOL, inputs: np.ndarray | torch.Tensor | None = None,
                exporter: str = "auto", input_dtype: str = "float32") -> dict[str, Any]:
    """Export ``model`` to ONNX and prove that ONNX Runtime reproduces it.

    Args:
        model: a module on the CPU; compared in eval mode (its mode is restored afterwards).
        input_shape: one sample's shape without the batch dimension, e.g. ``(1, 28, 28)``.
        path: the ``.onnx`` file to write; the batch axis is dynamic.
        opset: ONNX opset to ask for (see ``objectives.edge.torch_to_onnx``).
        atol: largest allowed |ONNX Runtime - PyTorch| on any logit, [0, inf).
        inputs: optional real inputs (N, *input_shape) checked besides the random batches.
        exporter: ``auto`` (dynamo, then torchscript), ``dynamo`` or ``torchscript``.
        input_dtype: ``float32`` or ``uint8`` (the graph's input type; see ``export.deploy``).

    Returns:
        ``{"path", "max_abs_error", "atol", "size_kb", "opset", "exporter"}``.

    Raises:
        EvoFusionError: onnx/onnxruntime missing, every exporter failed, or the parity error exceeds
            ``atol``; then no file is left at ``path`` (an older file there is removed too).
    """
    onnx = require_onnx()
    if not atol >= 0:
        raise EvoFusionError(f"atol must be >= 0, got {atol!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batches = parity_batches(input_shape, inputs, dtype=input_dtype)
    # Written beside the target and renamed only once it passes: a failed check leaves nothing behind.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    was_training = model.training
    try:
        kind = torch_to_onnx(model, input_shape, tmp, opset=opset, exporter=exporter, input_dtype=input_dtype)
        onnx.checker.check_model(str(tmp))
        model.eval()
        err = max_abs_error(model, ort_session(tmp), batches)
        if not err <= atol:
            raise EvoFusionError(f"ONNX parity check failed: max |onnxruntime - torch| = {err:.3g} > atol "
                                 f"{atol:g} ({kind} exporter, opset {opset}); {path} was not written")
        actual_opset = max((o.version for o in onnx.load(str(tmp)).opset_import if o.domain in ("", "ai.onnx")),
                           default=opset)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)  # an older file there would pass for this model's export
        raise
    finally:
        model.train(was_training)
    return {"path": str(path), "max_abs_error": err, "atol": atol, "size_kb": path.stat().st_size / 1024,
            "opset": int(actual_opset), "exporter": kind, "input_dtype": input_dtype}
