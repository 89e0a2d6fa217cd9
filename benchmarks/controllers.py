"""Benchmark 5(b), MCAE: RL controller vs evolutionary controller vs random mutation choice.

Fashion-MNIST (full 54k/6k/10k splits), KD from the cached zoo teacher, the default tiny student
(438 params). Every controller gets the same budget: ``--steps`` training steps of the live student,
a growth event every ``--grow-every`` steps, the same function-preserving operators (all seven),
the same ``--max-params`` cap and the same seeds. The evolutionary controller additionally trains
``k`` candidate copies for ``horizon`` steps per event to score them; that extra compute is counted
in its training FLOPs and wall time (so at equal live-training steps it spends more).

Reported per controller (mean +- std over seeds, and per seed): final validation and test accuracy,
params, the scalarized MOFE fitness (accuracy - 0.02 log10 params, the RL reward's objective),
training FLOPs and wall seconds, and which operators it chose.

Run: ``nice -n 19 .venv/bin/python benchmarks/controllers.py``; budget <= 20 minutes with 1 torch
thread on a busy 2-core machine (defaults: 3 controllers x 2 seeds x 1000 steps; 16.3 minutes
measured at load 7-9).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from evofusion.data import load_dataset
from evofusion.growth import GrowthRun
from evofusion.objectives.base import ObjectiveSet
from evofusion.viz.report import growth_events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--grow-every", type=int, default=100)
    ap.add_argument("--max-params", type=int, default=6000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--controllers", nargs="+", default=["rl", "evolutionary", "random"])
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--out", default="bench_runs/controllers")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    splits = load_dataset("fashion-mnist", seed=0)
    logits = None
    mofe = ObjectiveSet.from_names(["accuracy", "params"])
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in args.controllers}
    for seed in args.seeds:
        for ctrl in args.controllers:
            cfg = {"seed": seed, "data": {"name": "fashion-mnist"},
                   "growth": {"steps": args.steps, "grow_every": args.grow_every, "max_params": args.max_params,
                              "eval_size": 2000, "horizon": args.horizon},
                   "controller": {"name": ctrl, "params": {"k": args.k} if ctrl == "evolutionary" else {}}}
            run_dir = Path(args.out) / f"{ctrl}-s{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run = GrowthRun.create(cfg, run_dir, log=lambda *a: None, splits=splits, teacher_logits=logits)
            try:
                logits = run.teacher_logits
                out = run.run()
                events = growth_events(run.store)
            finally:
                run.close()
            out["fitness"] = mofe.fitness({"accuracy": out["val_accuracy"], "params": out["params"]})
            out["ops"] = Counter(e["operator"] for e in events)
            out["seed"] = seed
            out["max_drop_pp"] = max([100 * (e["acc_before"] - e["acc_after"]) for e in events] + [0.0])
            rows[ctrl].append(out)
            print(f"[{time.perf_counter() - t_start:.0f} s] {ctrl} seed {seed}: val {out['val_accuracy']:.4f} "
                  f"test {out['test_accuracy']:.4f} params {out['params']} fitness {out['fitness']:.4f}",
                  flush=True)

    def ms(vals: list[float], fmt: str) -> str:
        if len(vals) < 2:
            return format(vals[0], fmt)
        return f"{format(statistics.mean(vals), fmt)} +- {format(statistics.stdev(vals), fmt)}"

    print(f"\n## Controllers at equal budget ({args.steps} steps, event every {args.grow_every}, "
          f"max {args.max_params} params, seeds {args.seeds})\n")
    print("| controller | val acc | test acc | params | MOFE fitness | training TFLOPs | wall s |")
    print("|---|---|---|---|---|---|---|")
    for ctrl, rs in rows.items():
        print(f"| {ctrl} | {ms([r['val_accuracy'] for r in rs], '.4f')} | {ms([r['test_accuracy'] for r in rs], '.4f')} "
              f"| {ms([float(r['params']) for r in rs], '.0f')} | {ms([r['fitness'] for r in rs], '.4f')} | "
              f"{ms([r['train_flops'] / 1e12 for r in rs], '.3f')} | {ms([r['seconds'] for r in rs], '.0f')} |")
    print("\n### Per seed\n")
    print("| controller | seed | val acc | test acc | params | fitness | events | largest FP drop (pp) | "
          "operators chosen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ctrl, rs in rows.items():
        for r in rs:
            ops = ", ".join(f"{k} x{v}" for k, v in sorted(r["ops"].items()))
            print(f"| {ctrl} | {r['seed']} | {r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} | {r['params']} | "
                  f"{r['fitness']:.4f} | {r['events']} | {r['max_drop_pp']:.2f} | {ops} |")
    print(f"\nbenchmark wall time: {time.perf_counter() - t_start:.0f} s (budget 20 min); runs in {args.out}")
    assert all(math.isfinite(r["val_accuracy"]) for rs in rows.values() for r in rs)


if __name__ == "__main__":
    main()
