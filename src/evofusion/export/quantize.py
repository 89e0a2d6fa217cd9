"""Static int8 quantization of an exported student, and what it costs in accuracy, size and latency.

``quantize_int8`` runs ONNX Runtime's static post-training quantization (QDQ format, int8 weights and
activations, per-channel weight scales by default) calibrated on images from the *training* split:
the validation and test splits stay untouched for measuring what quantization costs.
``onnx_deployment`` is the whole recipe the ``evofusion export --onnx --int8`` command runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evofusion.data.base import DataSplits
from evofusion.errors import EvoFusionError
from evofusion.export.onnx_export import export_onnx
from evofusion.objectives.edge import ort_latency_ms, ort_session, require_onnx, require_ort
from evofusion.objectives.metrics import flops_and_macs

__all__ = ["calibration_sample", "onnx_accuracy", "onnx_deployment", "ort_latency_ms", "quantize_int8"]

CALIBRATION_BATCH = 64


def _calibration_reader(input_name: str, calibration: np.ndarray) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        """Feeds the calibration images in batches of ``CALIBRATION_BATCH``."""

        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter(())
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self._batches, None)
            return None if b is None else {input_name: b}

        def rewind(self) -> None:
            self._batches = iter([calibration[i:i + CALIBRATION_BATCH]
                                  for i in range(0, len(calibration), CALIBRATION_BATCH)])

    return _Reader()


def quantize_int8(onnx_path: str | Path, out_path: str | Path, calibration: np.ndarray,
                  per_channel: bool = True) -> dict[str, Any]:
    """Statically quantize an fp32 ONNX model to int8 (QDQ), calibrated with MinMax ranges.

    Args:
        onnx_path: the fp32 model (e.g. from :func:`export_onnx`).
        out_path: where the int8 model goes.
        calibration: (N, C, H, W) float32 inputs from the training split, in the form the graph
            takes (for the deployment graphs: [0, 1] images); N >= 1.
        per_channel: one weight scale per output channel (better accuracy) instead of per tensor.

    Returns:
        ``{"path", "fp32_size_kb", "int8_size_kb", "calibration_samples", "format": "QDQ",
        "per_channel", "weight_type": "int8", "activation_type": "int8", "calibrate_method"}``.
    """
    require_onnx()
    require_ort()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise EvoFusionError(f"calibration must be a non-empty (N, C, H, W) array, got shape {calibration.shape}")
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    input_name = ort_session(onnx_path).get_inputs()[0].name
    with tempfile.TemporaryDirectory(prefix="evofusion-quant-") as d:
        source = onnx_path
        try:  # shape inference + graph optimizations first, as ONNX Runtime recommends
            quant_pre_process(str(onnx_path), str(Path(d) / "pre.onnx"))
            source = Path(d) / "pre.onnx"
        except Exception:  # the plain graph still quantizes, only less well fused
            source = onnx_path
        quantize_static(str(source), str(out_path), _calibration_reader(input_name, calibration),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return {"path": str(out_path), "fp32_size_kb": onnx_path.stat().st_size / 1024,
            "int8_size_kb": out_path.stat().st_size / 1024, "calibration_samples": int(len(calibration)),
            "format": "QDQ", "per_channel": per_channel, "weight_type": "int8", "activation_type": "int8",
            "calibrate_method": "minmax"}


def onnx_accuracy(path: str | Path, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
                  batch: int = 256, threads: int = 1) -> float:
    """Top-1 accuracy of an ONNX model run by ONNX Runtime (CPU) on inputs ``x`` and labels ``y``."""
    x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    y = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if len(x) == 0 or len(x) != len(y):
        raise EvoFusionError(f"need as many labels as inputs (> 0), got {len(x)} inputs and {len(y)} labels")
    sess = ort_session(path, threads)
    name = sess.get_inputs()[0].name
    dtype = np.uint8 if "uint8" in sess.get_inputs()[0].type else np.float32  # a graph taking 0-255 pixels
    correct = 0
    for i in range(0, len(x), batch):
        logits = sess.run(None, {name: np.ascontiguousarray(x[i:i + batch], dtype=dtype)})[0]
        correct += int((logits.argmax(axis=1) == y[i:i + batch]).sum())
    return correct / len(x)


def calibration_sample(splits: DataSplits, n: int, seed: int = 0) -> np.ndarray:
    """``n`` training images (all when fewer), chosen by a permutation seeded with ``seed``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise EvoFusionError(f"calibration: need an integer >= 1 of training images, got {n!r}")
    idx = np.random.default_rng(seed).permutation(len(splits.train))[:n]
    return np.ascontiguousarray(splits.train.x[np.sort(idx)], dtype=np.float32)


