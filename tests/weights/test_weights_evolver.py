"""Evolver: greedy DE merging of a population of weight vectors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load, save

from evofusion.weights.evolver import Evolver

TARGET = torch.linspace(-1.0, 1.0, 12)


def sphere(v: torch.Tensor) -> float:  # a loss: every weight strategy minimizes
    return float(((v - TARGET) ** 2).sum())


def make(seed: int, p: int = 6) -> Evolver:
    pop = torch.randn(p, 12, generator=torch.Generator().manual_seed(100))
    return Evolver(pop, [sphere(v) for v in pop], torch.Generator().manual_seed(seed), F=0.6, CR=0.7)


def test_child_replaces_parent_only_when_better() -> None:
    ev = make(0)
    start = ev.fitness.clone()
    for _ in range(25):
        before_pop, before_fit = ev.population.clone(), ev.fitness.clone()
        children = ev.ask()
        scores = torch.tensor([sphere(c) for c in children], dtype=torch.float64)
        replaced = ev.tell(scores)
        assert torch.equal(replaced, scores < before_fit)  # strictly better
        assert torch.equal(ev.population[replaced], children[replaced])
        assert torch.equal(ev.population[~replaced], before_pop[~replaced])
        assert bool((ev.fitness <= before_fit).all())  # monotone per member
    assert ev.generation == 25 and ev.n_replaced > 0
    assert ev.best()[1] < float(start.min())
    assert ev.best()[1] == pytest.approx(sphere(ev.best()[0]))


def test_failed_child_never_replaces() -> None:
    ev = make(0)
    before = ev.population.clone()
    ev.ask()
    replaced = ev.tell([math.nan] * 3 + [math.inf] * 3)
    assert not bool(replaced.any()) and torch.equal(ev.population, before)


def test_mutant_uses_three_other_members_and_crossover() -> None:
    pop = torch.arange(4, dtype=torch.float32)[:, None].repeat(1, 50)  # member i is all i
    ev = Evolver(pop, [0.0] * 4, torch.Generator().manual_seed(3), F=0.5, CR=0.0)
    children = ev.ask()
    for i in range(4):
        others = [r for r in range(4) if r != i]
        changed = torch.nonzero(children[i] != pop[i]).flatten()
        assert len(changed) == 1  # CR = 0: only the forced coordinate comes from the mutant
        # x_r1 + F (x_r2 - x_r3) with r1, r2, r3 distinct and != i (none of these values equals i)
        values = {a + 0.5 * (b - c) for a in others for b in others for c in others if len({a, b, c}) == 3}
        assert float(children[i, changed[0]]) in values


def test_same_seed_same_run_different_seed_different_run() -> None:
    a, b, c = make(5), make(5), make(6)
    for _ in range(5):
        a.step(sphere)
        b.step(sphere)
        c.step(sphere)
    assert torch.equal(a.population, b.population) and torch.equal(a.fitness, b.fitness)
    assert not torch.equal(a.population, c.population)


def test_state_round_trip_also_between_ask_and_tell() -> None:
    ref = make(2)
    for _ in range(3):
        ref.step(sphere)
    children = ref.ask()
    state, tensors = json.loads(json.dumps(ref.state_dict())), load(save(ref.tensors()))
    other = make(99)
    other.load_state_dict(state, tensors)
    for ev in (ref, other):
        ev.tell([sphere(c) for c in children])
        for _ in range(3):
            ev.step(sphere)
    assert torch.equal(ref.population, other.population) and ref.generation == other.generation == 7


def test_from_models_adds_merges() -> None:
    base = torch.zeros(12)
    thetas = torch.randn(3, 12, generator=torch.Generator().manual_seed(1))
    ev = Evolver.from_models(base, thetas, sphere, torch.Generator().manual_seed(0))
    assert ev.population.shape == (6, 12)
    torch.testing.assert_close(ev.population[3], thetas.mean(0))
    torch.testing.assert_close(ev.population[4], thetas.sum(0))
    torch.testing.assert_close(ev.fitness[5].item(), sphere(ev.population[5]))
    with pytest.raises(ValueError, match="at least 4 members"):
        Evolver(thetas, [0.0] * 3, torch.Generator())
    with pytest.raises(ValueError, match="unknown merge"):
        Evolver.from_models(base, thetas, sphere, torch.Generator(), merges=("soup",))
