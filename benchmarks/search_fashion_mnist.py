"""Benchmark 1: NSGA-II vs regularized evolution vs random search vs hand-designed students.

Fashion-MNIST, the zoo's default teacher (small_cnn, 8 epochs), KD from cached teacher outputs.
Every strategy gets the same evaluation budget (population x generations) and the same per-candidate
training budget; 3 seeds. Selection sees only the validation split carved from the training set;
test accuracy is measured afterwards, for this table only.

Columns:
* HV: hypervolume of (test error, log10 params) over every COMPLETE candidate (search weights),
  reference point (0.5, 5.0) i.e. 50% error and 100k parameters, at 1/3, 2/3 and all of the budget;
* best test accuracy at <= 10k and <= 50k params: the best-validation candidate of that size class
  after the full-data KD fine-tune (``final.epochs``);
* wall time of the search loop (after the teacher), and of the fine-tunes.

Hard constraints: params <= 100k and FLOPs <= 10M (checked before training; violators are INFEASIBLE
and cost no training), which keeps every candidate's cost bounded on a CPU.

Run: ``.venv/bin/python benchmarks/search_fashion_mnist.py [--seeds 0 1 2] [--out bench_runs/search]``
Budget: about 60 minutes on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from evofusion import StageGene, StudentGenome, Study, build
from evofusion.distill import TrainConfig, evaluate_accuracy, train
from evofusion.engine.context import load_arrays
from evofusion.genome import HeadGene, genome_from_dict
from evofusion.objectives.pareto import hypervolume

REF = (0.5, 5.0)


def config(strategy: str, seed: int, args: argparse.Namespace) -> dict:
    params = {"sample_size": 3} if strategy == "regularized" else {}
    return {
        "seed": seed, "generations": args.generations,
        "data": {"name": "fashion-mnist"},
        "distill": {"steps": args.steps, "batch_size": 128, "alpha": 0.5, "temperature": 4.0},
        "final": {"top_k": 0, "epochs": args.final_epochs, "patience": 0, "augment": "flip"},
        "space": {"max_stages": 4, "widths": [4, 8, 12, 16, 24, 32, 48, 64], "max_depth": 2,
                  "head_hidden": [0, 32]},
        "strategy": {"name": strategy, "population": args.population, "params": params},
        "objectives": {"names": ["accuracy", "params"], "constraints": ["params <= 100000", "flops <= 10000000"]},
    }


def test_errors(study: Study) -> dict[int, float]:
    arrays = load_arrays(study.setup.context.data_dir, study.setup.context.teacher_dir)
    out = {}
    for r in study.store.candidates("COMPLETE"):
        model = build(genome_from_dict(r["genome"]))
        model.load_state_dict(load_file(study.store.resolve(r["weights_file"])))
        out[r["id"]] = 1.0 - evaluate_accuracy(model, arrays["test_x"], arrays["test_y"])
    return out


def hv_at(study: Study, errs: dict[int, float], n_evals: int) -> float:
    pts = [(errs[r["id"]], math.log10(r["objective_values"]["params"])) for r in study.store.candidates("COMPLETE")
           if r["id"] < n_evals]
    return hypervolume(np.asarray(pts).reshape(-1, 2), np.asarray(REF))


def best_in(study: Study, limit: float) -> int | None:
    rows = [r for r in study.store.candidates("COMPLETE") if r["objective_values"]["params"] <= limit]
    return max(rows, key=lambda r: r["objective_values"]["accuracy"])["id"] if rows else None


HAND = {
    "hand-9k": StudentGenome(stages=(StageGene(8, depth=2), StageGene(16, depth=2), StageGene(32, pool="none")),
                             head=HeadGene("gap")),
    "hand-45k": StudentGenome(stages=(StageGene(16, depth=2), StageGene(32, depth=2), StageGene(64, pool="none")),
                              head=HeadGene("gap")),
}


def run_hand(study: Study, seed: int, args: argparse.Namespace) -> dict:
    """Hand-designed students, KD from the same cached logits, with the search's per-candidate steps plus
    the fine-tune epochs (the same training a searched winner receives in total)."""
    arrays = load_arrays(study.setup.context.data_dir, study.setup.context.teacher_dir)
    res = {}
    for name, g in HAND.items():
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = build(g)
        t0 = time.perf_counter()
        n = len(arrays["train_y"])
        steps = args.steps + math.ceil(args.final_epochs * math.ceil(n / 128))
        train(model, arrays["train_x"], arrays["train_y"],
              TrainConfig(steps=steps, batch_size=128, alpha=0.5, temperature=4.0, augment="flip"),
              teacher_logits=arrays["train_t"], val=(arrays["val_x"], arrays["val_y"]),
              generator=torch.Generator().manual_seed(seed))
        res[name] = {"params": sum(p.numel() for p in model.parameters()),
                     "test_accuracy": evaluate_accuracy(model, arrays["test_x"], arrays["test_y"]),
                     "seconds": time.perf_counter() - t0}
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", default=["nsga2", "regularized", "random"])
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=5)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--final-epochs", type=float, default=2)
    ap.add_argument("--out", default="bench_runs/search")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    rows = []
    teacher = None
    budget = args.population * args.generations
    for seed in args.seeds:
        for strategy in args.strategies:
            study = Study.create(config(strategy, seed, args), out / f"{strategy}-{seed}", log=print)
            teacher = study.setup.teacher_info
            t0 = time.perf_counter()
            study.optimize()
            search_s = time.perf_counter() - t0
            errs = test_errors(study)
            ids = [i for i in (best_in(study, 1e4), best_in(study, 5e4)) if i is not None]
            t0 = time.perf_counter()
            study.finalize(list(dict.fromkeys(ids)), log=print)
            final_s = time.perf_counter() - t0
            finals = {f["candidate_id"]: f for f in study.store.finals()}

            def best_test(limit: float, finals: dict = finals) -> float | None:
                c = [f["test_accuracy"] for f in finals.values() if f["objective_values"]["params"] <= limit]
                return max(c) if c else None

            row = {"strategy": strategy, "seed": seed,
                   "hv": [hv_at(study, errs, budget * k // 3) for k in (1, 2, 3)],
                   "best_10k": best_test(1e4), "best_50k": best_test(5e4),
                   "params_10k": next((f["objective_values"]["params"] for f in finals.values()
                                       if f["objective_values"]["params"] <= 1e4), None),
                   "failed": study.store.count("FAILED"), "infeasible": study.store.count("INFEASIBLE"),
                   "search_s": search_s, "final_s": final_s}
            rows.append(row)
            print(json.dumps(row))
            if strategy == args.strategies[-1]:
                hand = run_hand(study, seed, args)
                for name, h in hand.items():
                    rows.append({"strategy": name, "seed": seed, "hv": [None] * 3,
                                 "best_10k": h["test_accuracy"] if h["params"] <= 1e4 else None,
                                 "best_50k": h["test_accuracy"], "params_10k": h["params"],
                                 "failed": 0, "infeasible": 0, "search_s": 0.0, "final_s": h["seconds"]})
                    print(json.dumps(rows[-1]))
            study.close()
    (out / "results.json").write_text(json.dumps({"rows": rows, "teacher": teacher, "args": vars(args)}, indent=1))
    print_table(rows, teacher, args)


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.2f}" if pct else f"{v:.3f}"


def print_table(rows: list[dict], teacher: dict, args: argparse.Namespace) -> None:
    print(f"\nTeacher: {teacher.get('arch')} {teacher.get('params')} params, test acc "
          f"{100 * teacher.get('test_accuracy', float('nan')):.2f}%")
    print(f"Budget: {args.population} x {args.generations} = {args.population * args.generations} evaluations, "
          f"{args.steps} KD steps each, final fine-tune {args.final_epochs} epochs; seeds {args.seeds}\n")
    print("| method | HV@1/3 | HV@2/3 | HV@all | best test acc <=10k (%) | best test acc <=50k (%) "
          "| search wall (s) | fine-tune wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["strategy"] for r in rows):
        rs = [r for r in rows if r["strategy"] == name]

        def mean(key: str, i: int | None = None, rs: list[dict] = rs) -> str:
            vals = [r[key][i] if i is not None else r[key] for r in rs]
            vals = [v for v in vals if v is not None]
            if not vals:
                return "-"
            m, s = float(np.mean(vals)), float(np.std(vals))
            if key == "hv":
                return f"{m:.4f} ± {s:.4f}"
            if key.startswith("best"):
                return f"{100 * m:.2f} ± {100 * s:.2f}"
            return f"{m:.0f}"

        print(f"| {name} | {mean('hv', 0)} | {mean('hv', 1)} | {mean('hv', 2)} | {mean('best_10k')} | "
              f"{mean('best_50k')} | {mean('search_s')} | {mean('final_s')} |")


if __name__ == "__main__":
    main()
