"""Benchmark 5(c): feature + logit KD vs logit KD alone, same student, Fashion-MNIST.

Every condition trains the same ~19k-parameter student (3 stages, widths 16-32-48) from the same
initialisation for the same number of steps with the same recipe, from the cached zoo teacher
(small_cnn, about 140k parameters, 92.7% test accuracy); only the distillation terms differ:

* ``logit KD``: alpha * CE + (1 - alpha) * T^2 * KL (the default of the project).
* ``+ FitNets MSE``: plus MSE between the student's middle stage (1x1 conv adapter, 32 -> 64
  channels, pooled to 4x4) and the teacher's ``features.conv4`` map cached pooled to 4x4.
* ``+ attention transfer``: plus AT (beta = 1000) between the student's middle stage and the
  teacher's ``features.conv5`` attention map cached at 7x7.
* ``at100`` / ``cka`` (extra, ``--conditions``): AT with beta = 100; linear CKA between the
  student's penultimate features and the teacher's (``classifier:in``), no adapter.
* ``+ text (wordllama)``: plus a contrastive alignment of the student's penultimate features,
  projected by a linear adapter to 256-d, with the WordLlama embeddings of the class names
  (a language teacher loaded offline from the files its wheel ships).

Teacher features are computed once (one teacher pass over the data) and memory-mapped, like the
cached logits; that one-time cost is reported apart. The table gives test accuracy (mean +- std over
seeds; the best-validation weights of each run), training wall time per run (with validation; on a
shared machine this moves with the load) and the step cost measured apart: short bursts without
validation, interleaved condition by condition and repeated (medians), with its ratio to logit KD,
plus what a live teacher forward pass per batch would add (what the cache avoids).

Run: ``.venv/bin/python benchmarks/feature_kd.py`` (defaults: 3 seeds x 4 conditions x 1000 steps on
all 54000 training images; budget about 20-25 minutes on a busy 2-core machine, single-threaded
torch; the default is what docs/cdka.md reports). ``--data-fraction 0.1`` lets the student see
only 10% of the training images (the teacher saw all of them); ``--no-cost`` skips the step-cost
bursts. Results also go to ``<--out>/results.json`` (default ``bench_runs/feature_kd``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from evofusion.config import validate_config
from evofusion.data import load_dataset
from evofusion.distill import TrainConfig, evaluate_accuracy, train
from evofusion.distill.cdka import FeatureKD, FeatureTerm
from evofusion.engine.context import cache_root
from evofusion.engine.study import resolve_teacher
from evofusion.genome import StageGene, StudentGenome, build
from evofusion.objectives.metrics import count_params
from evofusion.teachers import TeacherCache
from evofusion.teachers.features import FeatureCache, TeacherTap, load_features, teacher_features
from evofusion.teachers.text import class_names_for, text_embeddings

GENOME = StudentGenome(stages=(StageGene(16), StageGene(32), StageGene(48)),
                       taps={"mid": "depth0.5", "penultimate": "features"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--data-fraction", type=float, default=1.0,
                    help="share of the 54000 training images the student sees (the teacher saw all)")
    ap.add_argument("--cost", action=argparse.BooleanOptionalAction, default=True, help="measure step cost")
    ap.add_argument("--conditions", default="kd,mse,at,text")
    ap.add_argument("--cost-repeats", type=int, default=5, help="interleaved timing bursts per condition")
    ap.add_argument("--cost-steps", type=int, default=40, help="steps per timing burst (no validation)")
    ap.add_argument("--out", default="bench_runs/feature_kd")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    cfg = validate_config({"data": {"name": "fashion-mnist"}})
    splits = load_dataset("fashion-mnist", val_fraction=cfg.data.val_fraction, seed=0)
    root = cache_root(None)
    teacher = resolve_teacher(cfg, splits, root)
    assert teacher is not None
    t0 = time.perf_counter()
    logits = TeacherCache(root / "teachers").get(teacher, splits)
    t_logits = time.perf_counter() - t0
    taps = [TeacherTap("features.conv4", "pool", 4), TeacherTap("features.conv5", "attention", 7),
            TeacherTap("classifier:in")]
    t0 = time.perf_counter()
    fc = FeatureCache(root / "teachers")
    dirs = fc.get(teacher, splits, taps)
    t_feats = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = text_embeddings("wordllama", class_names_for("fashion-mnist", splits.num_classes))
    t_text = time.perf_counter() - t0
    conv4, att5, pen = (load_features(d) for d in dirs)
    x, y = splits.train.tensors()
    val, test = splits.val.tensors(), splits.test.tensors()
    tl = logits.logits("train")
    teacher_test = evaluate_accuracy(teacher.module, *test) if teacher.module is not None else float("nan")

    def terms(name: str) -> list[FeatureTerm]:
        if name == "mse":
            return [FeatureTerm("mid", conv4, loss="mse", weight=1.0, adapter="conv1x1")]
        if name == "at":
            return [FeatureTerm("mid", att5, loss="at", weight=1000.0)]
        if name == "at100":
            return [FeatureTerm("mid", att5, loss="at", weight=100.0)]
        if name == "cka":
            return [FeatureTerm("penultimate", pen, loss="cka", weight=1.0)]
        if name == "text":
            return [FeatureTerm("penultimate", table=table, loss="contrastive", weight=0.5, adapter="linear",
                                temperature=0.1)]
        return []

    labels = {"kd": "logit KD", "mse": "+ FitNets MSE (conv4, 1x1 adapter)", "at": "+ attention transfer (conv5)",
              "text": "+ text alignment (wordllama, contrastive)", "at100": "+ attention transfer (conv5, beta 100)",
              "cka": "+ CKA (penultimate vs teacher classifier:in)"}
    conds = [c for c in args.conditions.split(",") if c]
    tcfg = TrainConfig(steps=args.steps, batch_size=128, lr=3e-3, alpha=0.5, temperature=4.0,
                       eval_every=max(1, args.steps // 4), data_fraction=args.data_fraction)
    runs: list[dict] = []
    for seed in range(args.seeds):
        for c in conds:
            torch.manual_seed(seed)
            model = build(GENOME)
            fk = FeatureKD(terms(c)) if c != "kd" else None
            rep = train(model, x, y, tcfg, teacher_logits=tl, val=val,
                        generator=torch.Generator().manual_seed(seed), feature_kd=fk)
            acc = evaluate_accuracy(model, *test)
            runs.append({"condition": c, "seed": seed, "test_accuracy": acc, "val_accuracy": rep.best_val_accuracy,
                         "seconds": rep.seconds, "steps": rep.steps,
                         "adapter_params": sum(p.numel() for p in fk.adapters.parameters()) if fk else 0,
                         "last_terms": fk.last if fk else {}})
            print(f"seed {seed} {c:5s} test {acc:.4f} {rep.seconds:6.1f} s", flush=True)
            (out_dir / "results.json").write_text(json.dumps({"runs": runs}, indent=1))

    # step cost, measured apart: short bursts without validation, interleaved condition by condition
    # and repeated, so that the load of a shared machine hits every condition alike (medians)
    burst: dict[str, list[float]] = {c: [] for c in conds}
    bcfg = TrainConfig(steps=args.cost_steps, batch_size=128, lr=3e-3, schedule="constant")
    for r in range(args.cost_repeats if args.cost else 0):
        for c in conds:
            torch.manual_seed(r)
            model = build(GENOME)
            rep = train(model, x, y, bcfg, teacher_logits=tl, generator=torch.Generator().manual_seed(r),
                        feature_kd=FeatureKD(terms(c)) if c != "kd" else None)
            burst[c].append(rep.seconds / rep.steps * 1000)
    step_ms = {c: statistics.median(v) if v else float("nan") for c, v in burst.items()}
    # what the cache avoids: the teacher's forward pass on one batch (with the tap hooks), per step
    live = []
    for r in range(max(1, args.cost_repeats) * 4 if args.cost else 0):
        xb = x[r * 128:(r + 1) * 128]
        t0 = time.perf_counter()
        teacher_features(teacher, xb, taps)
        live.append((time.perf_counter() - t0) * 1000)
    live_ms = statistics.median(live) if live else float("nan")
    print(f"\nstudent: {count_params(build(GENOME))} params; teacher: small_cnn "
          f"{sum(p.numel() for p in teacher.module.parameters()) if teacher.module is not None else '?'} params, "
          f"test {teacher_test:.4f}; {round(len(x) * args.data_fraction)} training images, {args.steps} steps x 128, {args.seeds} seeds\n")
    print("| condition | test accuracy % (mean ± std) | train s / run (median) | ms / step (interleaved) | "
          "step cost vs logit KD | adapter params |")
    print("|---|---|---|---|---|---|")
    summary = []
    for c in conds:
        rs = [r for r in runs if r["condition"] == c]
        accs = [r["test_accuracy"] * 100 for r in rs]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        mean = f"{statistics.mean(accs):.2f} ± {sd:.2f}" if accs else "-"
        secs = statistics.median(r["seconds"] for r in rs) if rs else float("nan")
        ratio = f"{step_ms[c] / step_ms['kd']:.2f}x" if args.cost and "kd" in step_ms else "-"
        n_adapter = rs[0]["adapter_params"] if rs else "-"
        ms = f"{step_ms[c]:.1f}" if args.cost else "-"
        print(f"| {labels[c]} | {mean} | {secs:.1f} | {ms} | {ratio} | {n_adapter} |")
        summary.append({"condition": c, "mean": statistics.mean(accs) if accs else None, "std": sd, "seconds": secs,
                        "step_ms": step_ms[c], "step_ms_all": burst[c]})
    if args.cost and "kd" in step_ms:
        print(f"\na live teacher (forward pass with taps per batch, which the cache avoids) would add "
              f"{live_ms:.1f} ms / step, i.e. {(step_ms['kd'] + live_ms) / step_ms['kd']:.2f}x logit KD")
    print(f"\none-time teacher cost: logits {t_logits:.1f} s (cache {'hit' if not logits.computed else 'miss'}), "
          f"features {t_feats:.1f} s (hits {fc.hits}, misses {fc.misses}), text embeddings {t_text:.2f} s")
    (out_dir / "results.json").write_text(json.dumps(
        {"runs": runs, "summary": summary, "steps": args.steps, "seeds": args.seeds, "teacher_test": teacher_test,
         "live_teacher_ms_per_step": live_ms,
         "one_time": {"logits_s": t_logits, "features_s": t_feats, "text_s": t_text}}, indent=1))


if __name__ == "__main__":
    main()
