"""Safety of what the report and dashboard serve: hostile names in a run cannot break report.html
(headless Chromium renders it), the dashboard refuses foreign Host headers (DNS rebinding) and closes
idle connections instead of keeping a thread for each."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from evofusion.store import RunStore
from evofusion.viz import dashboard as dashboard_mod
from evofusion.viz import write_html_report
from evofusion.viz.dashboard import allowed_hosts, serve_dashboard

HOSTILE = '<!--<script></script>"\'&</title><img src=x onerror=alert(1)>'


def _get(port: int, host_header: str, path: str = "/api/data") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": host_header})
        return conn.getresponse().status
    finally:
        conn.close()


def test_dashboard_refuses_a_foreign_host_header(finished_run: Path) -> None:
    srv = serve_dashboard(finished_run, port=0).start()
    port = srv.server_address[1]
    try:
        assert _get(port, f"127.0.0.1:{port}") == 200
        assert _get(port, f"localhost:{port}") == 200
        assert _get(port, "evil.example") == 421  # a DNS-rebinding page sends its own name
        assert _get(port, f"evil.example:{port}", "/") == 421
    finally:
        srv.close()
    assert allowed_hosts("0.0.0.0", "0.0.0.0", 8765) is None  # every interface: the user's choice
    assert "10.0.0.5:8765" in allowed_hosts("10.0.0.5", "10.0.0.5", 8765)


def test_dashboard_closes_idle_connections(finished_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_mod, "IDLE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(dashboard_mod._Handler, "timeout", 0.5)
    srv = serve_dashboard(finished_run, port=0).start()
    try:
        socks = [socket.create_connection(("127.0.0.1", srv.server_address[1])) for _ in range(20)]
        time.sleep(2.0)
        for s in socks:  # each half-open connection was closed by the server: reads end at once
            s.settimeout(5)
            assert s.recv(1) == b""
            s.close()
        assert _get(srv.server_address[1], f"127.0.0.1:{srv.server_address[1]}") == 200  # still serving
    finally:
        srv.close()


def _hostile_run(finished_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / f"run {HOSTILE[:20]}".replace("/", "_")
    shutil.copytree(finished_run, run)
    conn = sqlite3.connect(run / "run.db")
    with conn:  # a teacher and a failure reason with script-breaking text, as a run could hold
        conn.execute("UPDATE meta SET value=? WHERE key='teacher'", ('{"name": ' + json_str(HOSTILE) + "}",))
        conn.execute("UPDATE candidates SET reason=? WHERE id=0", (HOSTILE,))
    conn.close()
    return run


def json_str(s: str) -> str:
    return json.dumps(s)


def test_report_embeds_hostile_strings_safely(finished_run: Path, tmp_path: Path) -> None:
    run = _hostile_run(finished_run, tmp_path)
    with RunStore(run, lock=False, readonly=True) as store:
        html = write_html_report(store, tmp_path / "report.html").read_text()
    data = html[html.index("POLL_MS = 0, EMBEDDED = ") + len("POLL_MS = 0, EMBEDDED = "):]
    data = data.split("\n", 1)[0]  # the boot line: the embedded data and nothing else
    assert "<" not in data and ">" not in data  # nothing in the data can open or close a tag
    assert json.loads(data.rsplit(";", 1)[0])["teacher"]["name"] == HOSTILE


@pytest.mark.browser
def test_hostile_report_renders_in_headless_chromium(chrome, finished_run: Path, tmp_path: Path) -> None:
    run = _hostile_run(finished_run, tmp_path)
    with RunStore(run, lock=False, readonly=True) as store:
        page = write_html_report(store, tmp_path / "report.html")
    chrome.get(page.as_uri())
    deadline = time.time() + 60
    while time.time() < deadline and not chrome.find_elements("css selector", "#pareto .scatterlayer .point"):
        time.sleep(0.2)
    assert chrome.find_elements("css selector", "#pareto .scatterlayer .point"), "no plot"
    assert len(chrome.find_elements("css selector", "#candidates tbody tr")) == 8  # the table too
    assert chrome.execute_script("return typeof EMBEDDED") == "object"
    errors = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
