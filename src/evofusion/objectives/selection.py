"""Which stored candidates count: the COMPLETE ones with finite objectives, their Pareto front, and
the winners a run fine-tunes. ``store`` is any object with ``candidates(status)`` / ``candidate(id)``
(a RunStore), so report, dashboard and runs share one definition without importing each other."""

from __future__ import annotations

import math
from typing import Any

from evofusion.objectives.base import ObjectiveSet
from evofusion.objectives.pareto import pareto_front


def completed(store: Any, objectives: ObjectiveSet) -> list[dict[str, Any]]:
    rows = []
    for r in store.candidates("COMPLETE"):
        v = r["objective_values"]
        if all(isinstance(v.get(n), int | float) and math.isfinite(v[n]) for n in objectives.names):
            rows.append(r)
    return rows


def pareto_ids(store: Any, objectives: ObjectiveSet) -> list[int]:
    """Ids of the non-dominated COMPLETE candidates; a genome scored several times (a multi-fidelity
    promotion continues it as a new row) counts once, with its latest, best-trained row."""
    latest: dict[str, dict[str, Any]] = {}
    for r in completed(store, objectives):
        latest[r["genome_hash"]] = r  # rows come in id order: the last one is the latest
    rows = sorted(latest.values(), key=lambda r: r["id"])
    if not rows:
        return []
    F = objectives.F([r["objective_values"] for r in rows])
    return sorted(rows[i]["id"] for i in pareto_front(F))


def pick_winners(store: Any, objectives: ObjectiveSet, k: int) -> list[int]:
    """Up to k Pareto candidates: the most accurate first, then spread evenly along the front."""
    ids = pareto_ids(store, objectives)
    if k <= 0 or not ids:
        return []
    rows = sorted((store.candidate(i) for i in ids), key=lambda r: -r["objective_values"]["accuracy"])
    if len(rows) <= k:
        return [r["id"] for r in rows]
    picks = [rows[round(j * (len(rows) - 1) / max(1, k - 1))]["id"] for j in range(k)]
    return list(dict.fromkeys(picks))
