"""The live dashboard: its HTTP API, readers never disturbing a writer, the CLI, and the page in Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evofusion import Study
from evofusion.cli import app
from evofusion.errors import RunStoreError
from evofusion.viz import dashboard as dashboard_mod
from evofusion.viz.dashboard import DashboardServer, read_run, serve_dashboard
from tests.conftest import tiny_config
from tests.viz.conftest import add_growth_events, count_near, distinct_colours, png_pixels

RED = (0xD1, 0x49, 0x5B)  # the Pareto front's colour on the page


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


@pytest.fixture
def served(finished_run: Path) -> Iterator[DashboardServer]:
    srv = serve_dashboard(finished_run, port=0).start()
    try:
        yield srv
    finally:
        srv.close()


def test_page_script_and_data(served: DashboardServer) -> None:
    from plotly.offline import get_plotlyjs

    code, ctype, body = get(served.url)
    page = body.decode()
    assert code == 200 and ctype.startswith("text/html")
    for el in ("pareto", "progress", "lineage", "growth", "candidates", "status"):
        assert f'id="{el}"' in page
    # plotly.js from this server only: the page names no other host
    assert '<script src="/plotly.min.js"></script>' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "cdn" not in page.lower()
    assert "Plotly.react" in page and "/api/data" in page

    code, ctype, body = get(served.url + "plotly.min.js")
    assert code == 200 and "javascript" in ctype and body.decode() == get_plotlyjs()

    code, ctype, body = get(served.url + "api/data")
    assert code == 200 and ctype == "application/json"
    d = json.loads(body)
    assert len(d["candidates"]) == 8 and d["counts"]["COMPLETE"] == 8
    for c in d["candidates"]:
        assert {"id", "generation", "status", "parents", "operator", "objectives", "genome"} <= c.keys()
        assert {"accuracy", "params"} <= c["objectives"].keys() and "stages" in c["genome"]
    ids = {c["id"] for c in d["candidates"]}
    assert d["pareto"] and set(d["pareto"]) <= ids and len(d["finals"]) == 1 and d["best"] in ids
    assert d["growth"] == [] and d["directions"] == {"accuracy": "max", "params": "min"}
    assert [g["generation"] for g in d["generations"]] == [0, 1]
    for g in d["generations"]:
        accs = [c["objectives"]["accuracy"] for c in d["candidates"] if c["generation"] == g["generation"]]
        assert g["best"]["accuracy"] == pytest.approx(max(accs))
        assert g["mean"]["accuracy"] == pytest.approx(sum(accs) / len(accs))


def test_lineage_endpoint(served: DashboardServer) -> None:
    d = json.loads(get(served.url + "api/data")[2])
    by_id = {c["id"]: c for c in d["candidates"]}
    child = next(c for c in d["candidates"] if c["parents"])
    code, _, body = get(served.url + f"api/lineage/{child['id']}")
    lin = json.loads(body)
    assert code == 200 and lin["id"] == child["id"]
    want, stack = set(), [child["id"]]  # every ancestor through parents, the candidate included
    while stack:
        i = stack.pop()
        if i not in want:
            want.add(i)
            stack.extend(by_id[i]["parents"])
    assert {n["id"] for n in lin["nodes"]} == want
    assert {tuple(e) for e in lin["edges"]} == {(p, c) for c in want for p in by_id[c]["parents"]}
    assert lin["tree"]["id"] == child["id"]
    assert {p["id"] for p in lin["tree"]["parents"]} == set(child["parents"])
    root = next(c for c in d["candidates"] if not c["parents"])
    assert json.loads(get(served.url + f"api/lineage/{root['id']}")[2])["edges"] == []
    assert get(served.url + "api/lineage/999")[0] == 404
    assert get(served.url + "api/lineage/abc")[0] == 400
    assert get(served.url + "nothing")[0] == 404


def test_arch_endpoint_draws_one_candidate(served: DashboardServer) -> None:
    d = json.loads(get(served.url + "api/data")[2])
    c = d["candidates"][0]
    code, _, body = get(served.url + f"api/arch/{c['id']}")
    arch = json.loads(body)
    assert code == 200 and arch["params"] == c["objectives"]["params"]
    assert sum(layer["params"] for layer in arch["layers"]) == arch["params"]  # every parameter drawn once
    assert sum(layer["flops"] for layer in arch["layers"]) == arch["flops"]
    assert [layer["type"] for layer in arch["layers"]][-1] == "Linear"
    assert get(served.url + "api/arch/999")[0] == 404
    assert get(served.url + "api/arch/x")[0] == 400


def test_dashboard_of_several_runs_compares_them(finished_run: Path, run_copy: Path) -> None:
    srv = serve_dashboard(finished_run, port=0, compare=[run_copy]).start()
    try:
        d = json.loads(get(srv.url + "api/data")[2])
    finally:
        srv.close()
    assert [r["run_dir"] for r in d["compare"]] == [str(finished_run), str(run_copy)]
    assert all(len(r["hv"]) == 8 and r["pareto"] for r in d["compare"])
    with pytest.raises(RunStoreError):
        serve_dashboard(finished_run, port=0, compare=[run_copy / "missing"])


def test_growth_events_are_read_when_the_table_exists(run_copy: Path) -> None:
    add_growth_events(run_copy, [(300, "deepen", 1200, 1500, 0.8, 0.84), (100, "widen", 900, 1200, 0.7, 0.72)])
    srv = serve_dashboard(run_copy, port=0).start()
    try:
        growth = json.loads(get(srv.url + "api/data")[2])["growth"]
    finally:
        srv.close()
    assert [(g["step"], g["operator"], g["params_after"]) for g in growth] == [(100, "widen", 1200),
                                                                                (300, "deepen", 1500)]


def test_reader_retries_a_locked_database(finished_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = dashboard_mod.RunStore, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(dashboard_mod, "RunStore", flaky)
    assert read_run(finished_run, lambda s: s.count(), delay=0.001) == 8 and calls["n"] == 3
    calls["n"] = -100  # locked for good: the error comes out after the retries
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        read_run(finished_run, lambda s: s.count(), attempts=3, delay=0.001)


def test_polling_reader_never_disturbs_a_running_search(tmp_path: Path) -> None:
    study = Study.create(tiny_config(generations=4), tmp_path / "run", log=lambda *_: None)
    srv = serve_dashboard(tmp_path / "run", port=0, poll_seconds=0.2).start()
    counts: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            code, _, body = get(srv.url + "api/data")
            if code != 200:
                errors.append(body.decode())
            else:
                counts.append(len(json.loads(body)["candidates"]))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(4):  # the writer: every generation inserts and updates rows while the reader reads
            study.step()
        assert study.store.count("COMPLETE") == 16
    finally:
        stop.set()
        reader.join()
        srv.close()
        study.close()
    assert not errors
    assert len(counts) >= 4 and counts == sorted(counts) and counts[-1] == 16


def _ignore_sigint() -> None:  # what a non-interactive shell does to a command it starts with `&`
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("inherited", ["default", "ignored"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_dashboard_serves_until_interrupted(finished_run: Path, sig: int, inherited: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "from evofusion.cli import main; main()", "dashboard", str(finished_run),
                             "--port", "0", "--no-open"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=_ignore_sigint if inherited == "ignored" else None)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line + proc.stderr.read()
        assert len(json.loads(get(url.group(0) + "api/data")[2])["candidates"]) == 8
    finally:
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0


def test_cli_dashboard_refuses_a_missing_run(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["dashboard", str(tmp_path / "nothing"), "--no-open"])
    assert r.exit_code == 2 and "holds no run" in r.output


def _status_count(driver) -> int:
    return int(driver.find_element("id", "status").get_attribute("data-candidates") or 0)


def _column(driver, key: str) -> list[float]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#candidates tbody tr')]"
        f".map(tr => Number(tr.querySelector('td[data-key={key}]').dataset.value));")


def _wait(cond, timeout: float = 60, what: str = "") -> None:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.browser
def test_live_dashboard_in_headless_chromium(chrome, tmp_path: Path) -> None:
    driver = chrome
    study = Study.create(tiny_config(generations=5), tmp_path / "run", log=lambda *_: None)
    study.step()  # generation 0 is on the page before the live part starts
    gate, failures = threading.Event(), []

    def search() -> None:  # a live search writing the run while the browser watches
        try:
            gate.wait(120)
            while not study.done():
                study.step()
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            failures.append(e)

    writer = threading.Thread(target=search)
    writer.start()
    srv = serve_dashboard(tmp_path / "run", port=0, poll_seconds=0.5).start()
    try:
        driver.get(srv.url)
        _wait(lambda: _status_count(driver) >= 4, what="candidates in #status")
        _wait(lambda: driver.find_elements("css selector", "#pareto .plot-container svg .scatterlayer .point"),
              what="points of the Pareto plot")
        first = _status_count(driver)
        gate.set()
        _wait(lambda: _status_count(driver) > first, what="a live update of the candidate count")
        writer.join(timeout=300)
        assert not writer.is_alive() and not failures
        _wait(lambda: "(complete 20)" in driver.find_element("id", "status").text, what="the whole run")
        assert re.match(r"20 candidates \(complete 20\) · Pareto front \d+ · updated ",
                        driver.find_element("id", "status").text)
        assert not driver.find_element("id", "growth-panel").is_displayed()  # no growth data in this run

        # the Pareto plot: one red point per Pareto candidate, grey for the rest
        data = json.loads(get(srv.url + "api/data")[2])
        n_front = len(driver.find_elements("css selector", "#pareto .scatterlayer .trace:nth-child(2) .point"))
        assert n_front == len(data["pareto"])
        assert len(driver.find_elements("css selector", "#pareto .scatterlayer .point")) >= 20

        # sorting: click a header, ascending; click again, descending
        driver.find_element("css selector", '#candidates th[data-key="accuracy"]').click()
        acc = _column(driver, "accuracy")
        assert len(acc) == 20 and acc == sorted(acc)
        driver.find_element("css selector", '#candidates th[data-key="accuracy"]').click()
        assert _column(driver, "accuracy") == sorted(acc, reverse=True)
        driver.find_element("css selector", '#candidates th[data-key="params"]').click()
        assert _column(driver, "params") == sorted(_column(driver, "params"))

        # lineage: click the row of a child, the title and the tree follow
        child = max((c for c in data["candidates"] if c["parents"]), key=lambda c: c["generation"])
        driver.find_element("css selector", f'#candidates tr[data-id="{child["id"]}"]').click()
        lin = json.loads(get(srv.url + f"api/lineage/{child['id']}")[2])
        title = driver.find_element("id", "lineage-title").text
        assert title.startswith(f"Lineage of candidate #{child['id']} ({len(lin['nodes']) - 1} ancestor")
        labels = {t.text for t in driver.find_elements("css selector", "#lineage .textpoint")}
        assert labels == {f"#{n['id']}" for n in lin["nodes"]}
        assert "selected" in driver.find_element(
            "css selector", f'#candidates tr[data-id="{child["id"]}"]').get_attribute("class")

        time.sleep(1)  # let the hover-free plots settle before the picture
        png = driver.get_screenshot_as_png()
        (tmp_path / "dashboard.png").write_bytes(png)
        if os.environ.get("EVOFUSION_SCREENSHOT_OUT"):  # how docs/dashboard.png is made
            shutil.copy(tmp_path / "dashboard.png", os.environ["EVOFUSION_SCREENSHOT_OUT"])
        img = png_pixels(png)
        assert img.shape[0] >= 1000 and img.shape[1] >= 1000
        assert distinct_colours(img) > 200  # text, plots and table, not a blank page
        assert (img.min(axis=2) > 240).mean() < 0.97  # not all white
        pareto = png_pixels(driver.find_element("id", "pareto").screenshot_as_png)
        assert count_near(pareto, RED, tol=30) > 50  # the red Pareto front is drawn
        assert count_near(pareto, (0x9A, 0xA5, 0xB1), tol=12) > 20  # and grey dominated points

        # growth: once the run has growth events, the chart appears on the next poll
        add_growth_events(tmp_path / "run", [(0, "start", 900, 900, 0.1, 0.1), (200, "widen", 900, 1400, 0.6, 0.62),
                                             (500, "deepen", 1400, 2100, 0.7, 0.75)])
        _wait(lambda: driver.find_element("id", "growth-panel").is_displayed(), 30, "the growth chart")
        _wait(lambda: len(driver.find_elements("css selector", "#growth .scatterlayer .point")) == 3, 30,
              "three growth events marked")
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe  # no script error, no failed request
    finally:
        gate.set()
        writer.join(timeout=300)
        srv.close()
        study.close()
