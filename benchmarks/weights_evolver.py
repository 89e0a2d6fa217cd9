"""Benchmark (b), Evolver: evolutionary merging vs its parents vs averaging vs TIES.

Fashion-MNIST (training split subsampled to 10k, validation 1.1k = the development set, test 2k).
A base student (8 -> 16 channels, GAP head) is trained for 1 epoch on all 10k, then fine-tuned 4
times, each on a disjoint quarter of the training data (3 epochs). Merges (average, task arithmetic,
TIES) and Evolver (population = the 4 fine-tunes + the 3 merges, DE on the vectors, dev accuracy as
fitness, ``G`` generations) all run with the fine-tunes' averaged BatchNorm statistics; every parent
runs with its own. Reported: dev and test accuracy, seconds.

Run: ``nice -n 5 .venv/bin/python benchmarks/weights_evolver.py``; about 5.5 minutes measured with 1 torch
thread on a loaded 2-core machine (training 18 s, Evolver ~5 s a generation: 7 members x 1.1k dev
images per generation); budget <= 8 minutes (fewer ``--generations`` on a slower machine).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from evofusion.data import load_dataset
from evofusion.distill import TrainConfig, evaluate_accuracy, train
from evofusion.genome import HeadGene, StageGene, StudentGenome, build
from evofusion.weights import (
    Evolver,
    PopulationEvaluator,
    average,
    load_vector,
    task_arithmetic,
    task_vectors,
    ties_merge,
    to_vector,
)

GENOME = StudentGenome(stages=(StageGene(8, depth=1), StageGene(16, depth=1)), head=HeadGene("gap"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generations", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    splits = load_dataset("fashion-mnist", limit=10000, seed=0)
    xtr, ytr = splits.train.tensors()
    dev, test = splits.val.tensors(), splits.test.tensors()

    t0 = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = build(GENOME)
    train(base, xtr, ytr, TrainConfig(epochs=1, batch_size=64, alpha=1.0, restore_best=False),
          generator=torch.Generator().manual_seed(0))
    base_vec = to_vector(base)
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(1))
    tunes = []
    for k, part in enumerate(perm.chunk(4)):
        m = copy.deepcopy(base)
        train(m, xtr[part], ytr[part], TrainConfig(epochs=3, batch_size=64, lr=2e-3, alpha=1.0,
                                                   restore_best=False),
              generator=torch.Generator().manual_seed(10 + k))
        tunes.append(m)
    train_seconds = time.perf_counter() - t0
    thetas = torch.stack([to_vector(m) for m in tunes])

    shared = copy.deepcopy(tunes[0])  # averaged BatchNorm buffers for every merged vector
    with torch.no_grad():
        for name, buf in shared.named_buffers():
            if buf.is_floating_point():
                buf.copy_(torch.stack([dict(m.named_buffers())[name] for m in tunes]).mean(0))
    dev_eval = PopulationEvaluator(shared, *dev, batch_size=1024, metric="accuracy")

    def test_acc(vec: torch.Tensor) -> float:
        load_vector(shared, vec)
        return evaluate_accuracy(shared, *test)

    rows = [("base (1 epoch)", evaluate_accuracy(base, *dev), evaluate_accuracy(base, *test), 0.0)]
    for k, m in enumerate(tunes):
        rows.append((f"parent {k} (fine-tune on quarter {k})", evaluate_accuracy(m, *dev),
                     evaluate_accuracy(m, *test), train_seconds / 4))
    best_parent = max(rows[1:], key=lambda r: r[1])
    taus = task_vectors(base_vec, thetas)
    for name, vec in (("average", average(thetas)), ("task arithmetic (scale 1)", task_arithmetic(base_vec, taus)),
                      ("TIES (density 0.2)", ties_merge(base_vec, taus, 0.2))):
        t1 = time.perf_counter()
        d = float(dev_eval.evaluate(vec[None])[0])
        rows.append((name, d, test_acc(vec), time.perf_counter() - t1))

    t1 = time.perf_counter()
    ev = Evolver.from_models(base_vec, thetas, lambda v: -float(dev_eval.evaluate(v[None])[0]),
                             torch.Generator().manual_seed(0), F=0.5, CR=0.5)
    for _ in range(args.generations):
        ev.tell(-dev_eval.evaluate(ev.ask()).double())  # minimizing: negated dev accuracy
    vec, d = ev.best()
    d = -d
    rows.append((f"Evolver ({args.generations} gen, P={ev.population.shape[0]})", d, test_acc(vec),
                 time.perf_counter() - t1))

    print(f"Fashion-MNIST, 10k train, dev = {len(dev[1])} val, {len(test[1])} test; student "
          f"{thetas.shape[1]} params; base + 4 fine-tunes: {train_seconds:.0f} s\n")
    print("| model | dev acc | test acc | seconds |")
    print("|---|---|---|---|")
    for name, d, t, s in rows:
        print(f"| {name} | {d:.4f} | {t:.4f} | {s:.1f} |")
    print(f"\nbest parent by dev: {best_parent[0]} (test {best_parent[2]:.4f})")


if __name__ == "__main__":
    main()
