"""What the dashboard and report analyse beyond the raw candidate rows: hypervolume over evaluations
and wall time, genome features for parallel coordinates, a candidate's layers (params and FLOPs per
layer, for the architecture drawing) and the data of a run comparison.

The hypervolume here is the one the benchmarks report: of (validation error, log10 of the run's
size objective) when that objective spans decades (params, FLOPs, MACs, latency, size), else of the
raw value, minimized, computed with pymoo. Runs drawn together share one reference point, so their
curves compare.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

LOG_METRICS = ("params", "flops", "macs", "latency_ms", "latency_ort_ms", "size_bytes")
ARCH_EMBED_LIMIT = 300  # report.html draws the layers of at most this many candidates (Pareto first)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def size_key(objectives: list[str]) -> str:
    """The objective drawn against accuracy: the run's first objective other than accuracy (params
    when it has none), as the Pareto plot's x axis."""
    return next((o for o in objectives if o != "accuracy"), "params")


def _point(c: dict[str, Any], key: str) -> tuple[float, float] | None:
    o = c.get("objectives") or {}
    acc, x = o.get("accuracy"), o.get(key)
    if c.get("status") != "COMPLETE" or not _finite(acc) or not _finite(x):
        return None
    if key in LOG_METRICS:
        if x <= 0:
            return None
        x = math.log10(x)
    return 1.0 - float(acc), float(x)


def one_size(cands: list[dict[str, Any]], key: str) -> bool:
    """Whether every COMPLETE candidate has the same ``key`` value (one architecture)."""
    return len({p[1] for c in cands if (p := _point(c, key)) is not None}) <= 1


def hv_reference(runs: list[list[dict[str, Any]]], key: str) -> list[float]:
    """One reference point for every run drawn together: error 1.0 (chance is below it) and the
    largest size value seen plus a margin (0.1 decade on a log axis, 5% of the range otherwise)."""
    xs = [p[1] for cands in runs for c in cands if (p := _point(c, key)) is not None]
    if not xs:
        return [1.0, 1.0]
    hi, lo = max(xs), min(xs)
    return [1.0, hi + (0.1 if key in LOG_METRICS else max(0.05 * (hi - lo), 1e-9 + 0.05 * abs(hi)))]


def hv_history(cands: list[dict[str, Any]], key: str, ref: list[float]) -> list[dict[str, float]]:
    """Hypervolume of everything evaluated so far, after each COMPLETE candidate in the order they
    finished: ``[{"n": evaluations, "seconds": since the first candidate started, "hv": value}]``.
    Candidates without timings (old runs) are ordered by id and get ``seconds`` None. When every
    candidate has the same size (one architecture) the value is the best accuracy so far."""
    import numpy as np
    from pymoo.indicators.hv import HV

    hv = HV(ref_point=np.asarray(ref, dtype=float))
    starts = [c["started"] for c in cands if _finite(c.get("started"))]
    t0 = min(starts) if starts else None
    done = [c for c in cands if c.get("status") == "COMPLETE"]
    done.sort(key=lambda c: (c["finished"] if _finite(c.get("finished")) else math.inf, c["id"]))
    front: list[tuple[float, float]] = []
    out, value = [], 0.0
    single = one_size(done, key)
    for n, c in enumerate(done, 1):
        p = _point(c, key)
        if single:  # one architecture (a weight-evolution run): the best accuracy so far
            value = max(value, 1.0 - p[0]) if p is not None else value
            p = None
        if p is not None and p[0] < ref[0] and p[1] < ref[1] \
                and not any(q[0] <= p[0] and q[1] <= p[1] for q in front):
            front = [q for q in front if not (p[0] <= q[0] and p[1] <= q[1])] + [p]
            value = float(hv(np.asarray(front)))
        secs = c["finished"] - t0 if t0 is not None and _finite(c.get("finished")) else None
        out.append({"n": n, "seconds": secs, "hv": value})
    return out


def genome_features(genome: dict[str, Any]) -> dict[str, float]:
    """Numbers that describe a genome, for parallel coordinates: for a student (or a chromosome,
    decoded) its stages, blocks, widths per stage, largest kernel, skips and head; for a pruning
    genome the share of channels it keeps, overall and per group."""
    kind = genome.get("kind", "student")
    try:
        if kind == "chromosome":
            from evofusion.genome.io import genome_from_dict

            genome, kind = genome_from_dict(genome).to_student().to_dict(), "student"
        if kind == "student":
            stages = genome.get("stages") or []
            f: dict[str, float] = {"stages": len(stages), "blocks": sum(int(s.get("depth", 1)) for s in stages)}
            for i, s in enumerate(stages):
                f[f"width {i + 1}"] = int(s["width"])
            f["max kernel"] = max((int(s.get("kernel", 3)) for s in stages), default=0)
            f["skips"] = sum(bool(s.get("skip")) for s in stages)
            f["head hidden"] = int((genome.get("head") or {}).get("hidden", 0))
            return f
        if kind == "prune":
            from evofusion.genome.io import genome_from_dict

            g = genome_from_dict(genome)
            kept = [int(m.sum()) for m in g.keep_masks()]
            f = {"kept %": 100.0 * sum(kept) / max(1, sum(g.groups))}
            for i, (k, s) in enumerate(zip(kept, g.groups, strict=True)):
                f[f"group {i + 1} %"] = 100.0 * k / s
            return f
    except Exception:  # noqa: BLE001 - a genome the page cannot describe is drawn without features
        return {}
    return {}


