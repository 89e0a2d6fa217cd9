"""Benchmark (c), neuro-evolution: ES fusion with a few-shot fitness vs first-order MAML.

Fashion-MNIST (training split subsampled to 10k, test 2k). Classes 5-9 are held out: a student
(8 -> 16 channels, GAP head) is trained on classes 0-4 only (3 epochs). From that same student:

* **ES fusion**: Gaussian offspring of the weight vector, fused by softmax of their fitness = mean
  linear-probe accuracy on 16 fixed 5-way 5-shot episodes of the held-out classes drawn from the
  TRAIN split (``G`` rounds, 8 offspring, elite restore);
* **FOMAML**: first-order MAML meta-trained on episodes of the same held-out TRAIN examples.

All three models are scored on the same 100 fresh 5-way 5-shot (15 queries) episodes drawn from
the TEST split of the held-out classes, with two adaptation protocols: a linear probe on frozen
features (ES's protocol) and 5 SGD steps of every weight (MAML's protocol).

Run: ``nice -n 5 .venv/bin/python benchmarks/weights_fewshot.py``; about 3-4 minutes on 2 CPU cores
(2 torch threads); budget <= 8 minutes.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from evofusion.data import load_dataset
from evofusion.distill import TrainConfig, train
from evofusion.genome import HeadGene, StageGene, StudentGenome, build
from evofusion.weights import (
    ESFusion,
    fewshot_fitness,
    fomaml,
    heldout_split,
    load_vector,
    make_episodes,
    maml_eval,
    to_vector,
)

GENOME = StudentGenome(stages=(StageGene(8, depth=1), StageGene(16, depth=1)), head=HeadGene("gap"))
HOLDOUT = [5, 6, 7, 8, 9]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generations", type=int, default=25)
    ap.add_argument("--meta-steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    splits = load_dataset("fashion-mnist", limit=10000, seed=0)
    (bx, by), (hx, hy) = heldout_split(splits, HOLDOUT, "train")
    _, (tx, ty) = heldout_split(splits, HOLDOUT, "test")

    t0 = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        student = build(GENOME)
    train(student, bx, by, TrainConfig(epochs=3, batch_size=64, alpha=1.0, restore_best=False),
          generator=torch.Generator().manual_seed(0))
    pre_seconds = time.perf_counter() - t0
    fit_eps = make_episodes(hx, hy, 16, 5, 5, 5, torch.Generator().manual_seed(1))
    test_eps = make_episodes(tx, ty, 100, 5, 5, 15, torch.Generator().manual_seed(2))

    def score(model: torch.nn.Module) -> tuple[float, float]:
        return fewshot_fitness(model, test_eps), maml_eval(model, test_eps, inner_steps=5, inner_lr=0.05)

    rows = [("pre-trained on classes 0-4", *score(student), pre_seconds)]

    t1 = time.perf_counter()
    es_model = copy.deepcopy(student)
    es = ESFusion(to_vector(es_model), torch.Generator().manual_seed(3), sigma=0.02, offspring=8,
                  temperature=0.5, sigma_decay=0.97, elites=1, antithetic=True, standardize=True)

    def fitness(vec: torch.Tensor) -> float:
        load_vector(es_model, vec)
        return fewshot_fitness(es_model, fit_eps)

    for _ in range(args.generations):
        es.step(lambda v: -fitness(v))  # every weight strategy minimizes: tell the negated accuracy
    vec, loss = es.best()
    fit = -loss
    load_vector(es_model, vec)
    rows.append((f"ES fusion ({args.generations} rounds x {es.n_ask}; train-episode fitness {fit:.3f})",
                 *score(es_model), time.perf_counter() - t1))

    t1 = time.perf_counter()
    meta, _ = fomaml(copy.deepcopy(student), hx, hy, n_way=5, k_shot=5, q=5, meta_steps=args.meta_steps,
                     inner_steps=5, inner_lr=0.05, outer_lr=1e-3, generator=torch.Generator().manual_seed(4),
                     meta_batch=2)
    rows.append((f"FOMAML ({args.meta_steps} meta steps x 2 episodes)", *score(meta), time.perf_counter() - t1))

    print(f"Fashion-MNIST, held-out classes {HOLDOUT}; student {sum(p.numel() for p in student.parameters())} "
          f"params; 100 test episodes, 5-way 5-shot, 15 queries\n")
    print("| model | test acc (linear probe) | test acc (5 SGD steps, MAML protocol) | seconds |")
    print("|---|---|---|---|")
    for name, probe, adapt, s in rows:
        print(f"| {name} | {probe:.4f} | {adapt:.4f} | {s:.1f} |")


if __name__ == "__main__":
    main()
