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
const RUN_COLOURS = [RED, BLUE, GOLD, '#66a182', '#8d6a9f', '#00798c', '#6c757d'];
let ARCH = {};  // layer tables by candidate id: embedded in a report, fetched on demand when live
function sizeKey(d) { return (d.objectives || []).find(o => o !== 'accuracy') || 'params'; }
function logAxis(key, title) {
  const log = LOG_METRICS.has(key);
  return {type: log ? 'log' : 'linear', title: {text: (title || key) + (log ? ' (log)' : '')},
          ...(log ? {tickformat: '~s', exponentformat: 'SI'} : {})};
}
// the Pareto plot's x axis: the run's first objective other than accuracy (params when none); when
// every candidate has the same value (a weight-evolution run: one architecture) the generation
function paretoAxis(d) {
  const key = sizeKey(d), values = new Set(plotted(d, key).map(c => c.objectives[key]));
  if (values.size === 1) {
    const anc = d.candidates.some(c => c.generation < 0);
    return {key, byGeneration: true, value: [...values][0], x: c => c.generation,
            axis: {title: {text: 'generation' + (anc ? ' (-1 = back-propagation ancestors)' : '')}, dtick: 1}};
  }
  return {key, byGeneration: false, x: c => c.objectives[key], axis: logAxis(key)};
}

function drawPareto(d) {
  const ax = paretoAxis(d), key = ax.key, done = plotted(d, key), front = new Set(d.pareto);
  document.getElementById('pareto-title').textContent = ax.byGeneration
    ? `Validation accuracy by generation (one architecture: ${fmt(ax.value)} ${key})`
    : `Pareto front: validation accuracy vs ${key}`;
  const trace = (rows, name, color, lines) => ({
    type: 'scatter', mode: lines ? 'lines+markers' : 'markers', name,
    x: rows.map(ax.x), y: rows.map(c => c.objectives.accuracy),
    customdata: rows.map(c => c.id), text: rows.map(hover), hovertemplate: '%{text}<extra></extra>',
    marker: {color, size: lines ? 10 : 8, line: {color: '#fff', width: 1}}, line: {color, width: 2}});
  const others = done.filter(c => !front.has(c.id));
  const pf = done.filter(c => front.has(c.id)).sort((a, b) => ax.x(a) - ax.x(b));
  const sel = done.filter(c => c.id === selected);
  const traces = [trace(others, 'candidates', GREY, false),
                  trace(pf, ax.byGeneration ? 'best' : 'Pareto front', RED, !ax.byGeneration)];
  traces.push({type: 'scatter', mode: 'markers', name: 'selected', x: sel.map(ax.x),
               y: sel.map(c => c.objectives.accuracy), customdata: sel.map(c => c.id), text: sel.map(hover),
               hovertemplate: '%{text}<extra></extra>',
               marker: {size: 18, color: 'rgba(0,0,0,0)', line: {color: BLUE, width: 3}}});
  Plotly.react('pareto', traces, {
    margin: {l: 55, r: 10, t: 10, b: 45}, uirevision: 'pareto', hovermode: 'closest',
    xaxis: ax.axis, yaxis: {title: {text: 'validation accuracy'}},
    legend: {orientation: 'h', y: -0.18}}, CONFIG);
  onClick('pareto', select);
}

