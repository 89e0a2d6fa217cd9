"""Where local candidates run: one worker slot per free GPU (or several per GPU, packed by a memory
estimate or a GPU fraction), CPU slots when no GPU exists.

The GPU probe is injectable (``probe=``) so the plan can be tested with 0, 1 or 2 fake GPUs on a
machine without any; the default probe asks torch (``torch.cuda.device_count`` and
``torch.cuda.mem_get_info``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from evofusion.errors import ConfigError


@dataclass(frozen=True)
class GpuInfo:
    index: int
    free_mb: float
    total_mb: float


GpuProbe = Callable[[], list[GpuInfo]]


def probe_gpus() -> list[GpuInfo]:
    """The GPUs torch sees, with their free and total memory in MiB."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append(GpuInfo(i, free / 2**20, total / 2**20))
    return out


def plan_slots(device: str = "cpu", workers: int = 1, gpus_per_candidate: float = 0.0,
               gpu_memory_mb: float | None = None, probe: GpuProbe = probe_gpus) -> list[str]:
    """The device of every worker slot of a local pool.

    ``device`` ``cpu``: ``workers`` CPU slots. ``auto``: GPU slots when the probe finds GPUs, else
    ``workers`` CPU slots (the CPU fallback). ``cuda``: every GPU; ``cuda:N``: that GPU only; either
    raises ConfigError when no such GPU exists. A GPU holds ``floor(free_mb / gpu_memory_mb)``
    candidates when a memory estimate is given, ``floor(1 / gpus_per_candidate)`` when that is a
    fraction below 1, else one. A GPU too full for even one estimated candidate gets no slot.
    """
    if device == "cpu":
        return ["cpu"] * workers
    gpus = probe()
    if device.startswith("cuda:"):
        want = int(device.split(":", 1)[1])
        if not any(g.index == want for g in gpus):
            raise ConfigError("device", f"{device} asked for, but this machine has {len(gpus)} GPU(s)"
                              + (f" (indices {', '.join(str(g.index) for g in gpus)})" if gpus else ""))
        gpus = [g for g in gpus if g.index == want]
    if not gpus:
        if device == "cuda":
            raise ConfigError("device", "cuda asked for, but no GPU is visible; use device: auto or cpu")
        return ["cpu"] * workers
    slots: list[str] = []
    for g in gpus:
        if gpu_memory_mb:
            n = int(math.floor(g.free_mb / gpu_memory_mb))
        elif 0 < gpus_per_candidate < 1:
            n = int(math.floor(1 / gpus_per_candidate + 1e-9))
        else:
            n = 1
        slots += [f"cuda:{g.index}"] * n
    if not slots:
        need = f"{gpu_memory_mb:g} MiB"
        raise ConfigError("resources.gpu_memory_mb", f"no GPU has {need} free for one candidate (free: "
                          + ", ".join(f"cuda:{g.index} {g.free_mb:.0f} MiB" for g in gpus) + ")")
    return slots
