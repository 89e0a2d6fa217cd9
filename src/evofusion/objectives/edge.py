"""Edge latency: a student converted to ONNX and timed with ONNX Runtime on the CPU.

``latency_ms`` (in ``metrics.py``) times the PyTorch module; ``latency_ort_ms`` times what a device
would actually run: the ONNX graph in ONNX Runtime's ``CPUExecutionProvider`` with a fixed number of
intra-op threads. The figure always travels with its thread count, batch and runtime version.

onnx and onnxruntime are optional (``pip install 'evofusion[export]'``) and imported only inside the
functions that need them. The PyTorch-to-ONNX conversion lives here (not in ``export/``) so that the
evaluator can measure edge latency without importing the export package; ``export.onnx_export`` adds
the parity check on top of it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evofusion.errors import ConfigError, EvoFusionError

EXPORTERS = ("auto", "dynamo", "torchscript")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def require_ort() -> Any:
    """Import onnxruntime, or raise an error that says how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise EvoFusionError("ONNX export and edge latency need onnx and onnxruntime: "
                             "pip install 'evofusion[export]'") from None
    return onnxruntime


def require_onnx() -> Any:
    """Import onnx, or raise an error that says how to install it."""
    try:
        import onnx
    except ImportError:
        raise EvoFusionError("ONNX export needs onnx, onnxscript and onnxruntime: "
                             "pip install 'evofusion[export]'") from None
    return onnx


def ort_session(path: str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and one inter-op thread."""
    ort = require_ort()
    _check_positive_int(threads, "threads")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, f"must be an integer >= 1, got {value!r}")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' progress prints, deprecation warnings and logger chatter (e.g. the
    opset down-conversion's traceback when it keeps the graph at the exporter's own opset)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def torch_to_onnx(model: nn.Module, input_shape: Sequence[int], path: str | Path, opset: int = 17,
                  exporter: str = "auto", input_dtype: str = "float32") -> str:
    """Write ``model`` as a single-file ONNX graph with a dynamic batch axis; no parity check.

    Args:
        model: the module, exported in eval mode on the CPU (its mode is restored afterwards).
        input_shape: one sample's shape without the batch dimension, e.g. ``(1, 28, 28)``.
        path: the ``.onnx`` file to write (weights embedded, no external data file).
        opset: ONNX opset to ask for, [13, 25]. The dynamo exporter implements opset >= 18 and
            converts down when asked for less; the file's actual opset is what ``onnx`` reports.
        exporter: ``dynamo`` (torch.export based), ``torchscript`` (the legacy tracer), or ``auto``:
            dynamo, falling back to torchscript when dynamo fails.
        input_dtype: ``float32`` or ``uint8`` (a graph that takes 0-255 pixels).

    Returns:
        The exporter that produced the file: ``"dynamo"`` or ``"torchscript"``.
    """
    require_onnx()
    if exporter not in EXPORTERS:
        raise ConfigError("exporter", f"must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or not 13 <= opset <= 25:
        raise ConfigError("opset", f"must be an integer in [13, 25], got {opset!r}")
    g = torch.Generator().manual_seed(0)
    if input_dtype not in ("float32", "uint8"):
        raise ConfigError("input_dtype", f"must be float32 or uint8, got {input_dtype!r}")
    x = (torch.randint(0, 256, (2, *input_shape), generator=g, dtype=torch.uint8) if input_dtype == "uint8"
         else torch.randn((2, *input_shape), generator=g))
    was_training = model.training
    model.eval()
    errors: list[str] = []
    try:
        for kind in (("dynamo", "torchscript") if exporter == "auto" else (exporter,)):
            try:
                with _quiet_exporter(), torch.no_grad():
                    if kind == "dynamo":
                        torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=opset,
                                          external_data=False, input_names=[INPUT_NAME],
                                          output_names=[OUTPUT_NAME], verbose=False,
                                          dynamic_shapes=({0: torch.export.Dim("batch")},))
                        _strip_node_metadata(path)
                    else:
                        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset,
                                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
                return kind
            except Exception as e:  # try the next exporter; report every failure if all fail
                errors.append(f"{kind}: {type(e).__name__}: {str(e)[:300]}")
                Path(path).unlink(missing_ok=True)
    finally:
        model.train(was_training)
    raise EvoFusionError("ONNX export failed: " + "; ".join(errors))


def _strip_node_metadata(path: str | Path) -> None:
    """Drop the dynamo exporter's per-node debug records (stack traces, FX names): they are most of
    a small student's file and would make the reported size meaningless."""
    onnx = require_onnx()
    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.save(model, str(path))


def ort_latency_ms(path: str | Path, input_shape: Sequence[int], threads: int = 1, batch: int = 1,
                   warmup: int = 10, runs: int | None = None, min_time: float = 0.2) -> dict[str, Any]:
    """Median latency of one ONNX Runtime forward pass on the CPU, in milliseconds.

    Args:
        path: an ONNX model with one float32 input.
        input_shape: one sample's shape without the batch dimension.
        threads: intra-op threads, [1, inf); inter-op threads are fixed at 1.
        batch: batch size of the timed input, [1, inf); the figure is for the whole batch.
        warmup: untimed runs first, [0, inf).
        runs: exact number of timed runs, [1, inf); ``None`` times for at least ``min_time`` seconds
            (and at least 10 runs).
        min_time: seconds of timed runs when ``runs`` is None, (0, inf).

    Returns:
        ``{"latency_ms", "threads", "batch", "device": "cpu", "provider": "CPUExecutionProvider",
        "runtime": "onnxruntime <version>", "runs"}``.
    """
    ort = require_ort()
    _check_positive_int(batch, "batch")
    if runs is not None:
        _check_positive_int(runs, "runs")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ConfigError("warmup", f"must be an integer >= 0, got {warmup!r}")
    if not min_time > 0:
        raise ConfigError("min_time", f"must be > 0 seconds, got {min_time!r}")
    sess = ort_session(path, threads)
    # Fixed input values: they do not change the latency of a CNN materially.
    x = np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    times: list[float] = []
    start = time.perf_counter()
    while (len(times) < runs) if runs is not None else (len(times) < 10 or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return {"latency_ms": statistics.median(times) * 1e3, "threads": threads, "batch": batch, "device": "cpu",
            "provider": "CPUExecutionProvider", "runtime": f"onnxruntime {ort.__version__}", "runs": len(times)}


def onnx_latency_ms(model: nn.Module, input_shape: Sequence[int], threads: int = 1, batch: int = 1,
                    min_time: float = 0.2, exporter: str = "auto") -> dict[str, Any]:
    """Export ``model`` to a temporary ONNX file and time it with :func:`ort_latency_ms`.

    This is the ``latency_ort_ms`` objective. The model is not changed (eval mode during the export,
    its mode restored). The returned dict also names the exporter used.
    """
    with tempfile.TemporaryDirectory(prefix="evofusion-ort-") as d:
        path = Path(d) / "student.onnx"
        kind = torch_to_onnx(model, input_shape, path, exporter=exporter)
        res = ort_latency_ms(path, input_shape, threads=threads, batch=batch, min_time=min_time)
    return {**res, "exporter": kind}
