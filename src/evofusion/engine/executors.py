"""Executors: ``map(fn, jobs) -> outcomes`` in job order, and ``imap`` yielding each outcome as soon as
its job is done (in completion order), so the Study stores every finished candidate at once.

Every executor runs the jobs of one call in priority order: a job's ``priority`` attribute (lower
first; the Study gives cheap candidates and re-evaluations of elites low numbers), ties in
submission order. A job with an ``on_device(device)`` method is moved to the device of the worker
slot that runs it.

``serial`` runs jobs in the driver. ``process`` is a hardened pool of spawned worker processes, one
per slot of ``evofusion.engine.devices.plan_slots`` (one a free GPU, several a GPU by memory
estimate, CPU slots when there is no GPU): a worker that dies is replaced and its job retried up to
``retries`` times, then FAILED; a job running past ``timeout`` seconds has its worker killed and is
FAILED; a worker is replaced after ``recycle_after`` jobs so leaked memory stays bounded. ``ray``
lives in ``evofusion.engine.ray_executor`` and imports Ray only when created. The protocol, the
registry and the pieces every executor shares are in ``evofusion.engine.executor_base``.
"""

from __future__ import annotations

import heapq
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from evofusion.engine.devices import GpuProbe, plan_slots, probe_gpus
from evofusion.engine.executor_base import (
    EXECUTORS,
    Executor,
    MapMixin,
    failure,
    job_priority,
    place,
    priority_order,
)

__all__ = ["EXECUTORS", "Executor", "MapMixin", "ProcessExecutor", "SerialExecutor", "failure", "job_priority",
           "place", "priority_order"]


