"""Static and measured costs of a built student: parameters, bytes, FLOPs/MACs and CPU latency.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as two
FLOPs for matmul and convolution (the ops it knows); other ops (activations, pooling, additions)
count zero. MACs are reported as ``flops // 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode

from evofusion.errors import ConfigError


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def size_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer, at their current dtypes (the uncompressed weight size)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _example_input(model: nn.Module, input_shape: Sequence[int], batch: int) -> torch.Tensor:
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    # A fixed generator: the input values do not change FLOPs or (materially) latency.
    g = torch.Generator().manual_seed(0)
    return torch.randn((batch, *input_shape), generator=g, dtype=torch.float32).to(device, dtype)


def flops_and_macs(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """FLOPs and MACs of one forward pass on a batch of 1.

    Args:
        model: the module; it is run in eval mode under ``no_grad`` and its mode is restored.
        input_shape: one sample's shape without the batch dimension, e.g. ``(1, 28, 28)``.

    Returns:
        ``(flops, macs)``: FLOPs as counted by ``FlopCounterMode`` (2 per multiply-add of
        matmul/convolution) and MACs = FLOPs // 2.
    """
    x = _example_input(model, input_shape, batch=1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    flops = int(counter.get_total_flops())
    return flops, flops // 2


def measure_latency_ms(model: nn.Module, input_shape: Sequence[int], threads: int = 1, batch: int = 1,
                       min_run_time: float = 0.2) -> dict[str, Any]:
    """Median forward latency in milliseconds, with ``torch.utils.benchmark.Timer``.

    Args:
        model: the module; run in eval mode under ``no_grad``, its mode restored afterwards.
        input_shape: one sample's shape without the batch dimension.
        threads: intra-op threads during the measurement, [1, inf).
        batch: batch size of the timed input, [1, inf).
        min_run_time: seconds of timed runs ``blocked_autorange`` collects, (0, inf).

    Returns:
        ``{"latency_ms", "threads", "batch", "device"}``; ``latency_ms`` is for the whole batch.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError("threads", f"must be an integer >= 1, got {threads!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError("batch", f"must be an integer >= 1, got {batch!r}")
    if not min_run_time > 0:
        raise ConfigError("min_run_time", f"must be > 0 seconds, got {min_run_time!r}")
    x = _example_input(model, input_shape, batch=batch)
    was_training = model.training
    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    try:
        timer = Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads)
        timer.timeit(number=3)  # warm-up: allocator, lazy init, caches (timeit warms up again)
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
    finally:
        model.train(was_training)
    return {"latency_ms": float(measurement.median) * 1e3, "threads": threads, "batch": batch,
            "device": x.device.type}