@lru_cache(maxsize=512)
def _layers_cached(genome_json: str) -> dict[str, Any]:
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from evofusion.genome.build import build
    from evofusion.genome.io import genome_from_dict

    g = genome_from_dict(json.loads(genome_json))
    model = build(g, seed=0).eval()
    s = g.to_student() if hasattr(g, "to_student") else g
    x = torch.zeros(1, int(s.in_channels), int(s.input_size), int(s.input_size))
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    order: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: order.append((n, mod, tuple(o.shape[1:]))))
               for n, m in leaves]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(x)
    finally:
        for h in handles:
            h.remove()
    counts = fc.get_flop_counts()
    prefix = type(model).__name__ + "."
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, mod, shape in order:
        if name in seen:
            continue
        seen.add(name)
        params = sum(p.numel() for p in mod.parameters(recurse=False))
        flops = int(sum(counts.get(prefix + name, {}).values()))
        kind = type(mod).__name__
        if isinstance(mod, nn.Conv2d):
            k = "x".join(str(v) for v in mod.kernel_size)
            detail = f"{k} conv {mod.in_channels}→{mod.out_channels}" + \
                (f" /{mod.stride[0]}" if mod.stride[0] > 1 else "") + \
                (" depthwise" if mod.groups == mod.in_channels and mod.groups > 1 else
                 f" g{mod.groups}" if mod.groups > 1 else "")
        elif isinstance(mod, nn.Linear):
            detail = f"linear {mod.in_features}→{mod.out_features}"
        elif "Pool" in kind:
            detail = kind.replace("2d", "").replace("Adaptive", "global ").lower()
        elif kind == "Flatten":
            detail = "flatten"
        else:  # norms, activations, dropout: folded into the layer before them
            if rows and (params or flops or kind != "Identity"):
                rows[-1]["params"] += params
                rows[-1]["flops"] += flops
                rows[-1]["then"].append(kind)
            continue
        if "shortcut" in name or "skip" in name.split(".")[-2:-1]:
            detail = "skip: " + detail
        rows.append({"name": name, "type": kind, "detail": detail, "shape": list(shape), "params": params,
                     "flops": flops, "then": []})
    return {"layers": rows, "params": sum(p.numel() for p in model.parameters()),
            "flops": int(fc.get_total_flops()), "input": list(x.shape[1:])}


def layer_table(genome: dict[str, Any]) -> dict[str, Any] | None:
    """The candidate's layers in execution order (conv, linear, pooling; norms and activations folded
    into the layer before them): name, detail (``3x3 conv 16→32``), output shape, params and FLOPs
    (``torch.utils.flop_counter``) per layer, and the totals. None when the genome cannot be built
    here (e.g. a pruning genome whose teacher architecture is not importable)."""
    try:
        return _layers_cached(json.dumps(genome, sort_keys=True))
    except Exception:  # noqa: BLE001 - the page says "no drawing" instead of failing
        return None


def compare_runs(datas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run (``report_data`` of each): its label, size key, Pareto points and hypervolume history
    against one shared reference point (runs with another size objective get their own)."""
    if len(datas) < 2:
        return []
    keys = {d["run_dir"]: size_key(d["objectives"]) for d in datas}
    refs = {k: hv_reference([d["candidates"] for d in datas if keys[d["run_dir"]] == k], k)
            for k in set(keys.values())}
    out = []
    for d in datas:
        key = keys[d["run_dir"]]
        front = set(d["pareto"])
        pts = [{"id": c["id"], "x": c["objectives"][key], "accuracy": c["objectives"]["accuracy"]}
               for c in d["candidates"] if c["id"] in front and _point(c, key) is not None]
        out.append({"run_dir": d["run_dir"], "kind": d.get("kind"), "key": key, "ref": refs[key],
                    "pareto": sorted(pts, key=lambda p: p["x"]), "hv": hv_history(d["candidates"], key, refs[key]),
                    "counts": d["counts"]})
    return out
