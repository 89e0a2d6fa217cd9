"""Live dashboard of a run: a stdlib HTTP server over the run database, and the page it serves.

``serve_dashboard(run_dir)`` binds a ``ThreadingHTTPServer`` that serves

* ``/``                 the page: Pareto front, objectives per generation, lineage of the selected
                        candidate, architecture growth (when the run has ``growth_events``), and a
                        sortable candidate table; it polls ``/api/data`` and redraws with ``Plotly.react``;
* ``/plotly.min.js``    plotly.js from the installed plotly package (no CDN, the page makes no
                        request outside this server);
* ``/api/data``         ``report_data`` of the run as JSON;
* ``/api/lineage/<id>`` the ancestors of one candidate (``report.lineage``);
* ``/api/arch/<id>``    one candidate's layers with params and FLOPs (``analysis.layer_table``).

Given several run directories, the first is the one drawn and ``/api/data`` also carries the
comparison of all of them (Pareto fronts and hypervolume on one reference point).

Every request opens the database read-only (``mode=ro``) and closes it again, so a search writing the
same run at the same time is never blocked (WAL mode); a reader that meets a busy database retries.
``write_html_report`` renders the same page with the data embedded and plotly.js beside it (or inlined).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from evofusion.errors import RunStoreError
from evofusion.store import RunStore
from evofusion.viz.analysis import layer_table
from evofusion.viz.page import plotly_js, render_page, to_json  # noqa: F401 - re-exported
from evofusion.viz.report import candidate_rows, comparison_data, lineage, report_data

T = TypeVar("T")
def _busy(e: BaseException) -> bool:
    while e is not None:
        if isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e)):
            return True
        e = e.__cause__  # RunStore wraps errors met while opening
    return False


def read_run(run_dir: str | Path, fn: Callable[[RunStore], T], attempts: int = 40, delay: float = 0.05) -> T:
    """``fn(store)`` on a fresh read-only connection, inside one read transaction (a consistent
    snapshot while a writer goes on); retried while SQLite reports the database locked or busy."""
    for attempt in range(attempts):
        try:
            with RunStore(run_dir, lock=False, readonly=True) as store:
                store.conn.execute("BEGIN")
                try:
                    return fn(store)
                finally:
                    store.conn.rollback()
        except (sqlite3.OperationalError, RunStoreError) as e:
            if not _busy(e) or attempt == attempts - 1:
                raise
            time.sleep(delay * (1 + attempt % 5))
    raise AssertionError("unreachable")


IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing for this long is closed (its thread ends)
MAX_CONNECTIONS = 64  # connections served at once; more wait in the listen queue, then are dropped


def allowed_hosts(host: str, bound_host: str, port: int) -> set[str] | None:
    """The ``Host`` header values a dashboard on ``host`` accepts: its own names, with and without the
    port (loopback: also localhost, 127.0.0.1, [::1]). None (any) only when it listens on every
    interface (0.0.0.0 / ::), where the user chose to serve whatever name reaches it."""
    if host in ("0.0.0.0", "::", ""):
        return None
    names = {host.lower(), str(bound_host).lower()}
    if names & {"127.0.0.1", "localhost", "::1"}:
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return names | {f"{n}:{port}" for n in names}


class DashboardServer(ThreadingHTTPServer):
    """The dashboard's HTTP server; ``start()`` serves from a daemon thread, ``close()`` stops it.

    Safety: requests whose ``Host`` header is not the address it serves (a DNS-rebinding page in the
    browser would send its own host name) get 421 and no data; an idle connection is closed after
    ``IDLE_TIMEOUT_S`` and at most ``MAX_CONNECTIONS`` are served at once, so half-open connections
    cannot pile up threads.
    """

    daemon_threads = True
    block_on_close = False  # Ctrl-C / close() do not wait for handler threads (daemons, idle keep-alives)
    request_queue_size = 16

    def __init__(self, run_dir: Path, host: str, port: int, poll_seconds: float, compare: list[Path] = ()):
        self.run_dir, self.poll_seconds, self.compare = run_dir, poll_seconds, list(compare)
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((host, port), _Handler)
        self.allowed_hosts = allowed_hosts(host, *self.server_address[:2])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):  # too many connections: refuse this one at once
            self.shutdown_request(request)
            return
        request.settimeout(IDLE_TIMEOUT_S)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(target=self.serve_forever, name="evofusion-dashboard", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()


def serve_dashboard(run_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                    poll_seconds: float = 2.0, compare: list[str | Path] = ()) -> DashboardServer:
    """Bind the dashboard of ``run_dir`` on ``host:port`` (0 picks a free port) and return the server,
    not yet serving: call ``serve_forever()`` (blocks) or ``start()`` (daemon thread), then ``close()``.
    ``compare``: other run directories shown beside it (the comparison panel).

    Raises:
        RunStoreError: ``run_dir`` (or one of ``compare``) holds no readable run database.
    """
    dirs = [Path(run_dir), *(Path(c) for c in compare)]
    for d in dirs:  # fail now, with the store's message, not on the first request
        read_run(d, lambda s: s.count())
    return DashboardServer(dirs[0], host, port, poll_seconds, dirs[1:])


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    timeout = IDLE_TIMEOUT_S  # socket timeout while reading a request (StreamRequestHandler)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # one line per poll would drown the terminal

    def _send(self, code: int, body: str | bytes, ctype: str, cache: bool = False) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=86400" if cache else "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, to_json(obj), "application/json")

    def _candidate(self, path: str, fn: Callable[[dict[str, Any]], Any] | None) -> None:
        """``/api/<what>/<id>``: ``fn(candidate row)``, or the lineage when ``fn`` is None; 400 for a
        malformed id, 404 for an unknown one (or a genome that cannot be drawn)."""
        try:
            cid = int(path.rsplit("/", 1)[1])
        except ValueError:
            self._json(400, {"error": f"not a candidate id: {path.rsplit('/', 1)[1]!r}"})
            return
        rows = read_run(self.server.run_dir, candidate_rows)
        if fn is None:
            try:
                self._json(200, lineage(rows, cid))
            except KeyError:
                self._json(404, {"error": f"no candidate {cid}"})
            return
        row = next((r for r in rows if r["id"] == cid), None)
        result = fn(row) if row is not None else None
        if result is None:
            self._json(404, {"error": f"no candidate {cid}" if row is None else f"candidate {cid} cannot be drawn"})
        else:
            self._json(200, result)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        host = (self.headers.get("Host") or "").strip().lower()
        if self.server.allowed_hosts is not None and host not in self.server.allowed_hosts:
            self._json(421, {"error": f"Host {host!r} is not this dashboard's address; open {self.server.url}"})
            return
        try:
            if path in ("/", "/index.html"):
                self._send(200, render_page(None, poll_seconds=self.server.poll_seconds),
                           "text/html; charset=utf-8")
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon", cache=True)
            elif path == "/plotly.min.js":
                self._send(200, plotly_js(), "application/javascript; charset=utf-8", cache=True)
            elif path == "/api/data":
                data = read_run(self.server.run_dir, report_data)
                if self.server.compare:
                    data["compare"] = comparison_data([self.server.run_dir, *self.server.compare], read_run)
                self._json(200, data)
            elif path.startswith("/api/arch/"):
                self._candidate(path, lambda c: layer_table(c["genome"]))
            elif path.startswith("/api/lineage/"):
                self._candidate(path, None)
            else:
                self._json(404, {"error": f"no such page: {path}"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # the page shows it and polls again; the server keeps serving
            self._json(503, {"error": f"{type(e).__name__}: {e}"})


