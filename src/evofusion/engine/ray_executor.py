"""The Ray executor (``--executor ray [--address HOST:PORT]``): each candidate one Ray task.

Ray is imported only when this executor is created. Each task asks for ``cpus`` CPUs and ``gpus``
GPUs (a fraction such as 0.25 packs four candidates on one GPU; Ray sets ``CUDA_VISIBLE_DEVICES``
and the candidate trains on ``cuda``). A task whose worker process or node dies is retried by Ray
up to ``retries`` times (``max_retries``), then the candidate is FAILED; a task running longer than
``timeout`` seconds (counted inside the task, from when it started) is FAILED and its worker
process ended. Exceptions raised by a candidate
are not retried: the evaluator already turns them into FAILED outcomes.

At most as many tasks are in flight as the cluster has slots for, so the priority order (cheap
candidates and elite re-evaluations first) holds on Ray too and a task's timeout counts from when
it could start.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from evofusion.engine.executor_base import MapMixin, failure, job_priority, place
from evofusion.errors import EvoFusionError


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EvoFusionError("--executor ray needs Ray: pip install 'evofusion[ray]' (or pick --executor "
                             "process)") from None
    return ray


class TimedOut:
    """What a task returns when its job ran past the timeout (picklable, so it reaches the driver)."""

    def __init__(self, seconds: float):
        self.seconds = seconds


def _run_job(fn: Callable[[Any], Any], job: Any, threads: int, timeout: float | None) -> Any:
    """Run one job on a Ray worker. The timeout is kept here, so it counts from when the task started
    (not from when it was queued or while its worker was starting)."""
    import torch

    torch.set_num_threads(max(1, threads))
    if timeout is None:
        return fn(job)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(job)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        # the job's thread cannot be stopped: end this worker process just after the reply has gone out,
        # so the hung job dies with it and Ray starts a fresh worker for the next task
        threading.Timer(2.0, os._exit, args=(0,)).start()
        return TimedOut(timeout)
    if "error" in box:
        raise box["error"]
    return box["result"]


class RayExecutor(MapMixin):
    """Candidates as Ray tasks on a local or remote cluster.

    Args:
        address: ``HOST:PORT`` of a running cluster, ``auto`` (``RAY_ADDRESS`` or the local one),
            or None: connect to an already initialized Ray, else start a private local Ray.
        cpus, gpus: resources of one task (``num_cpus``, ``num_gpus``).
        threads: torch threads inside a task.
        retries: Ray ``max_retries`` for a task whose worker or node died.
        timeout: seconds a running task may take before it is cancelled and FAILED.
        workers: CPUs of the private local Ray when ``address`` is None.
        runtime_env: passed to ``ray.init``; by default the driver's ``sys.path`` becomes the tasks'
            ``PYTHONPATH`` so code importable in the driver is importable on the workers.
        on_failure: ``(job, reason) -> outcome`` for failed jobs.
    """

    def __init__(self, address: str | None = None, cpus: float = 1.0, gpus: float = 0.0, threads: int = 1,
                 retries: int = 2, timeout: float | None = None, workers: int = 2,
                 runtime_env: dict[str, Any] | None = None, on_failure: Callable[[Any, str], Any] | None = None,
                 **_: Any):
        self.ray = _import_ray()
        self.cpus, self.gpus, self.threads = cpus, gpus, threads
        self.retries, self.timeout, self.on_failure = retries, timeout, on_failure
        self.stats = {"lost": 0, "timed_out": 0}
        self._owns = False
        if not self.ray.is_initialized():
            env = runtime_env if runtime_env is not None else {
                "env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
            kwargs: dict[str, Any] = {"runtime_env": env, "log_to_driver": False, "configure_logging": False}
            if address is None:
                kwargs.update(num_cpus=workers, include_dashboard=False, object_store_memory=100_000_000)
                self._private_auth()
            else:
                kwargs["address"] = address
            try:
                self.ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise EvoFusionError(f"address: cannot connect to a Ray cluster at {address!r} ({e}); start "
                                     "one with `ray start --head` or fix --address") from None
            self._owns = True
        self._remote = self.ray.remote(_run_job).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=retries, retry_exceptions=False)

    def capacity(self) -> int:
        """Tasks the cluster can run at once for this request (at least 1)."""
        res = self.ray.cluster_resources()
        n = math.floor(res.get("CPU", 0) / self.cpus + 1e-9) if self.cpus else 10**6
        if self.gpus:
            n = min(n, math.floor(res.get("GPU", 0) / self.gpus + 1e-9))
        return max(1, n)

    def _imap_indexed(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        order = sorted(range(len(jobs)), key=lambda i: (job_priority(jobs[i]), i))
        device = "cuda" if self.gpus > 0 else None
        inflight: dict[Any, int] = {}
        try:
            while order or inflight:
                cap = self.capacity()
                while order and len(inflight) < cap:
                    i = order.pop(0)
                    job = place(jobs[i], device) if device else jobs[i]
                    inflight[self._remote.remote(fn, job, self.threads, self.timeout)] = i
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)  # 1 s: see node changes
                for ref in ready:
                    i = inflight.pop(ref)
                    yield i, self._result(ref, jobs[i])
        finally:
            for ref in inflight:
                ray.cancel(ref, force=True)

    def _result(self, ref: Any, job: Any) -> Any:
        ex = self.ray.exceptions
        try:
            res = self.ray.get(ref)
            if isinstance(res, TimedOut):
                self.stats["timed_out"] += 1
                return failure(self.on_failure, job, f"timed out after {res.seconds:g} s; its Ray worker was "
                                "ended (raise `timeout` if candidates need longer)")
            return res
        except (ex.WorkerCrashedError, ex.NodeDiedError, ex.ObjectLostError, ex.OwnerDiedError) as e:
            self.stats["lost"] += 1
            return failure(self.on_failure, job, f"Ray worker or node lost {self.retries + 1} time(s); retries "
                            f"exhausted: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
        except ex.TaskCancelledError:
            return failure(self.on_failure, job, "Ray task cancelled")
        except ex.RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            return failure(self.on_failure, job, f"{type(cause).__name__}: {str(cause).splitlines()[0][:400]}")
        except ex.RayError as e:
            return failure(self.on_failure, job, f"Ray error: {type(e).__name__}: {str(e)[:400]}")

    def _private_auth(self) -> None:
        """A private local Ray keeps token auth, but with a token in this process's environment
        (inherited by its Ray processes) instead of one written to the user's ``~/.ray/auth_token``,
        which would later break other clusters on this machine. Settings the user made are kept."""
        import secrets

        if "RAY_AUTH_MODE" in os.environ or "RAY_AUTH_TOKEN" in os.environ:
            return
        self._auth_env = True
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        refresh_ray_auth()

    _auth_env = False

    def close(self) -> None:
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns = False
        if self._auth_env:
            os.environ.pop("RAY_AUTH_MODE", None)
            os.environ.pop("RAY_AUTH_TOKEN", None)
            self._auth_env = False
            refresh_ray_auth()


def refresh_ray_auth() -> None:
    """Make Ray re-read ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` in this process (it caches both; the
    same two calls Ray makes when it turns token auth on itself)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # another Ray version: the environment alone has to do
        pass

