"""Reports of a run: rows for the terminal table, a JSON document for scripts, and report.html.

The HTML report embeds plotly.js from the installed plotly package (no CDN), so it opens offline.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evofusion.objectives.base import ObjectiveSet
from evofusion.store import RunStore


def _objectives(store: RunStore) -> ObjectiveSet:
    cfg = store.config()
    return ObjectiveSet.from_names(cfg["objectives"]["names"], cfg["objectives"]["constraints"],
                                   cfg["objectives"]["weights"])


def candidate_rows(store: RunStore) -> list[dict[str, Any]]:
    """Every candidate as a plain dict: id, generation, status, parents, operator, objectives, genome."""
    return [{"id": r["id"], "generation": r["generation"], "status": r["status"], "parents": r["parents"],
             "operator": r["operator"], "objectives": r["objective_values"], "reason": r["reason"],
             "genome_hash": r["genome_hash"], "seconds": r["seconds"], "genome": r["genome"]}
            for r in store.candidates()]


def report_data(store: RunStore) -> dict[str, Any]:
    """Every candidate (id, generation, status, parents, operator, objectives, genome), the Pareto ids,
    the finals, best and mean of each objective per generation, and growth events (if any)."""
    from evofusion.objectives.selection import pareto_ids

    objectives = _objectives(store)
    cands = candidate_rows(store)
    finals = [{"id": f["candidate_id"], "val_accuracy": f["val_accuracy"], "test_accuracy": f["test_accuracy"],
               "objectives": f["objective_values"]} for f in store.finals()]
    best = max(finals, key=lambda f: f["val_accuracy"])["id"] if finals else None
    return {"run_dir": str(store.dir), "objectives": objectives.names, "candidates": cands,
            "pareto": pareto_ids(store, objectives), "finals": finals, "best": best,
            "teacher": store.get_meta("teacher"), "data": store.get_meta("data"),
            "counts": {s: sum(1 for c in cands if c["status"] == s)
                       for s in ("COMPLETE", "FAILED", "INFEASIBLE", "PENDING")},
            "directions": {o.name: o.direction for o in objectives.objectives},
            "generations": generation_stats(cands, objectives), "growth": growth_events(store),
            "growth_curve": store.growth_curve(), "pruning": store.get_meta("prune_report")}


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def generation_stats(cands: list[dict[str, Any]], objectives: ObjectiveSet) -> list[dict[str, Any]]:
    """Per generation: candidate counts and the best and mean of each objective over COMPLETE ones."""
    by_gen: dict[int, list[dict[str, Any]]] = {}
    for c in cands:
        by_gen.setdefault(c["generation"], []).append(c)
    out = []
    for g in sorted(by_gen):
        done = [c for c in by_gen[g] if c["status"] == "COMPLETE"]
        best, mean = {}, {}
        for o in objectives.objectives:
            vals = [float(c["objectives"][o.name]) for c in done if _finite(c["objectives"].get(o.name))]
            if vals:
                best[o.name] = max(vals) if o.direction == "max" else min(vals)
                mean[o.name] = sum(vals) / len(vals)
        out.append({"generation": g, "candidates": len(by_gen[g]), "complete": len(done),
                    "best": best, "mean": mean})
    return out


def growth_events(store: RunStore) -> list[dict[str, Any]]:
    """Rows of the ``growth_events`` table (step, operator, params_before, params_after, acc_before,
    acc_after, and any other columns) ordered by step; [] when the run has no such table."""
    conn = store.conn
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='growth_events'").fetchone() is None:
        return []
    cols = [r[1] for r in conn.execute("PRAGMA table_info(growth_events)")]
    order = " ORDER BY step, rowid" if "step" in cols else " ORDER BY rowid"
    return [{k: v for k, v in zip(cols, row, strict=True) if not isinstance(v, bytes)}
            for row in conn.execute("SELECT * FROM growth_events" + order)]


def lineage(cands: list[dict[str, Any]], cid: int) -> dict[str, Any]:
    """Ancestors of candidate ``cid`` through ``parents``: every ancestor once (``nodes``, newest first),
    the parent -> child ``edges``, and a nested ``tree`` in which an ancestor reached a second time
    (crossover of relatives) is a ``{"id": .., "ref": true}`` leaf. KeyError for an unknown id."""
    by_id = {c["id"]: c for c in cands}
    if cid not in by_id:
        raise KeyError(cid)
    seen: dict[int, dict[str, Any]] = {}
    edges: list[list[int]] = []
    stack = [cid]
    while stack:
        i = stack.pop()
        if i in seen or i not in by_id:
            continue
        c = by_id[i]
        seen[i] = {k: c[k] for k in ("id", "generation", "status", "operator", "parents", "objectives")}
        for p in dict.fromkeys(c["parents"]):  # a crossover of a parent with itself is one edge
            edges.append([p, i])
            stack.append(p)
    expanded: set[int] = set()

    def tree(i: int) -> dict[str, Any]:
        if i in expanded or i not in by_id:
            return {"id": i, "ref": True}
        expanded.add(i)
        c = by_id[i]
        return {"id": i, "generation": c["generation"], "operator": c["operator"],
                "parents": [tree(p) for p in c["parents"]]}

    nodes = sorted(seen.values(), key=lambda n: (-n["generation"], n["id"]))
    return {"id": cid, "nodes": nodes, "edges": edges, "tree": tree(cid)}


def write_html_report(store: RunStore, out: str | Path | None = None) -> Path:
    """One self-contained HTML file (data embedded as JSON, plotly.js inlined, no request outside it):
    the live dashboard's page frozen at this moment: Pareto front (accuracy vs params, hover =
    candidate), objectives per generation, lineage of the best candidate, architecture growth (if
    any), the finals and a sortable candidate table."""
    from evofusion.viz.page import render_page

    data = report_data(store)
    out = Path(out) if out else store.dir / "report.html"
    page = render_page(data, title=f"EvoFusion report: {store.dir}")
    if data.get("pruning"):  # a pruning run (evofusion prune): the seed's table and the noise check
        from evofusion.viz.prune_section import prune_section_html

        page = page.replace("</body>", prune_section_html(data["pruning"]) + "</body>", 1)
    out.write_text(page)
    return out
