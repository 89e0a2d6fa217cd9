"""Benchmark 5(a), online growth: grow from a tiny student vs train the final architecture from scratch.

Fashion-MNIST (54k train / 6k val / 10k test), KD from the cached zoo teacher (small_cnn, 92.7% test)
for both arms with the same recipe (AdamW 3e-3, cosine, batch 128, alpha 0.5, T 4) and the same
number of steps. Growth arm: the default tiny student (4 -> 8 channels, GAP head, 438 params) grows
every ``--grow-every`` steps by a function-preserving morph the ``--controller`` picks among the
capacity morphs (widen, deepen, widen/deepen head, kernel), up to ``--max-params``. Scratch arm: the
growth arm's final genome, freshly initialized, trained for the same steps. Both evaluate on the
same 2000 validation images every ``--grow-every`` steps.

Reported: for several validation-accuracy targets (including the lower of the two final
accuracies), the training FLOPs (3 x forward FLOPs per trained example, counting any scoring the
controller does) and the wall time each arm needed to first reach it; final val/test accuracy;
the growth events (accuracy before/after each morph).

Run: ``nice -n 19 .venv/bin/python benchmarks/growth_vs_scratch.py``; budget <= 20 minutes with
1 torch thread on a busy 2-core machine (17.6 minutes measured at load 7-9, see docs/growth.md).
``--reuse-scratch DIR`` skips the scratch arm when an earlier run trained the same final genome.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from evofusion.data import load_dataset
from evofusion.growth import GrowthRun
from evofusion.store import RunStore

CAPACITY_OPS = ["fp_widen", "fp_deepen", "fp_widen_head", "fp_deepen_head", "fp_kernel"]


def _run(cfg: dict[str, Any], run_dir: Path, splits: Any, logits: Any) -> tuple[dict[str, Any], list, list, Any]:
    shutil.rmtree(run_dir, ignore_errors=True)
    run = GrowthRun.create(cfg, run_dir, log=lambda *a: None, splits=splits, teacher_logits=logits)
    try:
        out = run.run()
        from evofusion.viz import write_html_report

        write_html_report(run.store)
        curve, events = run.store.growth_curve(), _events(run.store)
        return out, curve, events, run.teacher_logits
    finally:
        run.close()


def _events(store: RunStore) -> list[dict[str, Any]]:
    from evofusion.viz.report import growth_events

    return growth_events(store)


def _first(curve: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    return next((c for c in curve if c["val_accuracy"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--grow-every", type=int, default=75)
    ap.add_argument("--max-params", type=int, default=10000)
    ap.add_argument("--controller", default="random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3, help="AdamW peak learning rate (both arms)")
    ap.add_argument("--rewarm", type=int, default=0, help="growth.rewarm_steps (LR ramp after each morph)")
    ap.add_argument("--widen-init", default="fresh", choices=["split", "fresh"],
                    help="growth.widen_init: new units as Net2WiderNet copies or random-in / zero-out")
    ap.add_argument("--trigger", default="clock", choices=["clock", "plateau"], help="growth.trigger")
    ap.add_argument("--reuse-scratch", default=None,
                    help="scratch run dir of an earlier invocation with the same final genome (skips that arm)")
    ap.add_argument("--out", default="bench_runs/growth_vs_scratch")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    out_dir = Path(args.out)
    splits = load_dataset("fashion-mnist", seed=0)
    base: dict[str, Any] = {
        "seed": args.seed, "data": {"name": "fashion-mnist"}, "train": {"lr": args.lr},
        "growth": {"steps": args.steps, "grow_every": args.grow_every, "max_params": args.max_params,
                   "eval_size": 2000, "operators": CAPACITY_OPS, "rewarm_steps": args.rewarm,
                   "widen_init": args.widen_init, "trigger": args.trigger},
        "controller": {"name": args.controller},
    }
    grown, g_curve, g_events, logits = _run(base, out_dir / "grow", splits, None)
    scratch_cfg = {**base, "start": grown["genome"], "growth": {**base["growth"], "max_events": 0}}
    if args.reuse_scratch:
        with RunStore(args.reuse_scratch, lock=False, readonly=True) as store:
            scratch, s_curve = store.get_meta("growth_summary"), store.growth_curve()
        if scratch["genome"] != grown["genome"]:
            raise SystemExit("--reuse-scratch: that run trained another genome; run without it")
    else:
        scratch, s_curve, _, _ = _run(scratch_cfg, out_dir / "scratch", splits, logits)

    print(f"## Growth vs scratch on Fashion-MNIST ({args.steps} steps each, controller {args.controller}, "
          f"seed {args.seed}, lr {args.lr}, LR re-warm-up after a morph: {args.rewarm or 'off'} steps, "
          f"widen init {args.widen_init}, trigger {args.trigger}, grow every {args.grow_every})\n")
    print("| arm | params (final) | final val acc | test acc | training FLOPs (total) | wall s (total) |")
    print("|---|---|---|---|---|---|")
    for name, r in (("growth (tiny -> final)", grown), ("final arch from scratch", scratch)):
        print(f"| {name} | {r['params']} | {r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} | "
              f"{r['train_flops'] / 1e12:.3f} T | {r['seconds']:.0f} |")
    common = min(g_curve[-1]["val_accuracy"], s_curve[-1]["val_accuracy"])
    targets = sorted({0.70, 0.75, 0.80, 0.85, round(common, 4)})
    print("\n### Cost to first reach a validation accuracy (2000-image val subset, checked every "
          f"{g_curve[0]['step']} steps (growth) / {s_curve[0]['step']} steps (scratch))\n")
    print("| target val acc | growth: step | growth: TFLOPs | growth: s | scratch: step | scratch: TFLOPs | "
          "scratch: s | FLOPs ratio (growth/scratch) | time ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in targets:
        a, b = _first(g_curve, t), _first(s_curve, t)

        def cells(c: dict[str, Any] | None) -> str:
            return "not reached | - | -" if c is None else \
                f"{c['step']} | {c['train_flops'] / 1e12:.3f} | {c['seconds']:.0f}"

        ratio = f"{a['train_flops'] / b['train_flops']:.2f} | {a['seconds'] / b['seconds']:.2f}" \
            if a and b else "- | -"
        print(f"| {t:.4f} | {cells(a)} | {cells(b)} | {ratio} |")
    print(f"\n### Growth events ({len(g_events)})\n")
    print("| step | operator | params before -> after | val acc before -> after | change (pp) | "
          "val acc >= 100 steps later | change then (pp) |")
    print("|---|---|---|---|---|---|---|")
    worst = worst_later = 0.0
    for e in g_events:
        d = 100 * (e["acc_after"] - e["acc_before"])
        worst = min(worst, d)
        later = next((c for c in g_curve if c["step"] >= e["step"] + 100), None)
        dl = None if later is None else 100 * (later["val_accuracy"] - e["acc_before"])
        if dl is not None:
            worst_later = min(worst_later, dl)
        print(f"| {e['step']} | {e['operator']} | {e['params_before']} -> {e['params_after']} | "
              f"{e['acc_before']:.4f} -> {e['acc_after']:.4f} | {d:+.2f} | "
              + ("- | -" if later is None else f"{later['val_accuracy']:.4f} (step {later['step']}) | {dl:+.2f}")
              + " |")
    print(f"\nlargest accuracy drop across a function-preserving event: {max(0.0, -worst):.2f} pp; "
          f"largest drop 100+ steps after an event (vs just before it): {max(0.0, -worst_later):.2f} pp")
    print(f"final genome: {grown['genome']}")
    import os

    print(f"\nbenchmark wall time: {time.perf_counter() - t_start:.0f} s (budget 20 min); runs in {out_dir}; "
          f"load average {' / '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
