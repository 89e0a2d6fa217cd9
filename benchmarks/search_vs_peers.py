"""Search vs the user's alternatives at equal wall clock, side by side (issue 12).

Fashion-MNIST, the zoo's default teacher (small_cnn, cached logits), KD recipe alpha 0.5, T 4.
Arms (each one process, torch threads 1, ``--minutes`` of search, then the same final KD
fine-tune of its best-validation student at <= 10k and <= 50k params, ``--final-minutes`` in all):

* ``ef_mf``: EvoFusion NSGA-II + multi-fidelity rungs (continuation) + Lamarckian FP children;
* ``ef_nomf``: the same without rungs (every candidate ``--steps`` steps once);
* ``ef_fixed``: today's fixed-budget NSGA-II (main's default 200 steps, overlap-copy inheritance);
* ``ef_random``: EvoFusion random search, ``--steps`` steps a candidate;
* ``supernet``: the weight-sharing supernet (issue 13): ``--supernet-share`` of the time training it
  (``supernet.max_seconds``), NSGA-II over its subnets, ``--supernet-finetune`` of the time fine-tuning
  ``--supernet-finetune-k`` winners of the front; ``supernet:SHARE:FINETUNE`` is the same arm with
  other shares (e.g. ``supernet:0.55:0.35``), so two splits of the budget run side by side;
* ``optuna``: Optuna's NSGAIISampler over a 3-stage GAP-CNN space (widths 4-64, depth 1-2, kernel 3/5),
  every trial 3 KD epochs from the same cached logits (SGD nesterov, OneCycle lr 0.05), the script a
  user writes instead of EvoFusion (optuna is a benchmark-only dependency: ``pip install optuna``).

Metrics: hypervolume of (test error, log10 params) with reference (0.30, 6.0) over the arm's
validation-Pareto set, each member scored on the test split with the weights the search left; the
same hypervolume on validation error over wall time (the curve); best test accuracy at <= 10k and
<= 50k params after the fine-tune; candidates evaluated. Two arms run side by side; the load
average is printed beside the table.

Run: ``.venv/bin/python benchmarks/search_vs_peers.py [--minutes 20] [--seeds 0 1 2] [--out bench_runs/peers]``
One arm: ``... arm --name ef_mf --seed 0``. Budget: (arms x seeds / 2) x (minutes + final-minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REF = (0.30, 6.0)
WIDTHS = [4, 6, 8, 12, 16, 24, 32, 48, 64]
LIMITS = (10_000, 50_000)


def _space() -> dict[str, Any]:
    """The space Optuna's arm samples, in EvoFusion's terms: 3 conv stages of 4-64 channels, depth 1-2,
    kernel 3 or 5, ReLU, 2x2 max pool after each stage, global-average-pool head (a GAP-CNN)."""
    return {"min_stages": 3, "max_stages": 3, "widths": WIDTHS, "min_depth": 1,
            "max_depth": 2, "kernels": [3, 5], "activations": ["relu"], "pools": ["max"], "allow_skip": False,
            "head_kinds": ["gap"], "head_hidden": [0]}


def ef_config(name: str, seed: int, a: argparse.Namespace) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "seed": seed, "generations": 100000, "max_seconds": a.minutes * 60, "threads": 1,
        "data": {"name": "fashion-mnist"},
        "distill": {"steps": 200 if name == "ef_fixed" else a.steps, "batch_size": 128, "alpha": 0.5,
                    "temperature": 4.0},
        "final": {"top_k": 0},
        "space": _space(),
        "strategy": {"name": "random" if name == "ef_random" else "nsga2", "population": a.population},
        "objectives": {"names": ["accuracy", "params"], "constraints": ["params <= 100000"]},
    }
    if name in ("ef_mf", "ef_nomf", "ef_mf_ctrl"):
        cfg["lamarckian"] = True
        cfg["strategy"]["params"] = {"crossover_prob": 0.5}
    if name in ("ef_mf", "ef_mf_ctrl"):
        cfg["scheduler"] = {"rungs": a.rungs, "eta": a.eta}
    if name == "ef_mf_ctrl":  # the same loop with the operator controller (discounted UCB1)
        cfg["controller"] = {"name": "bandit"}
    return cfg


def run_ef(name: str, seed: int, a: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """Every COMPLETE candidate: params, val accuracy, its weights (for test scoring), finish time."""
    from evofusion import Study
    from evofusion.genome import genome_from_dict

    study = Study.create(ef_config(name, seed, a), out / "run", log=print)
    t0 = time.time()
    try:
        with deadline(a.minutes * 60):
            study.optimize()
    except Deadline:
        print(f"{name}: the {a.minutes:g}-minute budget ended; candidates finished by then count")
    rows = []
    for r in study.store.candidates("COMPLETE"):
        rows.append({"genome": genome_from_dict(r["genome"]).to_dict(), "params": r["objective_values"]["params"],
                     "val": r["objective_values"]["accuracy"], "t": (r["finished"] or t0) - t0,
                     "weights": str(study.store.resolve(r["weights_file"])),
                     "steps_total": r["train"].get("steps_total", r["train"].get("steps"))})
    study.close()
    return rows


def run_supernet(seed: int, a: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """The supernet arm (issue 13): train a weight-sharing supernet with the sandwich rule and KD for
    ``--supernet-share`` of the budget (its step count sized from a timed probe), then NSGA-II over its
    subnets (scored from the shared weights after BN recalibration) for the rest, all under the same
    hard deadline; every scored subnet is a row with its extracted weights."""
    import torch

    from evofusion import Study
    from evofusion.genome import genome_from_dict
    from evofusion.supernet import SupernetRun, validate_supernet_config

    sn_cfg = {"seed": seed, "data": {"name": "fashion-mnist"},
              "space": {"max_widths": a.supernet_widths, "widths": WIDTHS, "min_depth": 1, "max_depth": 2,
                        "kernels": [3, 5], "activation": "relu", "pool": "max", "head_kind": "gap"},
              "train": {"batch_size": 128, "alpha": 0.5, "temperature": 4.0, "lr": 3e-3, "schedule": "cosine"},
              "supernet": {"steps": 10, "checkpoint_every": 10, "max_params": 100_000, "random_subnets": 2}}
    t0 = time.time()
    probe = SupernetRun(validate_supernet_config(sn_cfg), None, log=lambda *_: None)
    for _ in range(3):  # warm-up (allocator, first-call overheads), not timed
        probe.trainer.train_step()
    tp = time.perf_counter()
    for _ in range(12):
        probe.trainer.train_step()
    step_s = (time.perf_counter() - tp) / 12
    train_s = a.minutes * 60 * a.supernet_share - (time.time() - t0)
    steps = max(50, int(train_s / step_s))  # the probe's plan: it sets the curve's spacing; the run re-plans its
    # step count from its own measured step time (supernet.max_seconds), so a probe taken while the other arm
    # was idle does not eat the search's time
    sn_cfg["supernet"].update(steps=3 * steps, checkpoint_every=max(50, steps // 10), max_seconds=train_s)
    print(f"supernet: {step_s:.3f} s a sandwich step -> about {steps} steps in {train_s:.0f} s", flush=True)
    rows: list[dict[str, Any]] = []
    study = None
    try:
        with deadline(a.minutes * 60 - (time.time() - t0)):
            run = SupernetRun.create(sn_cfg, out / "supernet", log=print)
            run.complete(print)
            run.close()
            left = a.minutes * 60 - (time.time() - t0)
            tune_s = a.minutes * 60 * a.supernet_finetune
            final = ({"top_k": a.supernet_finetune_k, "epochs": 2.0, "max_seconds": max(1.0, tune_s - 5),
                      "lr": 2e-3, "augment": "flip", "patience": 0, "split": a.supernet_finetune_split} if a.supernet_finetune > 0 else {"top_k": 0})
            study = Study.create({"seed": seed, "generations": 100000, "threads": 1,
                                  "max_seconds": max(1.0, left - 5 - (tune_s if a.supernet_finetune > 0 else 0)),
                                  "data": {"name": "fashion-mnist"}, "supernet": {"run": str(out / "supernet"),
                                                                                   "val_size": a.supernet_val},
                                  "final": final, "strategy": {"name": "nsga2", "population": 16},
                                  "objectives": {"names": ["accuracy", "params"],
                                                 "constraints": ["params <= 100000"]}}, out / "run", log=print)
            study.complete(print)  # the search, then the KD fine-tune of the front's winners (final.max_seconds)
    except Deadline:
        print("supernet: the budget ended; subnets scored (and winners fine-tuned) by then count")
    if study is None:
        return rows
    trained = json.loads((out / "supernet" / "supernet.json").read_text())["steps"]
    for r in study.store.candidates("COMPLETE"):
        rows.append({"genome": genome_from_dict(r["genome"]).to_dict(), "params": r["objective_values"]["params"],
                     "val": r["objective_values"]["accuracy"], "t": (r["finished"] or t0) - t0,
                     "weights": str(study.store.resolve(r["weights_file"])), "steps_total": trained})
    end = max((r["t"] for r in rows), default=0.0)
    for f in study.store.finals():  # fine-tuned winners: their own rows (full validation split), after the search
        end += float(f["seconds"] or 0.0)
        g = study.store.candidate(f["candidate_id"])["genome"]
        rows.append({"genome": genome_from_dict(g).to_dict(), "params": f["objective_values"]["params"],
                     "val": f["val_accuracy"], "t": end, "weights": str(study.store.resolve(f["weights_file"])),
                     "steps_total": trained + int(f["train"].get("steps", 0)), "finetuned": True})
    study.close()
    torch.set_num_threads(1)
    return rows


def run_optuna(seed: int, a: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    import optuna
    import torch

    from evofusion.config import validate_config
    from evofusion.data import load_dataset
    from evofusion.distill import TrainConfig, evaluate_accuracy, train
    from evofusion.engine.context import cache_root, load_arrays, prepare_arrays
    from evofusion.engine.study import resolve_teacher
    from evofusion.genome import HeadGene, StageGene, StudentGenome, build
    from evofusion.store.weights import save_weights
    from evofusion.teachers import TeacherCache

    cfg = validate_config({"data": {"name": "fashion-mnist"}})
    splits = load_dataset("fashion-mnist")
    root = cache_root()
    teacher = resolve_teacher(cfg, splits, root)
    cached = TeacherCache(root / "teachers").get(teacher, splits)
    arrays = load_arrays(str(prepare_arrays(splits, root)), str(cached.dir))
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    (out / "weights").mkdir(parents=True, exist_ok=True)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        stages = tuple(StageGene(trial.suggest_categorical(f"w{i}", WIDTHS), depth=trial.suggest_int(f"d{i}", 1, 2),
                                 kernel=trial.suggest_categorical(f"k{i}", [3, 5])) for i in range(3))
        g = StudentGenome(stages=stages, head=HeadGene("gap"))
        model = build(g, seed=seed * 1000 + trial.number)
        train(model, arrays["train_x"], arrays["train_y"],
              TrainConfig(epochs=3, optimizer="adamw", lr=3e-3, weight_decay=5e-4, schedule="onecycle", alpha=0.5,
                          temperature=4.0, batch_size=128), teacher_logits=arrays["train_t"],
              generator=torch.Generator().manual_seed(seed * 1000 + trial.number))
        acc = evaluate_accuracy(model, arrays["val_x"], arrays["val_y"])
        params = float(sum(p.numel() for p in model.parameters()))
        w = out / "weights" / f"{trial.number}.safetensors"
        save_weights(model, w)
        rows.append({"genome": g.to_dict(), "params": params, "val": acc, "t": time.time() - t0, "weights": str(w),
                     "steps_total": 3 * math.ceil(len(arrays["train_y"]) / 128)})
        return acc, params

    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=seed, population_size=a.population))
    try:
        with deadline(a.minutes * 60):
            study.optimize(objective, timeout=a.minutes * 60)
    except Deadline:
        print(f"optuna: the {a.minutes:g}-minute budget ended; trials finished by then count")
    return rows


class Deadline(BaseException):  # not an Exception: no candidate handler may catch it as a failure
    """The arm's wall-clock budget ended (raised from SIGALRM inside whatever is training)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Any:
    """A hard wall-clock budget for an arm: whatever runs at the end (an Optuna trial, an EvoFusion
    candidate) is interrupted and does not count, so every arm gets exactly the same time."""
    def fire(*_: Any) -> None:
        raise Deadline

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validation-Pareto set (max val accuracy, min params)."""
    return [r for r in rows if not any(o["val"] >= r["val"] and o["params"] <= r["params"]
                                       and (o["val"] > r["val"] or o["params"] < r["params"]) for o in rows)]


def hv(points: list[tuple[float, float]]) -> float:
    from evofusion.objectives.pareto import hypervolume

    return float(hypervolume(np.asarray(points, dtype=float).reshape(-1, 2), np.asarray(REF)))


def finish_arm(name: str, rows: list[dict[str, Any]], a: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """Test-score the validation-Pareto set; fine-tune the best-validation student of each size class."""
    import torch
    from safetensors.torch import load_file

    from evofusion.distill import TrainConfig, evaluate_accuracy, train
    from evofusion.engine.context import cache_root, load_arrays
    from evofusion.genome import build, genome_from_dict

    data = next((cache_root() / "data").glob("fashion-mnist-*"))
    n_train = len(np.load(data / "train_y.npy", mmap_mode="r"))
    tdir = next(p.parent for p in (cache_root() / "teachers").rglob("train.npy")  # the Fashion-MNIST teacher's
                if len(np.load(p, mmap_mode="r")) == n_train)
    arrays = load_arrays(str(data), str(tdir))

    def model_of(r: dict[str, Any]) -> torch.nn.Module:
        m = build(genome_from_dict(r["genome"]))
        m.load_state_dict(load_file(r["weights"]))
        return m

    front = pareto(rows)
    test_err = {id(r): 1 - evaluate_accuracy(model_of(r), arrays["test_x"], arrays["test_y"]) for r in front}
    curve = []
    for minute in np.linspace(0, a.minutes, 9)[1:]:
        seen = [r for r in rows if r["t"] <= minute * 60]
        curve.append(round(hv([(1 - r["val"], math.log10(r["params"])) for r in pareto(seen)]) if seen else 0.0, 4))
    best: dict[str, Any] = {}
    per = a.final_minutes * 60 / len(LIMITS)
    for limit in LIMITS:
        cand = [r for r in rows if r["params"] <= limit]
        if not cand:
            best[str(limit)] = None
            continue
        r = max(cand, key=lambda r: r["val"])
        model = model_of(r)
        t0 = time.perf_counter()
        steps_per_epoch = math.ceil(len(arrays["train_y"]) / 128)
        probe = TrainConfig(steps=20, batch_size=128, alpha=0.5, temperature=4.0, augment="flip", lr=3e-3)
        tp = time.perf_counter()
        train(model_of(r), arrays["train_x"], arrays["train_y"], probe, teacher_logits=arrays["train_t"])
        step_s = (time.perf_counter() - tp) / 20
        steps = max(steps_per_epoch, int(per / max(step_s, 1e-3) * 0.85))  # fits the fine-tune budget
        train(model, arrays["train_x"], arrays["train_y"],
              TrainConfig(steps=steps, batch_size=128, alpha=0.5, temperature=4.0, augment="flip", lr=3e-3,
                          schedule="onecycle"), teacher_logits=arrays["train_t"],
              generator=torch.Generator().manual_seed(0))
        best[str(limit)] = {"params": r["params"], "val_search": r["val"],
                            "test": evaluate_accuracy(model, arrays["test_x"], arrays["test_y"]),
                            "finetune_steps": steps, "finetune_s": time.perf_counter() - t0}
    return {"arm": name, "evaluated": len(rows), "front": len(front), "search_s": seconds,
            "hv_test": hv([(test_err[id(r)], math.log10(r["params"])) for r in front]),
            "hv_val_curve": curve, "best": best,
            "max_steps_total": max((r.get("steps_total") or 0) for r in rows) if rows else 0}


def arm(a: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    out = Path(a.out) / f"{a.name}-{a.seed}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if a.name.startswith("supernet:"):  # supernet:SHARE:FINETUNE, a variant with other budget shares
        _, share, tune = a.name.split(":")
        a.supernet_share, a.supernet_finetune = float(share), float(tune)
    rows = (run_optuna(a.seed, a, out) if a.name == "optuna" else run_supernet(a.seed, a, out)
            if a.name.startswith("supernet") else run_ef(a.name, a.seed, a, out))
    res = finish_arm(a.name, rows, a, time.perf_counter() - t0)
    res["seed"] = a.seed
    (out / "result.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="all", choices=["all", "arm", "teacher", "table"])
    ap.add_argument("--name", default="ef_mf")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--final-minutes", type=float, default=5)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rungs", type=int, nargs="+", default=[150, 450, 1350, 4050])
    ap.add_argument("--eta", type=float, default=3.0)
    ap.add_argument("--supernet-widths", type=int, nargs="+", default=[16, 32, 64])  # the supernet's max widths
    ap.add_argument("--supernet-share", type=float, default=0.55)  # share of the budget spent training it
    ap.add_argument("--supernet-val", type=int, default=1000)  # val examples a subnet is scored on
    ap.add_argument("--supernet-finetune", type=float, default=0.35)  # share of the budget: KD fine-tune of winners
    ap.add_argument("--supernet-finetune-k", type=int, default=12)  # winners spread along the front fine-tuned
    # how the fine-tune seconds are shared: the same step count for every winner, or the same seconds
    ap.add_argument("--supernet-finetune-split", choices=["steps", "time"], default="time")
    ap.add_argument("--arms", nargs="+", default=["ef_mf", "optuna", "ef_nomf", "ef_random", "ef_fixed"])
    ap.add_argument("--out", default="bench_runs/peers")
    a = ap.parse_args()
    if a.mode == "arm":
        arm(a)
        return
    if a.mode == "table":  # the table and plot again from every result.json under --out
        results = [json.loads(f.read_text()) for f in sorted(Path(a.out).glob("*/result.json"))]
        table(results, a)
        plot(results, a.minutes, Path(a.out))
        return
    # the teacher and the cached logits first (once), so no arm pays for them
    import shutil

    from evofusion import Study

    shutil.rmtree(Path(a.out) / "_teacher_probe", ignore_errors=True)  # left by an earlier invocation
    Study.create({"data": {"name": "fashion-mnist"}, "generations": 1}, Path(a.out) / "_teacher_probe",
                 log=print).close()
    if a.mode == "teacher":
        return
    jobs = [(n, s) for n in a.arms for s in (a.seeds if n.split(":")[0] in ("ef_mf", "optuna", "supernet")
                                              else a.seeds[:1])]
    common = ["--minutes", str(a.minutes), "--final-minutes", str(a.final_minutes), "--population",
              str(a.population), "--steps", str(a.steps), "--eta", str(a.eta), "--out", a.out, "--rungs",
              *map(str, a.rungs), "--supernet-share", str(a.supernet_share), "--supernet-val", str(a.supernet_val),
              "--supernet-finetune", str(a.supernet_finetune), "--supernet-finetune-k", str(a.supernet_finetune_k),
              "--supernet-finetune-split", a.supernet_finetune_split,
              "--supernet-widths", *map(str, a.supernet_widths)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = []
    while jobs:
        pair, jobs = jobs[:2], jobs[2:]
        procs = [subprocess.Popen([sys.executable, __file__, "arm", "--name", n, "--seed", str(s), *common], env=env,
                                  stdout=open(Path(a.out) / f"{n}-{s}.log", "w"), stderr=subprocess.STDOUT)
                 for n, s in pair]
        for p in procs:
            p.wait()
        for n, s in pair:
            f = Path(a.out) / f"{n}-{s}" / "result.json"
            if f.exists():
                results.append(json.loads(f.read_text()))
        print(f"done {pair}; load average {os.getloadavg()}", flush=True)
    table(results, a)
    plot(results, a.minutes, Path(a.out))


COLOURS = {"supernet": "#ff7f0e", "ef_mf": "#1f77b4", "ef_mf_ctrl": "#17becf", "optuna": "#d62728", "ef_nomf": "#2ca02c",
           "ef_random": "#9467bd", "ef_fixed": "#7f7f7f"}


def plot(results: list[dict[str, Any]], minutes: float, out: Path) -> None:
    """Hypervolume (validation) against wall time, median over seeds per arm: ``hv_time.svg`` (for the
    README, no dependency) and ``hv_time.html`` (plotly, self-contained)."""
    by: dict[str, list[list[float]]] = {}
    for r in results:
        by.setdefault(r["arm"], []).append(r["hv_val_curve"])
    times = list(np.linspace(0, minutes, 9)[1:])
    curves = {n: [float(v) for v in np.median(c, axis=0)] for n, c in by.items()}
    w, h, pad = 640, 360, 50
    top = max([max(c) for c in curves.values()] + [0.1]) * 1.1

    def xy(t: float, v: float) -> str:
        return f"{pad + (w - 2 * pad) * t / minutes:.1f},{h - pad - (h - 2 * pad) * v / top:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
             'font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">wall time (min), one core per arm</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">'
             'hypervolume (val error, log10 params)</text>']
    for k in range(5):
        v = top * k / 4
        parts.append(f'<text x="{pad - 6}" y="{h - pad - (h - 2 * pad) * k / 4 + 4:.1f}" text-anchor="end">'
                     f'{v:.2f}</text>')
    for t in times[1::2]:
        parts.append(f'<text x="{pad + (w - 2 * pad) * t / minutes:.1f}" y="{h - pad + 16}" '
                     f'text-anchor="middle">{t:g}</text>')
    for i, (n, c) in enumerate(sorted(curves.items())):
        col = COLOURS.get(n, "#000")
        pts = " ".join([xy(0, 0)] + [xy(t, v) for t, v in zip(times, c, strict=True)])
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2"/>')
        parts.append(f'<text x="{pad + 10}" y="{pad + 14 * i}" fill="{col}">{n} ({len(by[n])} seed'
                     f'{"s" if len(by[n]) > 1 else ""})</text>')
    parts.append("</svg>")
    (out / "hv_time.svg").write_text("\n".join(parts))
    try:
        import plotly.graph_objects as go
    except ImportError:
        return
    fig = go.Figure([go.Scatter(x=[0, *times], y=[0, *c], name=n, line={"color": COLOURS.get(n)})
                     for n, c in sorted(curves.items())])
    fig.update_layout(xaxis_title="wall time (min)", yaxis_title="hypervolume (val error, log10 params)",
                      title="search_vs_peers: hypervolume over wall time (median of seeds)")
    fig.write_html(out / "hv_time.html", include_plotlyjs=True)


def table(results: list[dict[str, Any]], a: argparse.Namespace) -> None:
    print(f"\nFashion-MNIST, {a.minutes:g} min search + <= {a.final_minutes:g} min fine-tune per arm, 1 thread, "
          f"two arms side by side; load average at the end {os.getloadavg()[0]:.2f}")
    print("| arm | seeds | HV test (median) | best test <= 10k | best test <= 50k | evaluated | HV(val) at 1/4, 1/2, 1 of the time |")
    print("|---|---|---|---|---|---|---|")
    by: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault(r["arm"], []).append(r)
    for name, rs in by.items():
        def med(vals: list[float | None]) -> str:
            v = [x for x in vals if x is not None]
            return f"{np.median(v):.4f}" if v else "-"
        b10 = [r["best"]["10000"]["test"] if r["best"].get("10000") else None for r in rs]
        b50 = [r["best"]["50000"]["test"] if r["best"].get("50000") else None for r in rs]
        curve = np.median([r["hv_val_curve"] for r in rs], axis=0)
        print(f"| {name} | {len(rs)} | {med([r['hv_test'] for r in rs])} | {med(b10)} | {med(b50)} | "
              f"{int(np.median([r['evaluated'] for r in rs]))} | {curve[1]:.3f}, {curve[3]:.3f}, {curve[-1]:.3f} |")


if __name__ == "__main__":
    main()