function drawHV(d) {
  const hv = d.hv || {history: [], key: 'params', ref: [1, 1]}, h = hv.history || [];
  const log = LOG_METRICS.has(hv.key), timed = h.filter(p => p.seconds !== null && p.seconds !== undefined);
  document.getElementById('hv-title').textContent = hv.best_accuracy
    ? 'Best validation accuracy so far (one architecture, so no hypervolume)'
    : `Hypervolume of (validation error, ${log ? 'log10 ' : ''}${hv.key}), reference (${fmt(hv.ref[0])}, ${fmt(hv.ref[1])})`;
  const last = h.length ? h[h.length - 1].hv : 0;
  Plotly.react('hv', [
    {type: 'scatter', mode: 'lines', name: 'by evaluations', x: h.map(p => p.n), y: h.map(p => p.hv),
     line: {color: RED, shape: 'hv'}, hovertemplate: '%{x} evaluations: %{y:.4f}<extra></extra>'},
    {type: 'scatter', mode: 'lines', name: 'by wall time', x: timed.map(p => p.seconds / 60),
     y: timed.map(p => p.hv), xaxis: 'x2', yaxis: 'y2', line: {color: BLUE, shape: 'hv'},
     hovertemplate: '%{x:.1f} min: %{y:.4f}<extra></extra>'}], {
    margin: {l: 55, r: 10, t: 10, b: 45}, uirevision: 'hv', showlegend: false,
    xaxis: {domain: [0, 0.46], title: {text: 'evaluations'}}, yaxis: {title: {text: `${hv.best_accuracy ? 'best accuracy' : 'hypervolume'} (now ${fmt(last)})`}},
    xaxis2: {domain: [0.54, 1], title: {text: 'wall time (min)'}, anchor: 'y2'},
    yaxis2: {anchor: 'x2', matches: 'y'}}, CONFIG);
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

function svgEl(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function message(el, text) { el.innerHTML = `<p class="muted">${esc(text)}</p>`; }

// one polyline per COMPLETE candidate across genome features and objectives (axes with one value
// only are left out); red = Pareto front, blue = selected; click a line to select its candidate
function drawParcoords(d) {
  const el = document.getElementById('parcoords');
  const done = d.candidates.filter(c => c.status === 'COMPLETE');
  const fkeys = [];
  for (const c of done) for (const k of Object.keys(c.features || {})) if (!fkeys.includes(k)) fkeys.push(k);
  const dims = [...fkeys.map(k => ({label: k, get: c => (c.features || {})[k], log: false})),
                ...d.objectives.map(o => ({label: o, get: c => c.objectives[o], log: LOG_METRICS.has(o), obj: true}))]
    .filter(dim => new Set(done.map(dim.get).filter(Number.isFinite)).size > 1);
  document.getElementById('parcoords-title').textContent =
    `Parallel coordinates: ${dims.filter(x => !x.obj).length} genome features, ${dims.filter(x => x.obj).length} objectives`;
  el.innerHTML = '';
  if (done.length < 2 || dims.length < 2) {
    message(el, 'nothing to compare: fewer than two COMPLETE candidates, or they differ in at most one genome feature or objective');
    return;
  }
  const W = Math.max(el.clientWidth || 600, 64 * dims.length), H = 380, L = 40, R = 40, T = 34, B = 22;
  const t = (dim, v) => (dim.log ? Math.log10(Math.max(v, 1e-12)) : v);
  for (const dim of dims) {
    const vals = done.map(dim.get).filter(Number.isFinite).map(v => t(dim, v));
    dim.lo = Math.min(...vals); dim.hi = Math.max(...vals);
  }
  const xs = dims.map((_, i) => L + i * (W - L - R) / (dims.length - 1));
  const y = (dim, v) => T + (1 - (t(dim, v) - dim.lo) / ((dim.hi - dim.lo) || 1)) * (H - T - B);
  const svg = svgEl('svg', {width: W, height: H, role: 'img'}), front = new Set(d.pareto);
  const rows = done.slice().sort((a, b) => (front.has(a.id) - front.has(b.id)) || ((a.id === selected) - (b.id === selected)));
  for (const c of rows) {
    const pts = dims.map((dim, i) => [i, dim, dim.get(c)]).filter(([, , v]) => Number.isFinite(v))
      .map(([i, dim, v]) => `${xs[i].toFixed(1)},${y(dim, v).toFixed(1)}`);
    const line = svgEl('polyline', {points: pts.join(' '), 'data-id': c.id, stroke: front.has(c.id) ? RED : GREY,
                                    class: 'pc-line' + (c.id === selected ? ' sel' : '')});
    line.appendChild(svgEl('title', {}, hover(c).replace(/<br>/g, '\n').replace(/<\/?b>/g, '')));
    line.addEventListener('click', () => select(c.id));
    svg.appendChild(line);
  }
  dims.forEach((dim, i) => {
    svg.appendChild(svgEl('line', {x1: xs[i], x2: xs[i], y1: T, y2: H - B, class: 'pc-axis'}));
    const anchor = i === 0 ? 'start' : i === dims.length - 1 ? 'end' : 'middle';
    svg.appendChild(svgEl('text', {x: xs[i], y: 12, 'text-anchor': anchor, class: 'pc-label'}, dim.label));
    const back = v => (dim.log ? 10 ** v : v);
    svg.appendChild(svgEl('text', {x: xs[i], y: T - 6, 'text-anchor': anchor, class: 'muted'}, fmt(back(dim.hi))));
    svg.appendChild(svgEl('text', {x: xs[i], y: H - 6, 'text-anchor': anchor, class: 'muted'}, fmt(back(dim.lo))));
  });
  el.appendChild(svg);
}

// the selected candidate's layers left to right: box height ~ log(channels), params and FLOPs below
function drawArch(d) {
  const el = document.getElementById('arch'), title = document.getElementById('arch-title');
  if (selected === null) { title.textContent = 'Architecture'; el.innerHTML = ''; return; }
  const a = ARCH[selected];
  if (!a) {
    title.textContent = `Architecture of candidate #${selected}`;
    if (LIVE && a !== null) {
      ARCH[selected] = null;  // one request per candidate
      const id = selected;
      fetch('/api/arch/' + id, {cache: 'no-store'}).then(r => (r.ok ? r.json() : null)).then(t => {
        ARCH[id] = t; if (selected === id) drawArch(DATA);
      }).catch(() => {});
    }
    message(el, LIVE && a !== null ? 'drawing ...' : 'no drawing for this candidate (not built here)');
    return;
  }
  title.textContent = `Architecture of candidate #${selected}: ${a.layers.length} layers, ` +
                      `${fmt(a.params)} params, ${fmt(a.flops)} FLOPs`;
  const boxes = [{detail: 'input', shape: a.input, params: 0, flops: 0, then: [], type: 'input'}, ...a.layers];
  const maxc = Math.max(...boxes.map(b => b.shape[0] || 1)), BW = 112, GAP = 16, H = 250, TOP = 8, MAXH = 120;
  const svg = svgEl('svg', {width: boxes.length * (BW + GAP) + 10, height: H, role: 'img'});
  boxes.forEach((b, i) => {
    const x = 5 + i * (BW + GAP), h = 18 + MAXH * Math.log2((b.shape[0] || 1) + 1) / Math.log2(maxc + 1), yb = TOP + (MAXH + 18 - h) / 2;
    const cls = 'arch-box' + (b.type.includes('Pool') ? ' pool' : b.type === 'Linear' ? ' linear' : '');
    const g = svgEl('g', {class: 'arch-layer', 'data-name': b.name || 'input'});
    const rect = svgEl('rect', {x, y: yb, width: BW, height: h, rx: 4, class: cls});
    rect.appendChild(svgEl('title', {}, `${b.name || 'input'}: ${b.detail}${b.then.length ? ' + ' + b.then.join(', ') : ''}`));
    g.appendChild(rect);
    if (i) svg.appendChild(svgEl('line', {x1: x - GAP, x2: x, y1: TOP + MAXH / 2 + 9, y2: TOP + MAXH / 2 + 9, stroke: '#9aa5b1'}));
    const lines = [b.detail, b.shape.join('×'), ...(b.type === 'input' ? [] : [`${fmt(b.params)} params`, `${fmt(b.flops)} FLOPs`]),
                   b.then.filter(k => !k.startsWith('Batch')).join(' ').slice(0, 18)];
    lines.forEach((text, k) => g.appendChild(svgEl('text', {x: x + BW / 2, y: TOP + MAXH + 36 + 14 * k, 'text-anchor': 'middle',
                                                          class: k > 1 ? 'muted' : ''}, text)));
    svg.appendChild(g);
  });
  el.innerHTML = '';
  el.appendChild(svg);
}

// the selected candidate's training: loss and validation accuracy by step along its lineage (a
// genome promoted through rungs is one curve, its rows continuing one another)
function drawCurve(d) {
  const ids = byId(d), c = ids.get(selected), title = document.getElementById('curve-title');
  const rows = !c ? [] : d.candidates.filter(r => r.genome_hash === c.genome_hash && r.train && r.train.curve &&
                                                (r.train.steps_total || 0) <= (c.train.steps_total || Infinity))
    .sort((a, b) => (a.train.steps_total || 0) - (b.train.steps_total || 0));
  const gc = d.growth_curve || [];
  if (!rows.length && gc.length) {  // a grow run: one live student, its validation accuracy by step
    title.textContent = 'Training curve of the grown student (validation accuracy and params by step)';
    Plotly.react('curve', [
      {type: 'scatter', mode: 'lines+markers', name: 'validation accuracy', x: gc.map(g => g.step),
       y: gc.map(g => g.val_accuracy), line: {color: RED}, marker: {size: 4}},
      {type: 'scatter', mode: 'lines', name: 'params', x: gc.map(g => g.step), y: gc.map(g => g.params),
       yaxis: 'y2', line: {color: GOLD, shape: 'hv'}}], {
      margin: {l: 55, r: 55, t: 10, b: 45}, legend: {orientation: 'h', y: -0.18},
      xaxis: {title: {text: 'training step'}}, yaxis: {title: {text: 'validation accuracy'}},
      yaxis2: {title: {text: 'parameters'}, overlaying: 'y', side: 'right', showgrid: false}}, CONFIG);
    return;
  }
  if (!rows.length) {
    title.textContent = c ? `Training curve of candidate #${selected}: none recorded` : 'Training curve';
    Plotly.react('curve', [], {margin: {t: 10}, xaxis: {visible: false}, yaxis: {visible: false}}, CONFIG);
    return;
  }
  const lx = [], ly = [], vx = [], vy = [], bounds = [];
  for (const r of rows) {
    const off = (r.train.steps_total || r.train.steps || 0) - (r.train.steps || 0);
    if (off) bounds.push(off);
    for (const [s, v] of r.train.curve.loss || []) { lx.push(off + s); ly.push(v); }
    for (const [s, v] of r.train.curve.val || []) { vx.push(off + s); vy.push(v); }
  }
  title.textContent = `Training curve of candidate #${selected}` +
                      (rows.length > 1 ? ` (${rows.length} rungs, rows ${rows.map(r => '#' + r.id).join(', ')})` : '');
  Plotly.react('curve', [
    {type: 'scatter', mode: 'lines', name: 'training loss', x: lx, y: ly, line: {color: GOLD}},
    {type: 'scatter', mode: 'lines+markers', name: 'validation accuracy', x: vx, y: vy, yaxis: 'y2',
     line: {color: RED}, marker: {size: 5}}], {
    margin: {l: 55, r: 55, t: 10, b: 45}, legend: {orientation: 'h', y: -0.18},
    xaxis: {title: {text: 'training step (along the lineage)'}}, yaxis: {title: {text: 'loss'}},
    yaxis2: {title: {text: 'validation accuracy'}, overlaying: 'y', side: 'right', showgrid: false,
             range: [Math.max(0, Math.min(...vy) - 0.05), Math.min(1, Math.max(...vy) + 0.05)]},
    shapes: bounds.map(b => ({type: 'line', xref: 'x', yref: 'paper', x0: b, x1: b, y0: 0, y1: 1,
                              line: {color: '#bcccdc', dash: 'dot', width: 1}}))}, CONFIG);
}

// two or more runs: Pareto fronts and hypervolume over wall time on one reference point
function drawCompare(d) {
  const runs = d.compare || [], panel = document.getElementById('compare-panel');
  panel.style.display = runs.length > 1 ? '' : 'none';
  if (runs.length < 2) return;
  document.getElementById('compare-title').textContent = `Run comparison (${runs.length} runs)`;
  const name = r => r.run_dir.split('/').filter(Boolean).slice(-2).join('/');
  Plotly.react('compare-pareto', runs.map((r, i) => ({
    type: 'scatter', mode: 'lines+markers', name: name(r), x: r.pareto.map(p => p.x), y: r.pareto.map(p => p.accuracy),
    line: {color: RUN_COLOURS[i % RUN_COLOURS.length], shape: 'hv'},
    text: r.pareto.map(p => `${esc(name(r))} #${p.id}`), hovertemplate: '%{text}<br>%{x}, %{y:.4f}<extra></extra>'})), {
    margin: {l: 55, r: 10, t: 10, b: 45}, legend: {orientation: 'h', y: -0.2},
    xaxis: logAxis(runs[0].key), yaxis: {title: {text: 'validation accuracy (Pareto front)'}}}, CONFIG);
  Plotly.react('compare-hv', runs.map((r, i) => {
    const h = r.hv.filter(p => p.seconds !== null && p.seconds !== undefined);
    return {type: 'scatter', mode: 'lines', name: name(r), x: h.map(p => p.seconds / 60), y: h.map(p => p.hv),
            line: {color: RUN_COLOURS[i % RUN_COLOURS.length], shape: 'hv'}};
  }), {margin: {l: 55, r: 10, t: 10, b: 45}, legend: {orientation: 'h', y: -0.2},
       xaxis: {title: {text: 'wall time (min)'}}, yaxis: {title: {text: `hypervolume, reference (${runs[0].ref.map(fmt).join(', ')})`}}}, CONFIG);
  const last = r => (r.hv.length ? r.hv[r.hv.length - 1] : {hv: 0, n: 0, seconds: null});
  document.getElementById('compare-table').innerHTML =
    '<tr><th>run</th><th>kind</th><th>evaluated</th><th>complete</th><th>Pareto</th><th>hypervolume</th><th>minutes</th></tr>' +
    runs.map(r => `<tr><td>${esc(r.run_dir)}</td><td>${esc(r.kind || '')}</td><td>${Object.values(r.counts).reduce((a, b) => a + b, 0)}</td>` +
      `<td>${r.counts.COMPLETE}</td><td>${r.pareto.length}</td><td>${fmt(last(r).hv)}</td>` +
      `<td>${last(r).seconds === null ? '' : fmt(last(r).seconds / 60)}</td></tr>`).join('');
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
  const sizes = ['train', 'val', 'test'].filter(k => Number.isFinite(da[k])).map(k => `${k} ${da[k]}`);
  if (Number.isFinite(da.num_classes)) sizes.push(`${da.num_classes} classes`);
  const parts = [(d.kind ? `${d.kind} run · ` : '') +
                 (da.name ? `data ${da.name}` + (sizes.length ? ` (${sizes.join(', ')})` : '') : 'data ?')];
  parts.push(!t ? 'no teacher' : `teacher ${t.arch || t.name || 'custom'}` +
             (t.params ? `, ${fmt(t.params)} params` : '') +
             (Number.isFinite(t.test_accuracy) ? `, test accuracy ${fmt(t.test_accuracy)}` : ''));
  parts.push(`objectives ${d.objectives.join(', ')}`);
  meta.textContent = parts.join(' · ');
  meta.title = JSON.stringify({data: d.data, teacher: d.teacher}, null, 1);  // the rest on hover
  ARCH = Object.assign({}, d.arch || {}, ARCH);
  drawPareto(d); drawHV(d); drawProgress(d); drawParcoords(d); drawLineage(d); drawCurve(d); drawArch(d);
  drawGrowth(d); drawCompare(d); drawTable(d); drawFinals(d);
}
function select(id) {
  selected = id;
  drawPareto(DATA); drawParcoords(DATA); drawLineage(DATA); drawCurve(DATA); drawArch(DATA); drawTable(DATA);
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