def onnx_deployment(model: nn.Module, splits: DataSplits, out_dir: str | Path, int8: bool = True,
                    calibration: int = 512, threads: int = 1, seed: int = 0) -> dict[str, Any]:
    """Write ``student.onnx`` (parity-checked) and optionally ``student.int8.onnx``; measure both. For
    8-bit data sets also ``student.uint8.onnx``, which takes the pixels as stored.

    Every graph has the input normalization inside (:mod:`evofusion.export.deploy`): ``student.onnx``
    and the int8 model take float32 images in [0, 1], the uint8 one 0-255 pixels; the accuracies are
    measured on exactly those inputs, so they are what a user feeding raw images gets. Validation
    split (what selection used) and, reported separately, the test split. The int8 model is
    calibrated on ``calibration`` training images. Latency is ONNX Runtime's on the CPU with
    ``threads`` intra-op threads, batch 1.

    Returns:
        A card section: ``{"onnx", "uint8", "int8", "accuracy", "latency_ort", "compute"}`` (``int8`` /
        ``uint8`` None when not asked for / not an 8-bit data set).
    """
    from evofusion.export.deploy import Normalized, as_uint8, unit_range

    out = Path(out_dir)
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    val_y, test_y = splits.val.y, splits.test.y
    val01, test01 = unit_range(splits.val.x, splits.mean, splits.std), unit_range(splits.test.x, splits.mean, splits.std)
    wrapped = Normalized(model, splits.mean, splits.std).eval()
    fp32_path = out / "student.onnx"
    fp32 = export_onnx(wrapped, shape, fp32_path, inputs=val01[:256])
    flops, macs = flops_and_macs(model, shape)
    acc: dict[str, Any] = {
        "val": {"onnx_fp32": onnx_accuracy(fp32_path, val01, val_y, threads=threads)},
        "test": {"onnx_fp32": onnx_accuracy(fp32_path, test01, test_y, threads=threads)},
        "note": "val: the split selection used; test: held out, reported only. Inputs: raw images ([0, 1] "
                "floats; 0-255 uint8 for student.uint8.onnx), normalization inside the graphs",
    }
    lat = {"fp32": ort_latency_ms(fp32_path, shape, threads=threads)}
    card: dict[str, Any] = {"onnx": {**fp32, "path": fp32_path.name, "input": "float32 [0, 1] NCHW"},
                            "uint8": None, "int8": None, "accuracy": acc, "latency_ort": lat,
                            "compute": {"flops": flops, "macs": macs, "input_shape": [1, *shape],
                                        "note": "flops = 2 * macs (one multiply-add counts 2 FLOPs)"}}
    val8, test8 = as_uint8(val01), as_uint8(test01)
    if val8 is not None and test8 is not None:
        u8_path = out / "student.uint8.onnx"
        u8 = export_onnx(Normalized(model, splits.mean, splits.std, uint8=True).eval(), shape, u8_path,
                         inputs=val8[:256], input_dtype="uint8")
        acc["val"]["onnx_uint8_input"] = onnx_accuracy(u8_path, val8, val_y, threads=threads)
        acc["test"]["onnx_uint8_input"] = onnx_accuracy(u8_path, test8, test_y, threads=threads)
        card["uint8"] = {**u8, "path": u8_path.name, "input": "uint8 0-255 NCHW"}
    if int8:
        int8_path = out / "student.int8.onnx"
        calib = unit_range(calibration_sample(splits, calibration, seed), splits.mean, splits.std)
        q = quantize_int8(fp32_path, int8_path, calib)
        acc["val"]["onnx_int8"] = onnx_accuracy(int8_path, val01, val_y, threads=threads)
        acc["test"]["onnx_int8"] = onnx_accuracy(int8_path, test01, test_y, threads=threads)
        lat["int8"] = ort_latency_ms(int8_path, shape, threads=threads)
        card["int8"] = {**q, "path": int8_path.name, "calibration_split": "train", "input": "float32 [0, 1] NCHW"}
    return card
