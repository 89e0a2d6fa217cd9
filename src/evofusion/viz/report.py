"""Reports of a run: rows for the terminal table, a JSON document for scripts, and report.html.

The HTML report embeds plotly.js from the installed plotly package (no CDN), so it opens offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from evofusion.objectives.base import ObjectiveSet
from evofusion.store import RunStore


def _objectives(store: RunStore) -> ObjectiveSet:
    cfg = store.get_meta("config")
    return ObjectiveSet.from_names(cfg["objectives"]["names"], cfg["objectives"]["constraints"],
                                   cfg["objectives"]["weights"])


def report_data(store: RunStore) -> dict[str, Any]:
    """Every candidate (id, generation, status, parents, operator, objectives) plus the Pareto ids."""
    from evofusion.engine.study import pareto_ids

    objectives = _objectives(store)
    cands = [{"id": r["id"], "generation": r["generation"], "status": r["status"], "parents": r["parents"],
              "operator": r["operator"], "objectives": r["objective_values"], "reason": r["reason"],
              "genome_hash": r["genome_hash"], "seconds": r["seconds"]} for r in store.candidates()]
    finals = [{"id": f["candidate_id"], "val_accuracy": f["val_accuracy"], "test_accuracy": f["test_accuracy"],
               "objectives": f["objective_values"]} for f in store.finals()]
    best = max(finals, key=lambda f: f["val_accuracy"])["id"] if finals else None
    return {"run_dir": str(store.dir), "objectives": objectives.names, "candidates": cands,
            "pareto": pareto_ids(store, objectives), "finals": finals, "best": best,
            "teacher": store.get_meta("teacher"), "data": store.get_meta("data"),
            "counts": {s: sum(1 for c in cands if c["status"] == s)
                       for s in ("COMPLETE", "FAILED", "INFEASIBLE", "PENDING")}}


def write_html_report(store: RunStore, out: str | Path | None = None) -> Path:
    """Pareto front (accuracy vs params, hover = candidate) and best accuracy per generation."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs
    from plotly.subplots import make_subplots

    data = report_data(store)
    out = Path(out) if out else store.dir / "report.html"
    done = [c for c in data["candidates"] if c["status"] == "COMPLETE"]
    pareto = set(data["pareto"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Validation accuracy vs parameters",
                                                        "Best validation accuracy per generation"))
    for name, rows, color in (("candidates", [c for c in done if c["id"] not in pareto], "#9aa5b1"),
                              ("Pareto front", sorted((c for c in done if c["id"] in pareto),
                                                      key=lambda c: c["objectives"]["params"]), "#d1495b")):
        fig.add_trace(go.Scatter(
            x=[c["objectives"]["params"] for c in rows], y=[c["objectives"]["accuracy"] for c in rows],
            mode="markers+lines" if name == "Pareto front" else "markers", name=name,
            marker={"color": color, "size": 8},
            text=[f"#{c['id']} gen {c['generation']} {c['operator'] or 'random'}" for c in rows],
            hovertemplate="%{text}<br>params %{x}<br>acc %{y:.4f}<extra></extra>"), row=1, col=1)
    gens = sorted({c["generation"] for c in done})
    best, run = [], 0.0
    for g in gens:
        run = max([run] + [c["objectives"]["accuracy"] for c in done if c["generation"] == g])
        best.append(run)
    fig.add_trace(go.Scatter(x=gens, y=best, mode="lines+markers", name="best so far"), row=1, col=2)
    fig.update_xaxes(type="log", title_text="parameters", row=1, col=1)
    fig.update_xaxes(title_text="generation", row=1, col=2)
    fig.update_layout(height=480, width=1100, template="plotly_white")
    rows = "".join(
        f"<tr><td>{f['id']}</td><td>{int(f['objectives'].get('params', 0))}</td><td>{f['val_accuracy']:.4f}</td>"
        f"<td>{f['test_accuracy']:.4f}</td></tr>" for f in data["finals"])
    counts = ", ".join(f"{k.lower()} {v}" for k, v in data["counts"].items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>EvoFusion report</title>
<script>{get_plotlyjs()}</script></head><body style="font-family:sans-serif">
<h1>EvoFusion run {html.escape(str(store.dir))}</h1>
<p>Data: {html.escape(json.dumps(data['data']))}<br>Teacher: {html.escape(json.dumps(data['teacher']))}<br>
Candidates: {counts}. Pareto ids: {data['pareto']}</p>
{fig.to_html(full_html=False, include_plotlyjs=False)}
<h2>Final fine-tuned winners</h2><table border=1 cellpadding=4><tr><th>id</th><th>params</th>
<th>val acc</th><th>test acc</th></tr>{rows}</table></body></html>"""
    out.write_text(page)
    return out
