"""A throwaway multi-node Ray cluster on this machine, for tests, benchmarks and trying ``--executor ray``.

``LocalRayCluster(nodes=2)`` runs ``ray start --head`` on 127.0.0.1 plus ``nodes - 1`` worker nodes
joining it, each with its own raylet, all under a private temp dir. ``stop()`` ends exactly the
processes of this cluster (found by its temp dir and GCS port, plus their children), never another
Ray on the machine: ``ray stop`` would stop every Ray process of the user.

A real cluster is started the same way on each machine (see docs/distributed.md); this class only
saves typing the commands and cleaning up after them.

Isolation: the cluster's processes run with their own ``HOME`` under its temp dir and
``RAY_AUTH_MODE=disabled`` (it listens on 127.0.0.1 only), so a token the user's own Ray left in
``~/.ray/auth_token`` neither breaks it nor is touched by it; while it runs, this process (the driver
that connects to it) sees the same auth settings, restored by ``stop()``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evofusion.errors import EvoFusionError

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def _refresh_ray_auth() -> None:
    if "ray" in sys.modules:  # Ray caches the auth settings of a process once it is imported
        from evofusion.engine.ray_executor import refresh_ray_auth

        refresh_ray_auth()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_bin() -> str:
    cand = Path(sys.executable).with_name("ray")
    if cand.exists():
        return str(cand)
    found = shutil.which("ray")
    if found is None:
        raise EvoFusionError("the `ray` command is not installed; pip install 'evofusion[ray]'")
    return found


def _cmdlines() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can read."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(d)] = (ppid, cmd)
    return out


class LocalRayCluster:
    """``nodes`` Ray nodes on 127.0.0.1 with ``cpus_per_node`` CPUs each.

    Args:
        nodes: head plus ``nodes - 1`` worker nodes (each its own raylet, as on separate machines).
        cpus_per_node: CPUs each node advertises.
        object_store_mb: object store per node (small: candidates pass only paths and small results).
        temp_dir: Ray's session folder; default a fresh short path under /tmp (unix sockets need it short).
    """

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, object_store_mb: int = 80,
                 temp_dir: str | None = None):
        if nodes < 1:
            raise EvoFusionError(f"nodes must be >= 1 (got {nodes})")
        self.nodes, self.cpus, self.store_bytes = nodes, cpus_per_node, object_store_mb * 1_000_000
        self.temp_dir = temp_dir or tempfile.mkdtemp(prefix="efray", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.worker_ports: list[int] = []  # node-manager port of every worker node
        self.started = False
        self.home = str(Path(self.temp_dir) / "home")  # the cluster's processes never read the user's ~/.ray
        self._saved_env: dict[str, str | None] | None = None

    def env(self) -> dict[str, str]:
        """Environment of the cluster's processes: a private HOME, auth off, no inherited token."""
        env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS and k != "RAY_ADDRESS"}
        return {**env, "HOME": self.home, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    def _isolate_driver(self) -> None:
        if self._saved_env is None:
            self._saved_env = {k: os.environ.get(k) for k in AUTH_VARS}
            for k in AUTH_VARS:
                os.environ.pop(k, None)
            os.environ["RAY_AUTH_MODE"] = "disabled"
            _refresh_ray_auth()

    def _restore_driver(self) -> None:
        if self._saved_env is not None:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._saved_env = None
            _refresh_ray_auth()

    def _common(self) -> list[str]:
        return ["--num-cpus", str(self.cpus), "--object-store-memory", str(self.store_bytes),
                "--disable-usage-stats", "--temp-dir", self.temp_dir]

    def _run(self, args: list[str]) -> None:
        Path(self.home).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([_ray_bin(), "start", *args], capture_output=True, text=True, env=self.env(),
                              timeout=180)
        if proc.returncode != 0:
            self.stop()
            raise EvoFusionError(f"`ray start {' '.join(args)}` failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")

    def start(self) -> LocalRayCluster:
        self._isolate_driver()
        self._run(["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                   "--ray-client-server-port", str(free_port()), "--include-dashboard=false",
                   "--dashboard-port", str(free_port()), *self._common()])
        self.started = True
        for _ in range(self.nodes - 1):
            self.add_node()
        return self

    def add_node(self) -> int:
        """Start one more worker node; returns its node-manager port (to find or kill its raylet)."""
        port = free_port()
        self._run(["--address", self.address, "--node-ip-address", "127.0.0.1", "--node-manager-port",
                   str(port), *self._common()])
        self.worker_ports.append(port)
        return port

    def raylet_pid(self, node_manager_port: int) -> int | None:
        for pid, (_, cmd) in _cmdlines().items():
            if "raylet/raylet" in cmd and f"--node_manager_port={node_manager_port}" in cmd \
                    and self.temp_dir in cmd:
                return pid
        return None

    def kill_node(self, node_manager_port: int) -> bool:
        """SIGKILL a worker node's raylet, as when its machine is lost. True if one was found."""
        pid = self.raylet_pid(node_manager_port)
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    def pids(self) -> list[int]:
        """Every process of this cluster: those naming its temp dir or GCS address, and their children."""
        procs = _cmdlines()
        me = os.getpid()
        roots = {pid for pid, (_, cmd) in procs.items()
                 if pid != me and "ray" in cmd and (self.temp_dir in cmd or f":{self.port} " in cmd + " ")}
        found, frontier = set(roots), set(roots)
        while frontier:
            frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier and pid not in found}
            found |= frontier
        found.discard(me)
        return sorted(found)

    def stop(self, timeout: float = 10.0) -> None:
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + timeout
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() and not _zombie(p) for p in pids):
            time.sleep(0.2)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.started = False
        self._restore_driver()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
