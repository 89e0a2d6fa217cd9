"""Benchmark: GA pruning with KD in the loop (the winning ticket) vs uniform L1-norm pruning, random
masks and the ticket's architecture trained from scratch, at matched parameter counts.

For each teacher (SimpleCNN stand-in = the cached small_cnn Fashion-MNIST teacher; ResNet-18 at
width 0.25), on Fashion-MNIST:

1. ``PruneStudy``: GA (elitism 2, tournament 3, per-channel bits, half the initial population seeded
   from L1 importance), objective = validation accuracy after a short KD fine-tune (``--steps`` steps,
   early stopping), hard constraint ``params <= --target-frac * teacher params``; the winning ticket
   then gets the full KD fine-tune (``--final-epochs``, patience 2).
2. Uniform L1: every group keeps the same share of its highest-L1 channels, the largest share with
   at most the ticket's parameters; the same KD fine-tune from the teacher's weights.
3. Random masks: the same per-group shares, channels drawn at random (``--random-draws``, mean).
4. Scratch: the ticket's architecture from a random initialization, the same KD fine-tune.

With ``--encoding layer --levels L`` the genome is one keep-ratio level per group instead of channel
bits and (default) every candidate is scaled up to the target (``prune/budget.py``), so the GA
compares allocations at equal parameters; ``--tilt-baseline`` adds the hand rule "thin layers keep
more" (L1-ranked) at the ticket's parameters, so a win is not just that rule.

Every baseline gets the ticket's whole training budget: the same short in-search KD fine-tune,
then the same final KD fine-tune. All KD uses cached teacher logits; the final numbers are on the full 10k test set. Wall-time budget:
about 25-35 min per teacher on one busy CPU thread with the defaults (``torch.set_num_threads(1)``).
Run: ``python benchmarks/prune_kd_ga.py --teacher DIR --name resnet18 [--target-frac 0.1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.user_net, by import path

from evofusion.config import validate_config  # noqa: E402
from evofusion.distill.loop import TrainConfig
from evofusion.engine.context import load_arrays
from evofusion.genome.prune import PruneGenome
from evofusion.objectives.metrics import flops_and_macs
from evofusion.prune import PruneStudy
from evofusion.prune.baselines import (
    final_train_config,
    kd_finetune,
    match_params,
    random_masks,
    tilted_masks,
    uniform_masks,
)
from evofusion.prune.evaluate import pruned_from_teacher
from evofusion.prune.model import build_pruned, input_shape

BASELINES = ("l1", "tilted", "random", "scratch")


def train_user_net(out: Path, data: str, epochs: float, seed: int) -> Path:
    """Train benchmarks/user_net.py's MobileGN on ``data`` (labels only, AdamW, cosine, flip
    augmentation) once; its safetensors weights, reused by a later run of the same --out."""
    from safetensors.torch import save_file

    from benchmarks.user_net import mobile_gn
    from evofusion.data import load_dataset
    from evofusion.distill import TrainConfig, evaluate_accuracy, train

    path = out / "user-net.safetensors"
    if path.exists():
        return path
    splits = load_dataset(data)
    x, y = splits.train.tensors()
    torch.manual_seed(seed)
    model = mobile_gn()
    t0 = time.perf_counter()
    train(model, x, y, TrainConfig(epochs=epochs, steps=None, batch_size=128, lr=3e-3, schedule="cosine",
                                   augment="flip"), val=splits.val.tensors(),
          generator=torch.Generator().manual_seed(seed))
    acc = evaluate_accuracy(model, *splits.test.tensors())
    print(f"user net mobile_gn: {sum(p.numel() for p in model.parameters())} params, test acc {acc:.4f}, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", help="teacher dir (or omit with --user-net)")
    ap.add_argument("--user-net", action="store_true", help="prune benchmarks/user_net.py:mobile_gn (depthwise "
                    "convs, GroupNorm, residual adds, an MLP block), trained here first by plain backprop")
    ap.add_argument("--user-epochs", type=float, default=6.0)
    ap.add_argument("--name", required=True)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--target-frac", type=float, default=0.1)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--final-epochs", type=float, default=3.0)
    ap.add_argument("--random-draws", type=int, default=2)
    ap.add_argument("--encoding", default="channel", choices=["channel", "block", "layer"])
    ap.add_argument("--levels", type=int, default=8, help="block: chunks per group; layer: keep-ratio steps")
    ap.add_argument("--fill-budget", default=None, choices=["on", "off"],
                    help="scale candidates up to the target (default: on exactly with --encoding layer)")
    ap.add_argument("--importance-fraction", type=float, default=0.5)
    ap.add_argument("--tilt-baseline", type=float, default=0.5, help="also row 'size-tilted L1' with this "
                    "tilt (a group of size s keeps r * (s/smallest)^-tilt; 0 = leave the row out)")
    ap.add_argument("--out", default="bench_runs/prune")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baselines", action="store_true", help="only the winning ticket (a compression scan)")
    ap.add_argument("--baselines", default=",".join(BASELINES),
                    help=f"comma-separated subset of {','.join(BASELINES)} (the rows to run; the baselines do "
                    "not depend on the search seed, so a second seed may run fewer)")
    a = ap.parse_args()
    wanted = set() if a.no_baselines else {b.strip() for b in a.baselines.split(",") if b.strip()}
    if wanted - set(BASELINES):
        ap.error(f"--baselines: unknown {sorted(wanted - set(BASELINES))}; choose from {','.join(BASELINES)}")
    if not a.tilt_baseline:
        wanted.discard("tilted")
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    out = Path(a.out) / f"{a.name}-t{a.target_frac}-s{a.seed}"
    cfg = validate_config({
        "data": {"name": a.data}, "seed": a.seed, "generations": a.generations, "threads": 1,
        "strategy": {"name": "ga", "population": a.population,
                     "params": {"elitism": 2, "tournament_size": 3, "mutation_prob": 0.9}},
        "objectives": {"names": ["accuracy"]},
        "distill": {"steps": a.steps, "patience": 2, "lr": 3e-3, "alpha": 0.5, "temperature": 4.0},
        "final": {"epochs": a.final_epochs, "patience": 2, "augment": "flip"},
    })
    from evofusion.teachers import Teacher

    pcfg = {"target_params": None, "init": "l1", "importance_fraction": a.importance_fraction, "val_limit": 2000,
            "eval_every": 100, "encoding": a.encoding, "levels": a.levels,
            "fill_budget": None if a.fill_budget is None else a.fill_budget == "on"}
    if a.user_net:  # a network outside the zoo, trained by this benchmark (cached in --out)
        out.mkdir(parents=True, exist_ok=True)
        pcfg.update(teacher=str(train_user_net(out, a.data, a.user_epochs, a.seed)),
                    teacher_module="benchmarks.user_net:mobile_gn")
        from benchmarks.user_net import mobile_gn

        t_params = sum(p.numel() for p in mobile_gn().parameters())
    elif a.teacher:
        pcfg["teacher"] = a.teacher
        t_params = sum(p.numel() for p in Teacher.from_dir(a.teacher).module.parameters())
    else:
        ap.error("--teacher DIR or --user-net")
    target = int(a.target_frac * t_params)
    pcfg["target_params"] = target
    if (out / "run.db").exists():
        study = PruneStudy.resume(out)
    else:
        study = PruneStudy.create(cfg, out, prune=pcfg)
    t0 = time.perf_counter()
    study.optimize()
    search_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = study.finish()
    final_s = time.perf_counter() - t0
    setup = study.setup
    arrays = load_arrays(setup.context.data_dir, setup.context.teacher_dir)
    tcfg = final_train_config(cfg)
    pre = TrainConfig(**setup.context.train)  # the ticket's in-search fine-tune, given to every baseline too
    vl = setup.context.extra.get("val_limit")
    space = setup.space
    template = space.template
    shape = input_shape(template)
    t_flops = setup.teacher_info["flops"]
    ticket_params = rep["ticket"]["params"]
    rows = {}

    def row(name: str, res: dict, model: torch.nn.Module) -> None:
        flops = flops_and_macs(model, shape)[0]
        rows[name] = {**res, "flops": flops, "compression": 1 - res["params"] / t_params,
                      "flops_reduction": 1 - flops / t_flops}
        print(f"{name}: {json.dumps(rows[name])}", flush=True)

    weights = setup.context.extra["teacher_weights"]
    ratio = None
    if "l1" in wanted:
        ratio, g_l1 = match_params(template, lambda r: uniform_masks(space.scores, r), ticket_params)
        m = pruned_from_teacher(g_l1, weights)
        row("uniform L1 + KD", kd_finetune(m, arrays, tcfg, seed=1, pre=pre, pre_val_limit=vl), m)
    if "tilted" in wanted:
        g_t = match_params(template, lambda r: tilted_masks(space.scores, r, a.tilt_baseline), ticket_params)[1]
        m = pruned_from_teacher(g_t, weights)
        row(f"size-tilted L1 (tilt {a.tilt_baseline:g}) + KD",
            kd_finetune(m, arrays, tcfg, seed=1, pre=pre, pre_val_limit=vl), m)
    if "random" in wanted and a.random_draws > 0:
        rand = []
        for d in range(a.random_draws):
            g_r = match_params(template, lambda r, d=d: random_masks(template.groups, r, np.random.default_rng(100 + d)),
                               ticket_params)[1]
            m = pruned_from_teacher(g_r, weights)
            res = kd_finetune(m, arrays, tcfg, seed=2 + d, pre=pre, pre_val_limit=vl)
            rand.append((res, m))
        res = {k: float(np.mean([r[k] for r, _ in rand])) for k in ("val_accuracy", "test_accuracy", "params", "seconds")}
        res["test_accuracy_each"] = [r["test_accuracy"] for r, _ in rand]
        row(f"random masks + KD (mean of {a.random_draws})", res, rand[0][1])
    if "scratch" in wanted:
        cand = study.store.candidate(rep["candidate_id"])
        ticket_genome = PruneGenome.from_dict(cand["genome"])
        with torch.random.fork_rng():
            torch.manual_seed(a.seed + 7)
            scratch = build_pruned(ticket_genome)
            for mod in scratch.modules():  # a fresh random init, not build_pruned's fixed seed
                if hasattr(mod, "reset_parameters"):
                    mod.reset_parameters()
        row("ticket arch from scratch + KD", kd_finetune(scratch, arrays, tcfg, seed=3, pre=pre, pre_val_limit=vl), scratch)
    t = rep["teacher"]
    k = rep["ticket"]
    result = {"teacher": t, "ticket": k, "robustness": rep["robustness"], "baselines": rows,
              "uniform_ratio": ratio, "target_params": target, "search_seconds": search_s,
              "final_seconds": final_s, "total_seconds": time.perf_counter() - t_start,
              "evaluated": study.store.count(), "config": cfg.to_dict(), "prune": pcfg}
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    print(f"\n### {a.name} on {a.data} (teacher {t['params']:.0f} params, test acc {100 * t['test_accuracy']:.2f}%)\n")
    print("| method | compression % | test acc % | Δ vs teacher (pp) | params | FLOPs reduction % |")
    print("|---|---|---|---|---|---|")
    print(f"| unpruned teacher | 0.0 | {100 * t['test_accuracy']:.2f} | 0.00 | {t['params']:.0f} | 0.0 |")
    print(f"| **GA + KD winning ticket** | {100 * k['compression']:.1f} | {100 * k['test_accuracy']:.2f} | "
          f"{100 * (k['test_accuracy'] - t['test_accuracy']):+.2f} | {k['params']:.0f} | "
          f"{100 * k['flops_reduction']:.1f} |")
    for name, r in rows.items():
        print(f"| {name} | {100 * r['compression']:.1f} | {100 * r['test_accuracy']:.2f} | "
              f"{100 * (r['test_accuracy'] - t['test_accuracy']):+.2f} | {r['params']:.0f} | "
              f"{100 * r['flops_reduction']:.1f} |")
    rb = rep["robustness"]
    print("\n| Gaussian noise sigma | " + " | ".join(f"{s:g}" for s in rb["sigma"]) + " |")
    print("|---|" + "---|" * len(rb["sigma"]))
    print("| teacher test acc % | " + " | ".join(f"{100 * v:.2f}" for v in rb["teacher"]) + " |")
    print("| ticket test acc % | " + " | ".join(f"{100 * v:.2f}" for v in rb["ticket"]) + " |")
    print(f"\nsearch {search_s:.0f} s ({study.store.count()} candidates), final fine-tune {final_s:.0f} s, "
          f"total {time.perf_counter() - t_start:.0f} s; latency teacher {t['latency_ms']:.3f} ms, "
          f"ticket {k['latency_ms']:.3f} ms (batch 1, 1 thread)")
    print(f"load average at the end (1/5/15 min): {' / '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"at the start: {' / '.join(f'{v:.2f}' for v in load_start)}")
    study.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
