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
function plotted(d, key = 'params') {
  return d.candidates.filter(c => c.status === 'COMPLETE' && Number.isFinite(c.objectives[key])
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

const LOG_METRICS = new Set(['params', 'flops', 'macs', 'latency_ms', 'latency_ort_ms', 'size_bytes']);
// the Pareto plot's x axis: the run's first objective other than accuracy (params when none)
function paretoAxis(d) {
  const key = (d.objectives || []).find(o => o !== 'accuracy') || 'params';
  const log = LOG_METRICS.has(key);
  return {key, axis: {type: log ? 'log' : 'linear', title: {text: key + (log ? ' (log)' : '')},
                      ...(log ? {tickformat: '~s', exponentformat: 'SI'} : {})}};
}

function drawPareto(d) {
  const {key, axis} = paretoAxis(d), done = plotted(d, key), front = new Set(d.pareto);
  const trace = (rows, name, color, lines) => ({
    type: 'scatter', mode: lines ? 'lines+markers' : 'markers', name,
    x: rows.map(c => c.objectives[key]), y: rows.map(c => c.objectives.accuracy),
    customdata: rows.map(c => c.id), text: rows.map(hover), hovertemplate: '%{text}<extra></extra>',
    marker: {color, size: lines ? 10 : 8, line: {color: '#fff', width: 1}}, line: {color, width: 2}});
  const others = done.filter(c => !front.has(c.id));
  const pf = done.filter(c => front.has(c.id)).sort((a, b) => a.objectives[key] - b.objectives[key]);
  const sel = done.filter(c => c.id === selected);
  const traces = [trace(others, 'candidates', GREY, false), trace(pf, 'Pareto front', RED, true)];
  traces.push({type: 'scatter', mode: 'markers', name: 'selected', x: sel.map(c => c.objectives[key]),
               y: sel.map(c => c.objectives.accuracy), customdata: sel.map(c => c.id), text: sel.map(hover),
               hovertemplate: '%{text}<extra></extra>',
               marker: {size: 18, color: 'rgba(0,0,0,0)', line: {color: BLUE, width: 3}}});
  Plotly.react('pareto', traces, {
    margin: {l: 55, r: 10, t: 10, b: 45}, uirevision: 'pareto', hovermode: 'closest',
    xaxis: axis, yaxis: {title: {text: 'validation accuracy'}},
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
                     showgrid: false, tickformat: '~s', exponentformat: 'SI'};
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
