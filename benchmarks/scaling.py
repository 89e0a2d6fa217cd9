"""Scaling: candidates per minute with the serial executor, the process pool with 1 and 2 workers,
and Ray on a 2-node local cluster; and the same search's results across all of them.

Every executor runs the same NSGA-II search (same seed) on Fashion-MNIST with fixed-size candidates
(two 16-channel stages, a fixed step budget), one torch thread per candidate. Throughput counts the
generations after the first; start-up (worker spawn, Ray connection and worker start) is the first
generation's extra time over a steady one and is reported apart. Ray's cluster start (two
``ray start``) is reported apart too. The last column says whether the candidates (genome hashes,
statuses, objective values) equal the serial run's.

Budget: ~8 min on a quiet 2-core machine with the defaults (8 candidates x 4 generations per
executor, 300 steps each, about 4 s a candidate). With 120-step candidates (``--steps 120
--generations 6``, about 1.6 s a candidate) the per-generation work that does not parallelize
(checkpoint, database backup, selection) weighs more and the 2-worker speed-up drops. Re-run on a quiet machine with::

    .venv/bin/python benchmarks/scaling.py

Run outputs go under bench_runs/scaling/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from evofusion import Study  # noqa: E402
from evofusion.engine.callbacks import Callback  # noqa: E402


class GenerationClock(Callback):
    def __init__(self) -> None:
        self.t0 = 0.0
        self.ends: list[float] = []

    def on_study_start(self, study: Any) -> None:
        self.t0 = time.perf_counter()

    def on_generation_end(self, study: Any, generation: int, outcomes: Any) -> None:
        self.ends.append(time.perf_counter())


def config(a: argparse.Namespace, executor: str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "seed": 0, "generations": a.generations, "executor": executor, "threads": 1,
        "data": {"name": a.data, "limit": a.limit},
        "distill": {"steps": a.steps, "batch_size": 64},
        "final": {"top_k": 0},
        "space": {"min_stages": 2, "max_stages": 2, "widths": [16], "min_depth": 1, "max_depth": 1,
                  "kernels": [3], "head_kinds": ["gap"], "head_hidden": [0], "allow_skip": False},
        "strategy": {"name": "nsga2", "population": a.population},
        "inherit_weights": False,
    }
    cfg.update(over)
    return cfg


def run(a: argparse.Namespace, name: str, cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    d = out / name
    shutil.rmtree(d, ignore_errors=True)
    clock = GenerationClock()
    study = Study.create(cfg, d, callbacks=[clock], log=lambda *_: None)
    try:
        study.optimize()
        rows = [(r["id"], r["genome_hash"], r["status"], r["objective_values"]) for r in study.store.candidates()]
    finally:
        study.close()
    gens = [b - a_ for a_, b in zip([clock.t0, *clock.ends[:-1]], clock.ends, strict=True)]
    steady = gens[1:]
    per_gen = statistics.median(steady)
    return {"name": name, "cpm": 60 * a.population * len(steady) / sum(steady),
            "startup": max(0.0, gens[0] - per_gen), "gen_seconds": gens, "rows": rows,
            "complete": sum(1 for r in rows if r[2] == "COMPLETE"), "total": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--limit", type=int, default=6000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench_runs" / "scaling"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    Study.create(config(a, "serial", generations=1), out / "warm", log=print).close()  # data + teacher cache
    shutil.rmtree(out / "warm", ignore_errors=True)
    results = [run(a, "serial (1 worker)", config(a, "serial"), out),
               run(a, "process, 1 worker", config(a, "process", workers=1), out),
               run(a, "process, 2 workers", config(a, "process", workers=2), out)]
    cluster_s = None
    if not a.skip_ray:
        from evofusion.engine.ray_cluster import LocalRayCluster

        t = time.perf_counter()
        with LocalRayCluster(nodes=2, cpus_per_node=1) as c:
            cluster_s = time.perf_counter() - t
            results.append(run(a, "ray, 2-node local cluster (1 CPU each)",
                               config(a, "ray", address=c.address), out))
    base = results[0]
    p1 = next(r for r in results if r["name"] == "process, 1 worker")
    print(f"\n## Scaling ({a.population} candidates x {a.generations} generations, {a.data} "
          f"limit {a.limit}, {a.steps} steps each, 1 torch thread per candidate)\n")
    print("| executor | candidates / min | vs process 1 worker | start-up (s) | COMPLETE | same results as serial |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['cpm']:.1f} | {r['cpm'] / p1['cpm']:.2f}x | {r['startup']:.1f} | "
              f"{r['complete']}/{r['total']} | {'yes' if r['rows'] == base['rows'] else 'NO'} |")
    if cluster_s is not None:
        print(f"\nRay cluster start (head + 1 worker node): {cluster_s:.1f} s, not counted above.")
    print(f"total wall time: {time.perf_counter() - t_all:.0f} s")
    (out / "results.json").write_text(json.dumps(
        [{k: v for k, v in r.items() if k != "rows"} for r in results], indent=1))


if __name__ == "__main__":
    main()
