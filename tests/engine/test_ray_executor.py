"""The Ray executor on a real local cluster: a head node plus a second node, each its own raylet."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evofusion import Study
from evofusion.engine.executors import EXECUTORS
from tests.conftest import tiny_config
from tests.engine.fault_helpers import Job, failed, run_job

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    from evofusion.engine.ray_cluster import LocalRayCluster

    c = LocalRayCluster(nodes=2, cpus_per_node=1, object_store_mb=80)
    c.start()
    try:
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.stop()


def _rows(study: Study) -> list[tuple]:
    return [(r["id"], r["genome_hash"], r["status"], r["objective_values"]) for r in study.store.candidates()]


def test_serial_process_ray_same_results(tmp_path: Path, cluster) -> None:
    got = {}
    for kind, over in {"serial": {}, "process": {"workers": 2},
                       "ray": {"address": cluster.address}}.items():
        study = Study.create(tiny_config(executor=kind, threads=1, **over), tmp_path / kind, log=lambda *_: None)
        try:
            study.optimize()
            got[kind] = _rows(study)
        finally:
            study.close()
    assert len(got["serial"]) == 8 and all(r[2] == "COMPLETE" for r in got["serial"])
    assert got["serial"] == got["process"] == got["ray"]


def test_tasks_spread_over_both_nodes_and_timeout(cluster) -> None:
    ex = EXECUTORS.create("ray", address=cluster.address, timeout=8, on_failure=failed)
    try:
        assert ex.capacity() == 2
        res = ex.map(run_job, [Job(0, sleep=1.0), Job(1, sleep=1.0), Job(2, fault="hang"), Job(3),
                               Job(4, fault="raise")])
    finally:
        ex.close()
    assert "timed out after 8 s" in res[2]["failed"]
    assert res[4]["failed"].startswith("ValueError: bad job 4")
    assert all("pid" in res[i] for i in (0, 1, 3)), res


def test_node_loss_retries_the_candidate(tmp_path: Path, cluster) -> None:
    ex = EXECUTORS.create("ray", address=cluster.address, retries=2, on_failure=failed)
    port = cluster.worker_ports[0]
    killed = []

    def kill_when_both_started() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and len(list(tmp_path.glob("started_*"))) < 2:
            time.sleep(0.1)
        killed.append(cluster.kill_node(port))

    t = threading.Thread(target=kill_when_both_started)
    t.start()
    try:
        res = ex.map(run_job, [Job(i, sleep=6.0, fault="started_marker", marker_dir=str(tmp_path)) for i in range(2)])
    finally:
        t.join()
        ex.close()
        cluster.worker_ports.remove(port)
        cluster.add_node()  # later tests get two nodes again
    assert killed == [True]
    assert all("pid" in r for r in res), res  # nothing lost: the task on the dead node ran again
    assert len(list(tmp_path.glob("started_*"))) == 3  # two first attempts + one retry


def test_cli_search_on_the_cluster(tmp_path: Path, cluster) -> None:
    from typer.testing import CliRunner

    from evofusion.cli import app
    from evofusion.store import RunStore

    res = CliRunner().invoke(app, [
        "search", "--data", "digits", "--limit", "300", "--population", "4", "--generations", "1",
        "--steps", "12", "--top-k", "0", "--executor", "ray", "--address", cluster.address, "--timeout", "300",
        "--retries", "1", "--set", "threads=1", "--set", "space.widths=[4, 8]", "--set", "space.max_stages=2",
        "--run-dir", str(tmp_path / "r"), "-q"])
    assert res.exit_code == 0, res.output
    with RunStore(tmp_path / "r", lock=False, readonly=True) as s:
        assert s.count("COMPLETE") == 4
        assert s.get_meta("config")["executor"] == "ray"


def test_cluster_ignores_a_stale_user_token_and_a_local_ray_writes_none(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A token the user's own Ray left in ~/.ray/auth_token used to break every later local cluster
    (``ray start`` of the worker node: AuthenticationError); and a private local Ray must not write one."""
    from evofusion.engine.ray_cluster import LocalRayCluster

    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("0" * 64)  # stale, from another cluster
    monkeypatch.setenv("HOME", str(home))
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    if ray.is_initialized():
        ray.shutdown()
    with LocalRayCluster(nodes=2, cpus_per_node=1, object_store_mb=80) as c:
        ex = EXECUTORS.create("ray", address=c.address, on_failure=failed)
        try:
            res = ex.map(run_job, [Job(i) for i in range(2)])
        finally:
            ex.close()
        assert all("pid" in r for r in res), res
    assert (home / ".ray" / "auth_token").read_text() == "0" * 64  # untouched
    (home / ".ray" / "auth_token").unlink()
    ex = EXECUTORS.create("ray", workers=1, on_failure=failed)  # a private local Ray (no --address)
    try:
        assert "pid" in ex.map(run_job, [Job(0)])[0]
    finally:
        ex.close()
    assert not (home / ".ray" / "auth_token").exists()
