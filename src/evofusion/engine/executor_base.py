"""What every executor shares: the ``Executor`` protocol, the ``EXECUTORS`` registry, priority order,
device placement and the failure handler. ``executors`` (serial, process) and ``ray_executor`` both
import from here, never from each other (Ray stays out of every import path but its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from evofusion.registry import Registry


class Executor(Protocol):
    """Runs ``fn`` on every job. Contract: ``imap`` yields exactly one outcome per job (any order);
    a job whose worker dies, hangs or raises comes back as ``on_failure(job, reason)``, never as an
    exception out of the executor; ``close`` ends every worker it started."""

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]: ...

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]: ...

    def close(self) -> None: ...


EXECUTORS: Registry[Executor] = Registry("executors")


def job_priority(job: Any) -> float:
    return float(getattr(job, "priority", 0.0) or 0.0)


def priority_order(jobs: Sequence[Any]) -> list[int]:
    """Indices of ``jobs`` in run order: lowest priority value first, ties by position."""
    return sorted(range(len(jobs)), key=lambda i: (job_priority(jobs[i]), i))


def place(job: Any, device: str) -> Any:
    """``job`` moved to ``device`` when it has an ``on_device`` method (EvalJob), else as it is."""
    on_device = getattr(job, "on_device", None)
    return on_device(device) if on_device is not None else job


def failure(on_failure: Callable[[Any, str], Any] | None, job: Any, reason: str) -> Any:
    """The outcome of a failed job: ``on_failure(job, reason)``, or RuntimeError without a handler."""
    if on_failure is None:
        raise RuntimeError(reason)
    return on_failure(job, reason)


class MapMixin:
    """``map`` and ``imap`` from an executor's ``_imap_indexed(fn, jobs) -> (index, outcome)``."""

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        out: dict[int, Any] = {}
        for i, res in self._imap_indexed(fn, jobs):  # type: ignore[attr-defined]
            out[i] = res
        return [out[i] for i in range(len(jobs))]

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        for _, res in self._imap_indexed(fn, jobs):  # type: ignore[attr-defined]
            yield res
