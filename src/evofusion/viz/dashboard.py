"""Live dashboard of a run: a stdlib HTTP server over the run database, and the page it serves.

``serve_dashboard(run_dir)`` binds a ``ThreadingHTTPServer`` that serves

* ``/``                 the page: Pareto front, objectives per generation, lineage of the selected
                        candidate, architecture growth (when the run has ``growth_events``), and a
                        sortable candidate table; it polls ``/api/data`` and redraws with ``Plotly.react``;
* ``/plotly.min.js``    plotly.js from the installed plotly package (no CDN, the page makes no
                        request outside this server);
* ``/api/data``         ``report_data`` of the run as JSON;
* ``/api/lineage/<id>`` the ancestors of one candidate (``report.lineage``).

Every request opens the database read-only (``mode=ro``) and closes it again, so a search writing the
same run at the same time is never blocked (WAL mode); a reader that meets a busy database retries.
``write_html_report`` renders the same page with the data embedded and plotly.js inlined.
"""

from __future__ import annotations

import html
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from evofusion.errors import RunStoreError
from evofusion.store import RunStore
from evofusion.viz.report import candidate_rows, lineage, report_data

T = TypeVar("T")
_PLOTLY_JS: str | None = None


def plotly_js() -> str:
    """plotly.js (minified) from the installed plotly package, read once."""
    global _PLOTLY_JS
    if _PLOTLY_JS is None:
        from plotly.offline import get_plotlyjs

        _PLOTLY_JS = get_plotlyjs()
    return _PLOTLY_JS


def to_json(obj: Any) -> str:
    """Strict JSON (non-finite floats become null, so the browser's JSON.parse accepts it)."""

    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(obj), allow_nan=False, separators=(",", ":"))


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


