"""The pruning section of a run's report: the seed's table (compression %, FLOPs reduction %,
accuracy, latency) for teacher and winning ticket, the ticket's kept channels per group, and the
Gaussian-noise robustness check. Input: the ``prune_report`` meta a ``PruneStudy.finish`` stores."""

from __future__ import annotations

import html
from typing import Any


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def prune_table_rows(rep: dict[str, Any]) -> list[list[str]]:
    """Header + rows: model, params, compression %, FLOPs, FLOPs reduction %, test acc %, latency ms."""
    t, k = rep["teacher"], rep["ticket"]
    return [["model", "params", "compression %", "FLOPs", "FLOPs reduction %", "test acc %", "latency ms"],
            [f"teacher {t.get('arch')} (width {t.get('width')})", f"{t['params']:.0f}", "0.0", f"{t['flops']:.3g}",
             "0.0", _pct(t.get("test_accuracy")), f"{t['latency_ms']:.3f}"],
            [f"{'winning ticket' if (rep.get('verdict') or {}).get('winner', True) else 'best ticket (not a winner)'}"
             f" (candidate {rep['candidate_id']})", f"{k['params']:.0f}",
             f"{100 * k['compression']:.1f}", f"{k['flops']:.3g}", f"{100 * k['flops_reduction']:.1f}",
             _pct(k.get("test_accuracy")), f"{k['latency_ms']:.3f}"]]


def robustness_rows(rep: dict[str, Any]) -> list[list[str]]:
    r = rep["robustness"]
    return [["Gaussian noise sigma", *(f"{s:g}" for s in r["sigma"])],
            ["teacher test acc %", *(_pct(v) for v in r["teacher"])],
            ["ticket test acc %", *(_pct(v) for v in r["ticket"])]]


def prune_markdown(rep: dict[str, Any]) -> str:
    """The two tables as markdown (for the terminal and docs)."""
    out = []
    verdict = rep.get("verdict")
    if verdict:
        out += [f"**{verdict['text']}**" if verdict["winner"] else f"**WARNING: {verdict['text']}**", ""]
    for rows in (prune_table_rows(rep), robustness_rows(rep)):
        out.append("| " + " | ".join(rows[0]) + " |")
        out.append("|" + "---|" * len(rows[0]))
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        out.append("")
    return "\n".join(out)


def _table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def prune_section_html(rep: dict[str, Any]) -> str:
    """A static HTML block for report.html."""
    k = rep["ticket"]
    kept = ", ".join(f"{html.escape(str(n))} {a}/{b}" for n, a, b in zip(k.get("roots") or
                                                                        [f"g{i}" for i in range(len(k["kept"]))],
                                                                        k["kept"], k["groups"], strict=False))
    target = rep.get("target_params")
    verdict = rep.get("verdict") or {"winner": True, "text": "winning ticket"}
    title = "Pruning: the winning ticket" if verdict["winner"] else "Pruning: no winning ticket"
    return (f"<div class=\"panel\" id=\"pruning\"><h2>{title}</h2><p><b>{html.escape(verdict['text'])}</b></p>"
            f"<p>{rep.get('evaluated', '?')} candidates evaluated, encoding {html.escape(str(rep.get('encoding')))}"
            f"{'' if target is None else f', target params &le; {target}'}; test accuracy after the full KD "
            "fine-tune.</p>" + _table(prune_table_rows(rep))
            + "<h3>Robustness: accuracy under Gaussian input noise (normalized inputs, fixed draw)</h3>"
            + _table(robustness_rows(rep))
            + f"<h3>Kept channels per group (root layer kept/total)</h3><p>{kept}</p></div>")
