"""Executors: ``map(fn, jobs) -> outcomes`` in job order, and ``imap`` yielding each outcome as soon
as it (and every job before it) is done, so the Study stores finished candidates one by one.

The serial executor runs in the driver; the process executor runs jobs in a pool of worker
processes (spawned, so each worker imports torch cleanly and loads the data once). A worker that
dies takes only its job with it: that job comes back FAILED and the pool is rebuilt.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from evofusion.registry import Registry


class Executor(Protocol):
    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]: ...

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]: ...

    def close(self) -> None: ...


EXECUTORS: Registry[Executor] = Registry("executors")


@EXECUTORS.register("serial")
class SerialExecutor:
    def __init__(self, **_: Any):
        pass

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        return list(self.imap(fn, jobs))

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        for j in jobs:
            yield fn(j)

    def close(self) -> None:
        pass


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


@EXECUTORS.register("process")
class ProcessExecutor:
    """A pool of ``workers`` spawned processes, ``threads`` torch threads each."""

    def __init__(self, workers: int = 2, threads: int = 1, on_failure: Callable[[Any, str], Any] | None = None,
                 **_: Any):
        self.workers, self.threads = workers, threads
        self.on_failure = on_failure
        self._pool: cf.ProcessPoolExecutor | None = None

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                                initializer=_init_worker, initargs=(self.threads,))
        return self._pool

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        return list(self.imap(fn, jobs))

    def imap(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
        futures = [self._get_pool().submit(fn, j) for j in jobs]
        broken = False
        try:
            for job, fut in zip(jobs, futures, strict=True):
                try:
                    yield fut.result()
                except cf.process.BrokenProcessPool as e:
                    broken = True
                    yield self._failed(job, f"worker process died: {e}")
                except Exception as e:
                    yield self._failed(job, f"{type(e).__name__}: {e}")
        finally:
            if broken:
                self.close()

    def _failed(self, job: Any, reason: str) -> Any:
        if self.on_failure is None:
            raise RuntimeError(reason)
        return self.on_failure(job, reason)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
