"""Picklable functions that misbehave on purpose, for the executor and fault-battery tests.

They run inside worker processes (process pool, Ray), so they are module-level and find their plan
in the job itself: ``job.context.extra["faults"]`` maps a candidate id (as a string) to a fault.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import torch

from evofusion.engine import evaluator as evaluator_mod


def faulty_evaluate(job: Any) -> Any:
    """The real evaluator, with the fault planned for this candidate injected first."""
    extra = job.context.extra
    fault = extra.get("faults", {}).get(str(job.candidate_id))
    if fault == "crash":
        os._exit(3)
    if fault == "crash_once":
        marker = Path(extra["marker_dir"]) / f"crashed_{job.candidate_id}"
        if not marker.exists():
            marker.write_text("1")
            os._exit(3)
    if fault == "hang":
        time.sleep(3600)
    if fault in ("nan", "inf", "oom"):
        return _with_patched_training(job, fault)
    return evaluator_mod.evaluate(job)


def _with_patched_training(job: Any, fault: str) -> Any:
    real = evaluator_mod._train_candidate

    def patched(model, arrays, ctx, generator, *more):
        if fault in ("nan", "inf"):  # teacher logits that make the real KD loss non-finite
            bad = float("nan") if fault == "nan" else float("inf")
            arrays = dict(arrays, train_t=torch.full_like(arrays["train_t"], bad))
            return real(model, arrays, ctx, generator, *more)
        # a real allocation failure under a real address-space limit: 4 GB more than the process has
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        vm = _vm_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (vm + 256 * 2**20, hard))
        try:
            big = torch.ones(2**30, dtype=torch.float32)  # 4 GiB
            return {"never": float(big[0])}
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

    evaluator_mod._train_candidate = patched
    try:
        return evaluator_mod.evaluate(job)
    finally:
        evaluator_mod._train_candidate = real


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


# --- plain jobs for executor unit tests ----------------------------------------------------------------
class Job:
    """A small job with a priority and a device, like EvalJob."""

    def __init__(self, n: int, priority: float = 0.0, device: str = "cpu", fault: str | None = None,
                 marker_dir: str | None = None, sleep: float = 0.0):
        self.n, self.priority, self.device, self.fault = n, priority, device, fault
        self.marker_dir, self.sleep = marker_dir, sleep

    def on_device(self, device: str) -> Job:
        return Job(self.n, self.priority, device, self.fault, self.marker_dir, self.sleep)


def run_job(job: Job) -> dict[str, Any]:
    t0 = time.time()
    if job.fault == "crash":
        os._exit(5)
    if job.fault == "crash_once":
        marker = Path(job.marker_dir) / f"crashed_{job.n}"
        if not marker.exists():
            marker.write_text("1")
            os._exit(5)
    if job.fault == "hang":
        time.sleep(3600)
    if job.fault == "raise":
        raise ValueError(f"bad job {job.n}")
    if job.fault == "started_marker":
        (Path(job.marker_dir) / f"started_{job.n}_{os.getpid()}").write_text("1")
    time.sleep(job.sleep)
    return {"n": job.n, "pid": os.getpid(), "device": job.device, "start": t0, "end": time.time()}


def failed(job: Any, reason: str) -> dict[str, Any]:
    return {"n": job.n, "failed": reason}


def make_sentinel(path: str) -> None:
    Path(path).write_text("code ran")


class Malicious:
    """Unpickling this would create a file: a loader must refuse before that can happen."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple:
        return (make_sentinel, (self.path,))
