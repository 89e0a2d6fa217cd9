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
    """Every candidate as a plain dict: id, generation, status, parents, operator, objectives, genome,
    reason, timings (``started``/``finished`` epoch seconds) and its training: ``rung``, ``steps``,
    ``steps_total`` (along its lineage) and ``curve`` (training loss and validation accuracy by step)."""
    from evofusion.viz.analysis import genome_features

    rows = []
    for r in store.candidates():
        t = r.get("train") or {}
        rows.append({"id": r["id"], "generation": r["generation"], "status": r["status"], "parents": r["parents"],
                     "operator": r["operator"], "objectives": r["objective_values"], "reason": r["reason"],
                     "genome_hash": r["genome_hash"], "seconds": r["seconds"], "genome": r["genome"],
                     "started": r.get("started"), "finished": r.get("finished"),
                     "train": {k: t[k] for k in ("rung", "steps", "steps_total", "curve") if k in t},
                     "features": genome_features(r["genome"])})
    return rows


def report_data(store: RunStore) -> dict[str, Any]:
    """Every candidate (``candidate_rows``), the Pareto ids, the finals, best and mean of each
    objective per generation, hypervolume after each evaluation, growth events (if any) and the run's
    kind, data and teacher."""
    from evofusion.objectives.selection import pareto_ids
    from evofusion.viz.analysis import hv_history, hv_reference, one_size, size_key

    objectives = _objectives(store)
    cands = candidate_rows(store)
    finals = [{"id": f["candidate_id"], "val_accuracy": f["val_accuracy"], "test_accuracy": f["test_accuracy"],
               "objectives": f["objective_values"]} for f in store.finals()]
    best = max(finals, key=lambda f: f["val_accuracy"])["id"] if finals else None
    key = size_key(objectives.names)
    ref = hv_reference([cands], key)
    return {"run_dir": str(store.dir), "kind": store.kind(), "objectives": objectives.names,
            "candidates": cands, "pareto": pareto_ids(store, objectives), "finals": finals, "best": best,
            "teacher": store.get_meta("teacher"), "data": store.get_meta("data"),
            "counts": {s: sum(1 for c in cands if c["status"] == s)
                       for s in ("COMPLETE", "FAILED", "INFEASIBLE", "PENDING")},
            "directions": {o.name: o.direction for o in objectives.objectives},
            "generations": generation_stats(cands, objectives), "growth": growth_events(store),
            "growth_curve": store.growth_curve(), "pruning": store.get_meta("prune_report"),
            "hv": {"key": key, "ref": ref, "history": hv_history(cands, key, ref),
                   "best_accuracy": one_size(cands, key)}, "arch": {}, "compare": []}


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


def embed_architectures(data: dict[str, Any], limit: int | None = None) -> dict[str, Any]:
    """Add ``arch`` (``analysis.layer_table`` by candidate id) for the Pareto candidates, the finals
    and then the other COMPLETE candidates, at most ``limit`` (``ARCH_EMBED_LIMIT``)."""
    from evofusion.viz.analysis import ARCH_EMBED_LIMIT, layer_table

    limit = ARCH_EMBED_LIMIT if limit is None else limit
    by_id = {c["id"]: c for c in data["candidates"]}
    order = [*data["pareto"], *(f["id"] for f in data["finals"]),
             *(c["id"] for c in data["candidates"] if c["status"] == "COMPLETE")]
    arch: dict[str, Any] = {}
    for cid in dict.fromkeys(order):
        if len(arch) >= limit:
            break
        if cid in by_id and (t := layer_table(by_id[cid]["genome"])) is not None:
            arch[str(cid)] = t
    data["arch"] = arch
    return data


def comparison_data(run_dirs: list[str | Path], read: Any = None) -> list[dict[str, Any]]:
    """``report_data`` of each run directory, then their comparison (``analysis.compare_runs``);
    ``read(run_dir, fn)`` opens a store (the dashboard's retrying reader; default a plain one)."""
    from evofusion.viz.analysis import compare_runs

    def plain(d: str | Path, fn: Any) -> Any:
        with RunStore(d, lock=False, readonly=True) as st:
            return fn(st)

    return compare_runs([(read or plain)(d, report_data) for d in run_dirs])


PLOTLY_FILE = "plotly.min.js"


def write_html_report(store: RunStore, out: str | Path | None = None, *, compare: list[str | Path] = (),
                      inline: bool = False) -> Path:
    """report.html: the live dashboard's page frozen at this moment, data embedded as JSON: Pareto
    front (x axis = the run's size objective), hypervolume over evaluations and wall time, objectives
    per generation, parallel coordinates over genome features and objectives, the selected
    candidate's lineage, architecture (layers with params and FLOPs) and training curve, growth (grow
    runs), the finals and a sortable table. ``compare``: other run directories drawn beside this one
    (Pareto fronts and hypervolume on one reference point).

    plotly.js (4.8 MB) is written once as ``plotly.min.js`` beside the page, which loads it by a
    relative path, so the page itself stays small (under 1 MB for a 100-candidate run) and opens
    offline; ``inline=True`` puts plotly.js inside instead (one self-contained file to send around).
    """
    from evofusion.store.atomic import atomic_write_bytes
    from evofusion.viz.page import plotly_js, render_page

    data = embed_architectures(report_data(store))
    if compare:
        data["compare"] = comparison_data([store.dir, *compare])
    out = Path(out) if out else store.dir / "report.html"
    if inline:
        page = render_page(data, title=f"EvoFusion report: {store.dir}")
    else:
        page = render_page(data, title=f"EvoFusion report: {store.dir}", plotly_src=PLOTLY_FILE)
        js = plotly_js().encode()
        lib = out.parent / PLOTLY_FILE
        if not lib.exists() or lib.stat().st_size != len(js):
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(lib, js)
    if data.get("pruning"):  # a pruning run (evofusion prune): the seed's table and the noise check
        from evofusion.viz.prune_section import prune_section_html

        page = page.replace("</body>", prune_section_html(data["pruning"]) + "</body>", 1)
    out.write_text(page)
    return out
