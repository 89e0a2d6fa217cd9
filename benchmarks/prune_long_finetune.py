"""Benchmark add-on: does a longer KD fine-tune close the gap? Continue the winning ticket of a
``prune_kd_ga.py`` run for ``--extra-epochs`` more epochs of the same KD fine-tune, and give uniform L1
pruning at matched parameters the same total budget (in-search steps + final epochs + extra epochs).

Run: ``python benchmarks/prune_long_finetune.py RUN_DIR --extra-epochs 4`` (about 10-15 min for the
ResNet-18 width-0.25 ticket on one CPU thread of a lightly loaded machine). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from evofusion.distill.loop import TrainConfig
from evofusion.engine.context import load_arrays
from evofusion.genome.prune import PruneGenome
from evofusion.prune import PruneStudy
from evofusion.prune.baselines import final_train_config, kd_finetune, match_params, uniform_masks
from evofusion.prune.evaluate import pruned_from_teacher
from evofusion.prune.model import build_pruned


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--extra-epochs", type=float, default=4.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    study = PruneStudy.resume(a.run_dir, log=lambda *x: None)
    rep = study.store.get_meta("prune_report")
    setup = study.setup
    arrays = load_arrays(setup.context.data_dir, setup.context.teacher_dir)
    final = final_train_config(study.cfg)
    extra = dataclasses.replace(final, epochs=a.extra_epochs)
    row = study.store.candidate(rep["candidate_id"])
    fin = next(f for f in study.store.finals() if f["candidate_id"] == rep["candidate_id"])
    genome = PruneGenome.from_dict(row["genome"])
    ticket = build_pruned(genome)
    ticket.load_state_dict(load_file(study.store.resolve(fin["weights_file"])))
    res_t = kd_finetune(ticket, arrays, extra, seed=11)
    template = setup.space.template
    _, g_l1 = match_params(template, lambda r: uniform_masks(setup.space.scores, r), rep["ticket"]["params"])
    l1 = pruned_from_teacher(g_l1, setup.context.extra["teacher_weights"])
    total = dataclasses.replace(final, epochs=final.epochs + a.extra_epochs)
    res_l1 = kd_finetune(l1, arrays, total, seed=12, pre=TrainConfig(**setup.context.train),
                         pre_val_limit=setup.context.extra.get("val_limit"))
    t_acc = rep["teacher"]["test_accuracy"]
    t_params = rep["teacher"]["params"]
    out = {"ticket": res_t, "uniform_l1": res_l1, "extra_epochs": a.extra_epochs,
           "final_epochs": final.epochs, "seconds": time.perf_counter() - t0}
    (Path(a.run_dir) / f"long_finetune_{a.extra_epochs:g}.json").write_text(json.dumps(out, indent=1))
    ep = final.epochs + a.extra_epochs
    print(f"\n| method ({ep:g} final KD epochs) | compression % | test acc % | Δ vs teacher (pp) | params |")
    print("|---|---|---|---|---|")
    for name, r in (("GA + KD winning ticket", res_t), ("uniform L1 + KD", res_l1)):
        print(f"| {name} | {100 * (1 - r['params'] / t_params):.1f} | {100 * r['test_accuracy']:.2f} | "
              f"{100 * (r['test_accuracy'] - t_acc):+.2f} | {r['params']} |")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    study.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
