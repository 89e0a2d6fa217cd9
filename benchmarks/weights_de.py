"""Benchmark (a), Darwinian DE: DE / SHADE / CADE on training-loss slices vs more back-propagation.

Fashion-MNIST (training split subsampled to 10k, validation 1.1k, test 2k), a fixed ~1.5k-parameter
student (8 -> 16 channels, GAP head). ``P = 8`` back-propagation ancestors are the last 3 epochs of
3 BP runs (4 epochs each). Each DE variant then runs ``G`` generations whose fitness is the
cross-entropy on a random slice of 256 training examples, re-drawn every generation. Baselines: the
best BP parent (by validation accuracy) and that parent trained further with BP for the same wall
time as the slowest DE variant. Reported: test accuracy, train accuracy, the train-test gap, seconds.

Run: ``nice -n 5 .venv/bin/python benchmarks/weights_de.py``; about 4 minutes on 2 otherwise idle
CPU cores (2 torch threads): BP ancestors ~1 min, each DE variant ~0.25-0.5 s a generation; budget
<= 8 minutes (``--generations 60`` halves the DE part on a loaded machine).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from evofusion.data import load_dataset
from evofusion.distill import TrainConfig, evaluate_accuracy, train
from evofusion.genome import HeadGene, StageGene, StudentGenome, build
from evofusion.weights import PopulationEvaluator, create_weight_strategy, load_vector, to_vector

GENOME = StudentGenome(stages=(StageGene(8, depth=1), StageGene(16, depth=1)), head=HeadGene("gap"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generations", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    splits = load_dataset("fashion-mnist", limit=10000, seed=0)
    xtr, ytr = splits.train.tensors()
    val, test = splits.val.tensors(), splits.test.tensors()

    # ancestors: the last 3 epochs of 3 BP runs
    t0 = time.perf_counter()
    states: list[dict[str, torch.Tensor]] = []
    for run in range(3):
        with torch.random.fork_rng():
            torch.manual_seed(run)
            model = build(GENOME)
        train(model, xtr, ytr, TrainConfig(epochs=4, batch_size=64, alpha=1.0, restore_best=False),
              generator=torch.Generator().manual_seed(run),
              on_epoch=lambda e, m: states.append(copy.deepcopy(m.state_dict())) if e >= 2 else None)
    states = states[:8]
    bp_seconds = time.perf_counter() - t0
    module = build(GENOME)
    accs = []
    for s in states:
        module.load_state_dict(s)
        accs.append(evaluate_accuracy(module, *val))
    best = max(range(len(states)), key=lambda i: accs[i])
    module.load_state_dict(states[best])  # shared BatchNorm buffers: the best parent's
    pop = torch.stack([_vec(module, s) for s in states])
    module.load_state_dict(states[best])

    def measure(vec: torch.Tensor | None, state: dict | None = None) -> tuple[float, float]:
        m = build(GENOME)
        m.load_state_dict(state if state is not None else states[best])
        if vec is not None:
            load_vector(m, vec)
        return evaluate_accuracy(m, xtr, ytr), evaluate_accuracy(m, *test)

    rows = []
    tr, te = measure(None)
    rows.append(("best BP parent", tr, te, bp_seconds))
    loss_eval = PopulationEvaluator(module, xtr, ytr, batch_size=1024, metric="loss")
    slowest = 0.0
    for name, params in (("de", {"F": 0.5, "CR": 0.9}), ("shade", {}),
                         ("cade", {"total_generations": args.generations})):
        g = torch.Generator().manual_seed(0)
        t1 = time.perf_counter()
        idx = torch.randperm(len(ytr), generator=g)[:256]
        strat = create_weight_strategy(name, pop, loss_eval.evaluate(pop, idx), g, **params)
        for _ in range(args.generations):
            trials = strat.ask()
            idx = torch.randperm(len(ytr), generator=g)[:256]
            strat.tell(loss_eval.evaluate(trials, idx))
        # the final pick: lowest loss on one fresh, larger slice (slices are noisy)
        idx = torch.randperm(len(ytr), generator=g)[:2048]
        final = strat.population[int(torch.argmin(loss_eval.evaluate(strat.population, idx)))]
        secs = time.perf_counter() - t1
        slowest = max(slowest, secs)
        tr, te = measure(final)
        rows.append((f"{name.upper()} ({args.generations} gen)", tr, te, secs))

    # more BP for the same wall time as the slowest DE variant
    m = build(GENOME)
    m.load_state_dict(states[best])
    # calibrate the step time now (machine load changes), then give BP the DE variants' wall time
    probe = copy.deepcopy(m)
    t1 = time.perf_counter()
    train(probe, xtr, ytr, TrainConfig(steps=20, batch_size=64, alpha=1.0, restore_best=False),
          generator=torch.Generator().manual_seed(8))
    steps = max(1, int(slowest / ((time.perf_counter() - t1) / 20)))
    t1 = time.perf_counter()
    train(m, xtr, ytr, TrainConfig(steps=steps, batch_size=64, lr=1e-3, schedule="cosine", alpha=1.0,
                                   restore_best=False), generator=torch.Generator().manual_seed(9))
    secs = time.perf_counter() - t1
    rows.append((f"best parent + BP ({steps} steps)", evaluate_accuracy(m, xtr, ytr), evaluate_accuracy(m, *test),
                 secs))

    print(f"Fashion-MNIST, 10k train / {len(test[1])} test, student {sum(p.numel() for p in m.parameters())} "
          f"params, P=8 ancestors (BP: {bp_seconds:.0f} s for 12 epochs), slices of 256\n")
    print("| method | test acc | train acc | gap (train - test) | seconds |")
    print("|---|---|---|---|---|")
    for name, tr, te, s in rows:
        print(f"| {name} | {te:.4f} | {tr:.4f} | {tr - te:+.4f} | {s:.1f} |")


def _vec(module: torch.nn.Module, state: dict) -> torch.Tensor:
    module.load_state_dict(state)
    return to_vector(module)


if __name__ == "__main__":
    main()