class DashboardServer(ThreadingHTTPServer):
    """The dashboard's HTTP server; ``start()`` serves from a daemon thread, ``close()`` stops it."""

    daemon_threads = True

    def __init__(self, run_dir: Path, host: str, port: int, poll_seconds: float):
        self.run_dir, self.poll_seconds = run_dir, poll_seconds
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

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
                    poll_seconds: float = 2.0) -> DashboardServer:
    """Bind the dashboard of ``run_dir`` on ``host:port`` (0 picks a free port) and return the server,
    not yet serving: call ``serve_forever()`` (blocks) or ``start()`` (daemon thread), then ``close()``.

    Raises:
        RunStoreError: ``run_dir`` holds no readable run database.
    """
    run_dir = Path(run_dir)
    read_run(run_dir, lambda s: s.count())  # fail now, with the store's message, not on the first request
    return DashboardServer(run_dir, host, port, poll_seconds)


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer

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

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(200, render_page(None, poll_seconds=self.server.poll_seconds),
                           "text/html; charset=utf-8")
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon", cache=True)
            elif path == "/plotly.min.js":
                self._send(200, plotly_js(), "application/javascript; charset=utf-8", cache=True)
            elif path == "/api/data":
                self._json(200, read_run(self.server.run_dir, report_data))
            elif path.startswith("/api/lineage/"):
                try:
                    cid = int(path.rsplit("/", 1)[1])
                except ValueError:
                    self._json(400, {"error": f"not a candidate id: {path.rsplit('/', 1)[1]!r}"})
                    return
                try:
                    self._json(200, lineage(read_run(self.server.run_dir, candidate_rows), cid))
                except KeyError:
                    self._json(404, {"error": f"no candidate {cid}"})
            else:
                self._json(404, {"error": f"no such page: {path}"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # the page shows it and polls again; the server keeps serving
            self._json(503, {"error": f"{type(e).__name__}: {e}"})


def render_page(data: dict[str, Any] | None, *, poll_seconds: float = 2.0, title: str = "EvoFusion") -> str:
    """The dashboard page. ``data=None``: live, plotly.js from ``/plotly.min.js`` and ``/api/data``
    polled every ``poll_seconds``. Otherwise static and self-contained: ``data`` embedded as JSON and
    plotly.js inlined (no ``<script src=``)."""
    live = data is None
    if live:
        head_js = '<script src="/plotly.min.js"></script>'
        boot = f"const LIVE = true, POLL_MS = {int(poll_seconds * 1000)}, EMBEDDED = null;"
        written = ""
    else:
        head_js = f"<script>{plotly_js()}</script>"
        embedded = to_json(data).replace("</", "<\\/")
        boot = f"const LIVE = false, POLL_MS = 0, EMBEDDED = {embedded};"
        written = time.strftime("%Y-%m-%d %H:%M:%S")
    page = _PAGE.replace("__TITLE__", html.escape(title)).replace("__WRITTEN__", written)
    page = page.replace("__APP_JS__", _APP_JS)
    # plotly.js and the data go in last, by position, so nothing inside them is ever substituted
    before, _, rest = page.partition("__HEAD_JS__")
    middle, _, after = rest.partition("__BOOT__")
    return before + head_js + middle + boot + after


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
__HEAD_JS__
<style>
 body { font-family: system-ui, sans-serif; margin: 16px 24px; color: #1f2933; background: #fff; }
 h1 { font-size: 1.35rem; margin: 0 0 4px; } h2 { font-size: 1.05rem; margin: 18px 0 6px; }
 #status { color: #52606d; margin: 0 0 4px; } #status.error { color: #b00020; }
 #meta { color: #52606d; font-size: .85rem; margin: 0 0 8px; }
 .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
 .panel { border: 1px solid #e4e7eb; border-radius: 6px; padding: 6px 8px; min-width: 0; }
 .plot { height: 380px; }
 table { border-collapse: collapse; font-size: .85rem; width: 100%; }
 th, td { border-bottom: 1px solid #e4e7eb; padding: 3px 8px; text-align: right; white-space: nowrap; }
 th { background: #f5f7fa; position: sticky; top: 0; }
 #candidates th { cursor: pointer; user-select: none; } #candidates th:hover { background: #e4e7eb; }
 #candidates tbody tr { cursor: pointer; } #candidates tbody tr:hover { background: #f0f4f8; }
 #candidates tr.selected { background: #fde8eb; } tr.pareto td.k-id { color: #d1495b; font-weight: 600; }
 .s-FAILED { color: #b00020; } .s-INFEASIBLE { color: #b7791f; } .s-PENDING { color: #7b8794; }
 .table-wrap { max-height: 520px; overflow: auto; border: 1px solid #e4e7eb; border-radius: 6px; }
</style></head>
<body>
<h1>EvoFusion run <span id="run-dir"></span></h1>
<p id="status" data-candidates="0">loading ...</p>
<p id="meta"></p>
<div class="grid">
 <div class="panel"><h2>Pareto front: validation accuracy vs parameters</h2><div id="pareto" class="plot"></div></div>
 <div class="panel"><h2>Objectives per generation</h2><div id="progress" class="plot"></div></div>
 <div class="panel"><h2 id="lineage-title">Lineage</h2><div id="lineage" class="plot"></div></div>
 <div class="panel" id="growth-panel" style="display:none"><h2>Architecture growth</h2>
  <div id="growth" class="plot"></div></div>
</div>
<div id="finals-panel" style="display:none"><h2>Final fine-tuned winners</h2><table id="finals"></table></div>
<h2>Candidates <small>(click a header to sort, a row to show its lineage)</small></h2>
<div class="table-wrap"><table id="candidates"><thead></thead><tbody></tbody></table></div>
<script>
__BOOT__
const WRITTEN = "__WRITTEN__";
__APP_JS__
</script>
</body></html>
"""

_APP_JS = r"""
const RED = '#d1495b', GREY = '#9aa5b1', BLUE = '#2e86ab', GOLD = '#edae49';
const CONFIG = {responsive: true, displaylogo: false};
let DATA = null, lastText = null, selected = null, sortKey = 'id', sortDir = 1, bound = {};

function fmt(v) {
  if (v === null || v === undefined) return '';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(4);
}
function esc(s) {
  return String(s).replace(/[&<>"]/g, ch => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[ch]));
}
function byId(d) { const m = new Map(); for (const c of d.candidates) m.set(c.id, c); return m; }
function hover(c) {
  let s = `<b>#${c.id}</b> gen ${c.generation} · ${esc(c.operator || 'initial')} · ${c.status}`;
  for (const [k, v] of Object.entries(c.objectives || {})) s += `<br>${esc(k)} ${fmt(v)}`;
  if (c.parents && c.parents.length) s += `<br>parents ${c.parents.join(', ')}`;
  return s;
}
function plotted(d) {
  return d.candidates.filter(c => c.status === 'COMPLETE' && Number.isFinite(c.objectives.params)
                                  && Number.isFinite(c.objectives.accuracy));
}
function defaultSelection(d) {
  const ids = byId(d);
  if (selected !== null && ids.has(selected)) return selected;
  if (d.best !== null && ids.has(d.best)) return d.best;
  const done = plotted(d);
  if (!done.length) return d.candidates.length ? d.candidates[d.candidates.length - 1].id : null;
  return done.reduce((a, b) => (b.objectives.accuracy > a.objectives.accuracy ? b : a)).id;
}
function onClick(id, fn) {
  if (bound[id]) return;
  document.getElementById(id).on('plotly_click', ev => {
    const p = ev.points && ev.points[0];
    if (p && p.customdata !== undefined && p.customdata !== null) fn(p.customdata);
  });
  bound[id] = true;
}

function drawPareto(d) {
  const done = plotted(d), front = new Set(d.pareto);
  const trace = (rows, name, color, lines) => ({
    type: 'scatter', mode: lines ? 'lines+markers' : 'markers', name,
    x: rows.map(c => c.objectives.params), y: rows.map(c => c.objectives.accuracy),
    customdata: rows.map(c => c.id), text: rows.map(hover), hovertemplate: '%{text}<extra></extra>',
    marker: {color, size: lines ? 10 : 8, line: {color: '#fff', width: 1}}, line: {color, width: 2}});
  const others = done.filter(c => !front.has(c.id));
  const pf = done.filter(c => front.has(c.id)).sort((a, b) => a.objectives.params - b.objectives.params);
  const sel = done.filter(c => c.id === selected);
  const traces = [trace(others, 'candidates', GREY, false), trace(pf, 'Pareto front', RED, true)];
  traces.push({type: 'scatter', mode: 'markers', name: 'selected', x: sel.map(c => c.objectives.params),
               y: sel.map(c => c.objectives.accuracy), customdata: sel.map(c => c.id), text: sel.map(hover),
               hovertemplate: '%{text}<extra></extra>',
               marker: {size: 18, color: 'rgba(0,0,0,0)', line: {color: BLUE, width: 3}}});
  Plotly.react('pareto', traces, {
    margin: {l: 55, r: 10, t: 10, b: 45}, uirevision: 'pareto', hovermode: 'closest',
    xaxis: {type: 'log', title: {text: 'parameters (log)'}}, yaxis: {title: {text: 'validation accuracy'}},
    legend: {orientation: 'h', y: -0.18}}, CONFIG);
  onClick('pareto', select);
}

function drawProgress(d) {
  const g = d.generations.filter(s => s.best.accuracy !== undefined);
  const x = g.map(s => s.generation);
  let run = -Infinity;
  const sofar = g.map(s => (run = Math.max(run, s.best.accuracy)));
  const traces = [
    {type: 'scatter', mode: 'lines+markers', name: 'best accuracy', x, y: g.map(s => s.best.accuracy),
     line: {color: RED}},
    {type: 'scatter', mode: 'lines+markers', name: 'mean accuracy', x, y: g.map(s => s.mean.accuracy),
     line: {color: GREY, dash: 'dash'}},
    {type: 'scatter', mode: 'lines', name: 'best so far', x, y: sofar, line: {color: BLUE, width: 1}}];
  const layout = {margin: {l: 55, r: 55, t: 10, b: 45}, uirevision: 'progress',
                  xaxis: {title: {text: 'generation'}, dtick: 1, zeroline: false},
                  yaxis: {title: {text: 'validation accuracy'}},
                  legend: {orientation: 'h', y: -0.18}};
  if (g.some(s => s.mean.params !== undefined)) {
    traces.push({type: 'scatter', mode: 'lines+markers', name: 'mean params', x,
                 y: g.map(s => s.mean.params), yaxis: 'y2', line: {color: GOLD, dash: 'dot'}});
    layout.yaxis2 = {title: {text: 'parameters (log)'}, type: 'log', overlaying: 'y', side: 'right',
                     showgrid: false};
  }
  Plotly.react('progress', traces, layout, CONFIG);
}

function ancestors(d, id) {
  const ids = byId(d), seen = new Map(), edges = [], stack = [id];
  while (stack.length) {
    const i = stack.pop();
    if (seen.has(i) || !ids.has(i)) continue;
    const c = ids.get(i);
    seen.set(i, c);
    for (const p of c.parents || []) { edges.push([p, i]); stack.push(p); }
  }
  return {nodes: [...seen.values()], edges};
}

function drawLineage(d) {
  const title = document.getElementById('lineage-title');
  if (selected === null) { title.textContent = 'Lineage'; Plotly.react('lineage', [], {}, CONFIG); return; }
  const {nodes, edges} = ancestors(d, selected);
  const rows = new Map(), pos = new Map();
  for (const n of nodes.sort((a, b) => a.id - b.id)) {
    const r = rows.get(n.generation) || [];
    r.push(n); rows.set(n.generation, r);
  }
  for (const r of rows.values()) r.forEach((n, k) => pos.set(n.id, [n.generation, k - (r.length - 1) / 2]));
  const ex = [], ey = [];
  for (const [p, c] of edges) {
    if (!pos.has(p) || !pos.has(c)) continue;
    ex.push(pos.get(p)[0], pos.get(c)[0], null); ey.push(pos.get(p)[1], pos.get(c)[1], null);
  }
  const front = new Set(d.pareto);
  const traces = [
    {type: 'scatter', mode: 'lines', x: ex, y: ey, hoverinfo: 'skip', line: {color: '#bcccdc', width: 2},
     showlegend: false},
    {type: 'scatter', mode: 'markers+text', x: nodes.map(n => pos.get(n.id)[0]),
     y: nodes.map(n => pos.get(n.id)[1]), customdata: nodes.map(n => n.id), text: nodes.map(n => '#' + n.id),
     textposition: 'top center', hovertext: nodes.map(hover), hovertemplate: '%{hovertext}<extra></extra>',
     showlegend: false,
     marker: {size: nodes.map(n => (n.id === selected ? 16 : 11)),
              color: nodes.map(n => (n.id === selected ? BLUE : front.has(n.id) ? RED : GREY)),
              line: {color: '#fff', width: 1}}}];
  const n = nodes.length - 1;
  title.textContent = `Lineage of candidate #${selected} (${n} ancestor${n === 1 ? '' : 's'})`;
  Plotly.react('lineage', traces, {
    margin: {l: 30, r: 10, t: 10, b: 45}, hovermode: 'closest',
    xaxis: {title: {text: 'generation'}, dtick: 1, zeroline: false},
    yaxis: {visible: false, zeroline: false}}, CONFIG);
  onClick('lineage', select);
}

function drawGrowth(d) {
  const panel = document.getElementById('growth-panel'), ev = d.growth || [];
  panel.style.display = ev.length ? '' : 'none';
  if (!ev.length) return;
  const px = [], py = [], ax = [], ay = [], curve = d.growth_curve || [];
  for (const e of ev) {
    px.push(e.step, e.step); py.push(e.params_before, e.params_after);
    ax.push(e.step, e.step); ay.push(e.acc_before, e.acc_after);
  }
  if (curve.length) {  // growth runs also log params and val accuracy at every evaluation
    const pts = curve.map(c => ({step: c.step, params: c.params, acc: c.val_accuracy}));
    for (const e of ev) pts.push({step: e.step, params: e.params_after, acc: e.acc_after, after: true});
    pts.sort((a, b) => a.step - b.step || (a.after ? 1 : 0) - (b.after ? 1 : 0));
    px.length = py.length = ax.length = ay.length = 0;
    for (const p of pts) { px.push(p.step); py.push(p.params); ax.push(p.step); ay.push(p.acc); }
  }
  const text = ev.map(e => `step ${e.step}: ${esc(e.operator)}<br>params ${fmt(e.params_before)} → ` +
                           `${fmt(e.params_after)}<br>accuracy ${fmt(e.acc_before)} → ${fmt(e.acc_after)}`);
  const traces = [
    {type: 'scatter', mode: 'lines', name: 'params', x: px, y: py, line: {color: GOLD, shape: 'hv'}},
    {type: 'scatter', mode: 'lines', name: 'accuracy', x: ax, y: ay, yaxis: 'y2', line: {color: RED}},
    {type: 'scatter', mode: 'markers', name: 'growth events', x: ev.map(e => e.step),
     y: ev.map(e => e.params_after), text, hovertemplate: '%{text}<extra></extra>',
     marker: {symbol: 'triangle-up', size: 11, color: BLUE}}];
  Plotly.react('growth', traces, {
    margin: {l: 60, r: 55, t: 10, b: 45}, uirevision: 'growth', legend: {orientation: 'h', y: -0.18},
    xaxis: {title: {text: 'training step'}}, yaxis: {title: {text: 'parameters'}},
    yaxis2: {title: {text: 'accuracy'}, overlaying: 'y', side: 'right', showgrid: false},
    shapes: ev.map(e => ({type: 'line', xref: 'x', yref: 'paper', x0: e.step, x1: e.step, y0: 0, y1: 1,
                          line: {color: '#bcccdc', dash: 'dot', width: 1}}))}, CONFIG);
}

function columns(d) {
  return [['id', 'id'], ['generation', 'gen'], ['status', 'status'], ['operator', 'operator'],
          ['parents', 'parents'], ...d.objectives.map(o => [o, o]), ['pareto', 'Pareto']];
}
function cell(d, c, key, front) {
  if (key === 'parents') return (c.parents || []).join(', ');
  if (key === 'pareto') return front.has(c.id) ? 1 : 0;
  if (key in c) return c[key];
  return c.objectives ? c.objectives[key] : undefined;
}
function compare(a, b) {
  const na = a === null || a === undefined || a === '', nb = b === null || b === undefined || b === '';
  if (na || nb) return na - nb;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), undefined, {numeric: true});
}
function drawTable(d) {
  const cols = columns(d), front = new Set(d.pareto), table = document.getElementById('candidates');
  const head = '<tr>' + cols.map(([k, label]) => {
    const arrow = k === sortKey ? (sortDir > 0 ? ' ▲' : ' ▼') : '';
    const aria = k === sortKey ? (sortDir > 0 ? 'ascending' : 'descending') : 'none';
    return `<th data-key="${esc(k)}" aria-sort="${aria}">${esc(label)}${arrow}</th>`;
  }).join('') + '</tr>';
  table.tHead.innerHTML = head;
  for (const th of table.tHead.querySelectorAll('th')) {
    th.onclick = () => {
      const k = th.dataset.key;
      sortDir = k === sortKey ? -sortDir : 1;
      sortKey = k;
      drawTable(DATA);
    };
  }
  const rows = d.candidates.slice().sort((a, b) =>
    sortDir * compare(cell(d, a, sortKey, front), cell(d, b, sortKey, front)) || a.id - b.id);
  table.tBodies[0].innerHTML = rows.map(c => {
    const cls = [c.id === selected ? 'selected' : '', front.has(c.id) ? 'pareto' : ''].join(' ');
    const tds = cols.map(([k]) => {
      const v = cell(d, c, k, front);
      const shown = k === 'pareto' ? (v ? '★' : '') : k === 'status' ? v : fmt(v);
      const raw = typeof v === 'number' ? ` data-value="${v}"` : '';
      const sc = k === 'status' ? ` s-${v}` : '';
      return `<td class="k-${esc(k)}${sc}" data-key="${esc(k)}"${raw}>${esc(shown)}</td>`;
    }).join('');
    return `<tr class="${cls}" data-id="${c.id}" title="${esc(c.reason || '')}">${tds}</tr>`;
  }).join('');
  for (const tr of table.tBodies[0].rows) tr.onclick = () => select(Number(tr.dataset.id));
}

function drawFinals(d) {
  const panel = document.getElementById('finals-panel');
  panel.style.display = d.finals.length ? '' : 'none';
  document.getElementById('finals').innerHTML =
    '<tr><th>id</th><th>params</th><th>val acc</th><th>test acc</th></tr>' + d.finals.map(f =>
      `<tr><td>${f.id}</td><td>${fmt((f.objectives || {}).params)}</td><td>${fmt(f.val_accuracy)}</td>` +
      `<td>${fmt(f.test_accuracy)}</td></tr>`).join('');
}

function setStatus(d, error) {
  const st = document.getElementById('status');
  st.classList.toggle('error', !!error);
  if (error) { st.textContent = `${error} (retrying every ${POLL_MS / 1000} s)`; return; }
  const counts = Object.entries(d.counts).filter(([, v]) => v).map(([k, v]) => `${k.toLowerCase()} ${v}`);
  const when = LIVE ? `updated ${new Date().toLocaleTimeString()}` : `report written ${WRITTEN}`;
  st.dataset.candidates = String(d.candidates.length);
  st.textContent = `${d.candidates.length} candidates (${counts.join(', ')}) · ` +
                   `Pareto front ${d.pareto.length} · ${when}`;
}

function render() {
  const d = DATA;
  selected = defaultSelection(d);
  document.getElementById('run-dir').textContent = d.run_dir;
  const meta = document.getElementById('meta'), da = d.data || {}, t = d.teacher;
  const parts = [da.name ? `data ${da.name} (train ${da.train}, val ${da.val}, test ${da.test}, ` +
                           `${da.num_classes} classes)` : 'data ?'];
  parts.push(!t ? 'no teacher' : `teacher ${t.arch || t.name || 'custom'}` +
             (t.params ? `, ${fmt(t.params)} params` : '') +
             (Number.isFinite(t.test_accuracy) ? `, test accuracy ${fmt(t.test_accuracy)}` : ''));
  parts.push(`objectives ${d.objectives.join(', ')}`);
  meta.textContent = parts.join(' · ');
  meta.title = JSON.stringify({data: d.data, teacher: d.teacher}, null, 1);  // the rest on hover
  drawPareto(d); drawProgress(d); drawLineage(d); drawGrowth(d); drawTable(d); drawFinals(d);
}
function select(id) {
  selected = id;
  drawPareto(DATA); drawLineage(DATA); drawTable(DATA);
}

async function poll() {
  try {
    const r = await fetch('/api/data', {cache: 'no-store'});
    const text = await r.text();
    if (!r.ok) throw new Error(JSON.parse(text).error || r.statusText);
    if (text !== lastText) { DATA = JSON.parse(text); lastText = text; render(); }
    setStatus(DATA, null);
  } catch (e) {
    setStatus(DATA, 'cannot read the run: ' + e.message);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

if (LIVE) { poll(); } else { DATA = EMBEDDED; render(); setStatus(DATA, null); }
"""