class SerialExecutor(MapMixin):
    """Jobs one after another in the driver, in priority order."""

    def __init__(self, **_: Any):
        pass

    def _imap_indexed(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for i in priority_order(jobs):
            yield i, fn(jobs[i])

    def close(self) -> None:
        pass


@EXECUTORS.register("serial")
def _serial(timeout: float | None = None, threads: int = 1, on_failure: Callable[[Any, str], Any] | None = None,
            device: str = "cpu", retries: int = 1, **_: Any) -> Executor:
    """One candidate at a time. With a ``timeout`` a candidate cannot be stopped inside the driver, so
    it runs in one spawned worker process (the process pool with a single CPU slot), which is killed
    and the candidate FAILED when it runs past the timeout."""
    if timeout is None:
        return SerialExecutor()
    return ProcessExecutor(workers=1, threads=threads, on_failure=on_failure, device=device, gpus=0,
                           timeout=timeout, retries=retries)


# --- the process pool --------------------------------------------------------------------------------
def _worker_main(conn: Connection, threads: int) -> None:
    """Worker loop: receive (fn, job), send ("ok", result) or ("err", reason); None ends it."""
    import torch

    torch.set_num_threads(max(1, threads))
    conn.send(("ready", None))  # a job's timeout counts from here, not from the spawn (imports take seconds)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        fn, job = msg
        try:
            reply: tuple[str, Any] = ("ok", fn(job))
        except BaseException as e:  # the job's own error; the driver turns it into a FAILED outcome
            reply = ("err", f"{type(e).__name__}: {e}"[:500])
        try:
            conn.send(reply)
        except Exception as e:  # unpicklable result
            conn.send(("err", f"result could not be sent back: {type(e).__name__}: {e}"[:500]))


@dataclass
class _Task:
    index: int
    job: Any
    attempt: int = 0  # times its worker died under it so far


@dataclass
class _Worker:
    device: str
    proc: Any
    conn: Connection
    done: int = 0
    ready: bool = False
    task: _Task | None = None
    started: float = 0.0
    deaths: list[str] = field(default_factory=list)


@EXECUTORS.register("process")
class ProcessExecutor(MapMixin):
    """A pool of spawned worker processes, one per device slot, ``threads`` torch threads each.

    Args:
        workers: CPU slots (on CPU, or for ``device='auto'`` without a GPU).
        threads: torch threads per worker.
        device: cpu | auto | cuda | cuda:N; GPU slots come from ``plan_slots``.
        gpus: GPU share per candidate (0.25: four candidates per GPU); ``gpu_memory_mb`` instead packs
            each GPU by its free memory.
        timeout: seconds a job may run before its worker is killed and the job FAILED (None: no limit).
        retries: times a job is retried on a fresh worker after its worker died; then FAILED.
        recycle_after: jobs a worker runs before it is replaced (None: never).
        on_failure: ``(job, reason) -> outcome`` for failed jobs; None raises RuntimeError instead.
        probe: GPU probe (tests inject fake GPUs).
    """

    def __init__(self, workers: int = 2, threads: int = 1, on_failure: Callable[[Any, str], Any] | None = None,
                 device: str = "cpu", gpus: float = 0.0, gpu_memory_mb: float | None = None,
                 timeout: float | None = None, retries: int = 2, recycle_after: int | None = None,
                 probe: GpuProbe = probe_gpus, **_: Any):
        self.threads, self.on_failure = threads, on_failure
        self.timeout, self.retries, self.recycle_after = timeout, retries, recycle_after
        self.slots = plan_slots(device, workers, gpus, gpu_memory_mb, probe)
        self.workers = len(self.slots)
        self._pool: list[_Worker | None] = [None] * len(self.slots)
        self._ctx = mp.get_context("spawn")
        self.stats = {"started": 0, "died": 0, "timed_out": 0, "recycled": 0, "retried": 0}

    # --- workers ---------------------------------------------------------------------------------
    def _spawn(self, slot: int) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child, self.threads), daemon=True)
        proc.start()
        child.close()
        self.stats["started"] += 1
        w = _Worker(self.slots[slot], proc, parent)
        self._pool[slot] = w
        return w

    def _wait_ready(self, slot: int, limit: float = 600.0) -> None:
        w = self._pool[slot]
        assert w is not None
        if w.ready:
            return
        try:
            if not w.conn.poll(limit):
                raise EOFError("no reply")
            w.conn.recv()
            w.ready = True
        except (EOFError, OSError) as e:
            self._retire(slot, kill=True)
            raise RuntimeError(f"a worker process failed to start on {w.device} ({e}; exit code "
                               f"{w.proc.exitcode})") from None

    def _retire(self, slot: int, kill: bool) -> None:
        w = self._pool[slot]
        if w is None:
            return
        self._pool[slot] = None
        if kill:
            w.proc.kill()
        else:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                w.proc.kill()
        w.proc.join(timeout=10)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join()
        w.conn.close()

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._pool if w is not None]

    # --- the queue -------------------------------------------------------------------------------
    def _imap_indexed(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        queue: list[tuple[float, int, _Task]] = [(job_priority(j), i, _Task(i, j)) for i, j in enumerate(jobs)]
        heapq.heapify(queue)
        busy: dict[int, _Worker] = {}
        try:
            while queue or busy:
                idle = [slot for slot in range(len(self.slots)) if slot not in busy][:len(queue)]
                for slot in idle:  # start the missing workers together, then wait until each is ready
                    if self._pool[slot] is None:
                        self._spawn(slot)
                for slot in idle:
                    self._wait_ready(slot)
                for slot in idle:  # one job per idle slot, best priority first
                    w = self._pool[slot]
                    assert w is not None
                    _, _, task = heapq.heappop(queue)
                    try:
                        w.conn.send((fn, place(task.job, w.device)))
                    except (OSError, BrokenPipeError):  # died while idle: replace it, keep the task
                        self._retire(slot, kill=True)
                        heapq.heappush(queue, (job_priority(task.job), task.index, task))
                        continue
                    except Exception as e:  # the job cannot be pickled
                        yield task.index, failure(self.on_failure, task.job, f"job could not be sent: {e}")
                        continue
                    w.task, w.started = task, time.monotonic()
                    busy[slot] = w
                if not busy:
                    continue
                wait_for = None
                if self.timeout is not None:
                    wait_for = max(0.0, min(w.started + self.timeout for w in busy.values()) - time.monotonic())
                wait([x for w in busy.values() for x in (w.conn, w.proc.sentinel)], timeout=wait_for)
                for slot, w in list(busy.items()):
                    task = w.task
                    assert task is not None
                    result = self._poll(slot, w, task, queue)
                    if result is _PENDING:
                        continue
                    del busy[slot]
                    if result is not _REQUEUED:
                        yield task.index, result
        finally:
            for slot in list(busy):  # abandoned (the consumer stopped): those workers are mid-job
                self._retire(slot, kill=True)

    def _poll(self, slot: int, w: _Worker, task: _Task, queue: list[tuple[float, int, _Task]]) -> Any:
        if w.conn.poll():
            try:
                kind, value = w.conn.recv()
            except (EOFError, OSError):
                return self._died(slot, w, task, queue)
            w.task = None
            w.done += 1
            if self.recycle_after is not None and w.done >= self.recycle_after:
                self.stats["recycled"] += 1
                self._retire(slot, kill=False)
            if kind == "ok":
                return value
            return failure(self.on_failure, task.job, value)
        if not w.proc.is_alive():
            return self._died(slot, w, task, queue)
        if self.timeout is not None and time.monotonic() - w.started >= self.timeout:
            self.stats["timed_out"] += 1
            self._retire(slot, kill=True)
            return failure(self.on_failure, task.job, f"timed out after {self.timeout:g} s; its worker was "
                            "killed (raise `timeout` if candidates need longer)")
        return _PENDING

    def _died(self, slot: int, w: _Worker, task: _Task, queue: list[tuple[float, int, _Task]]) -> Any:
        w.proc.join(timeout=5)
        code = w.proc.exitcode
        self.stats["died"] += 1
        self._retire(slot, kill=True)
        task.attempt += 1
        if task.attempt <= self.retries:
            self.stats["retried"] += 1
            heapq.heappush(queue, (job_priority(task.job), task.index, task))
            return _REQUEUED
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return failure(self.on_failure, task.job, f"worker process died ({how}) on {task.attempt} "
                        f"attempt(s); retries exhausted")

    def close(self) -> None:
        for slot in range(len(self._pool)):
            self._retire(slot, kill=False)


_PENDING = object()
_REQUEUED = object()


@EXECUTORS.register("ray")
def _ray_executor(**kwargs: Any) -> Executor:
    from evofusion.engine.ray_executor import RayExecutor  # Ray itself is imported only in there

    return RayExecutor(**kwargs)
