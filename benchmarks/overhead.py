"""Benchmark 2: what KD and the framework cost, side by side in one run (ratios; machines are noisy).

(a) Training the same student for the same steps: plain (CE only) vs KD from cached teacher outputs
    (target <= 1.1x) vs KD with a teacher forward pass per batch (what the cache avoids).
(b) A Study evaluating one candidate (build, static metrics, train, validate, save weights, database
    rows, checkpoint) vs a bare PyTorch loop training the same candidate for the same steps with the
    same KD loss and validation pass (framework overhead target <= 5%).
Each measurement is repeated ``--repeats`` times, interleaved; the table shows medians.

Run: ``.venv/bin/python benchmarks/overhead.py``; about 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from evofusion import StageGene, StudentGenome, Study, build
from evofusion.distill import TrainConfig, evaluate_accuracy, train
from evofusion.engine.context import load_arrays
from evofusion.genome import HeadGene

GENOME = StudentGenome(stages=(StageGene(8, depth=2), StageGene(16, depth=2), StageGene(32, pool="none")),
                       head=HeadGene("gap"))


def cfg_dict(steps: int) -> dict:
    return {"seed": 0, "generations": 1, "data": {"name": "fashion-mnist"},
            "distill": {"steps": steps, "batch_size": 128, "schedule": "onecycle"},
            "final": {"top_k": 0}, "strategy": {"name": "random", "population": 2}, "max_evaluations": 1,
            "inherit_weights": False}


def bare_loop(arrays: dict, steps: int, teacher_fn=None, kd: bool = True) -> float:
    """A minimal hand-written loop: same model, optimizer, schedule, KD loss, validation."""
    torch.manual_seed(0)
    model = build(GENOME)
    x, y, t = arrays["train_x"], arrays["train_y"], arrays["train_t"]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.25)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    model.train()
    perm = torch.randperm(len(x), generator=g)
    for s in range(steps):
        idx = perm[(s * 128) % len(x):(s * 128) % len(x) + 128]
        xb = x[idx]
        out = model(xb)
        loss = F.cross_entropy(out, y[idx])
        if kd:
            tl = teacher_fn(xb) if teacher_fn is not None else t[idx]
            kl = F.kl_div(F.log_softmax(out / 4, 1), F.log_softmax(tl / 4, 1), reduction="batchmean", log_target=True)
            loss = 0.5 * loss + 0.5 * 16 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    evaluate_accuracy(model, arrays["val_x"], arrays["val_y"])
    return time.perf_counter() - t0


def loop_time(arrays: dict, steps: int, kd: bool) -> float:
    torch.manual_seed(0)
    model = build(GENOME)
    t0 = time.perf_counter()
    train(model, arrays["train_x"], arrays["train_y"], TrainConfig(steps=steps, batch_size=128),
          teacher_logits=arrays["train_t"] if kd else None, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - t0


def study_time(steps: int, root: Path, i: int) -> float:
    from evofusion.strategies.base import Proposal

    study = Study.create(cfg_dict(steps), root / f"s{i}", log=lambda *_: None)
    study.strategy.ask = lambda n: [Proposal(GENOME)]  # evaluate exactly the bare loop's student
    t0 = time.perf_counter()
    study.optimize()
    dt = time.perf_counter() - t0
    assert study.store.count("COMPLETE") == 1, study.store.candidates()
    study.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=422, help="default: one epoch of Fashion-MNIST's 54k")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="evofusion-overhead-"))
    try:
        # set up once (teacher trained/cached, logits cached, arrays prepared)
        s = Study.create(cfg_dict(args.steps), root / "setup", log=print)
        ctx = s.setup.context
        teacher = s.setup.teacher
        s.close()
        arrays = load_arrays(ctx.data_dir, ctx.teacher_dir)
        times: dict[str, list[float]] = {k: [] for k in ("plain", "kd_cached", "kd_teacher_forward", "bare",
                                                          "study")}
        for i in range(args.repeats):
            times["plain"].append(loop_time(arrays, args.steps, kd=False))
            times["kd_cached"].append(loop_time(arrays, args.steps, kd=True))
            times["kd_teacher_forward"].append(bare_loop(arrays, args.steps, teacher_fn=teacher, kd=True))
            times["bare"].append(bare_loop(arrays, args.steps))
            times["study"].append(study_time(args.steps, root, i))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\nstudent {sum(p.numel() for p in build(GENOME).parameters())} params, {args.steps} steps of "
              f"batch 128, torch threads {torch.get_num_threads()}, {args.repeats} repeats (median)\n")
        print("| measurement | seconds | ratio | target |")
        print("|---|---|---|---|")
        print(f"| plain training (CE only) | {med['plain']:.2f} | 1.00 | |")
        print(f"| KD from cached teacher outputs | {med['kd_cached']:.2f} | {med['kd_cached'] / med['plain']:.3f} "
              f"| <= 1.10 |")
        print(f"| KD with a teacher forward per batch | {med['kd_teacher_forward']:.2f} | "
              f"{med['kd_teacher_forward'] / med['plain']:.2f} | (what the cache avoids) |")
        print(f"| bare PyTorch loop, one candidate | {med['bare']:.2f} | 1.00 | |")
        print(f"| Study evaluating the same candidate | {med['study']:.2f} | {med['study'] / med['bare']:.3f} "
              f"| <= 1.05 |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
