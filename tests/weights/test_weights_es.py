"""ES with fitness-weighted fusion of Gaussian offspring."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load, save

from evofusion.weights.es import ESFusion

TARGET = torch.linspace(-1.0, 1.0, 20)


def sphere(v: torch.Tensor) -> float:  # a loss: every weight strategy minimizes
    return float(((v - TARGET) ** 2).sum())


def test_parent_moves_toward_target() -> None:
    es = ESFusion(torch.zeros(20), torch.Generator().manual_seed(0), sigma=0.1, offspring=16,
                  temperature=0.5, standardize=True, sigma_decay=0.99, antithetic=True)
    start = sphere(es.parent)
    for _ in range(60):
        es.step(sphere)
    assert sphere(es.parent) < 0.3 * start
    assert es.best()[1] < 0.3 * start


def test_non_finite_fitness_gets_no_weight() -> None:
    es = ESFusion(torch.zeros(4), torch.Generator().manual_seed(1), sigma=1.0, offspring=4, elites=0)
    rows = es.ask()
    es.tell([math.nan, 0.0, math.inf, 0.0])  # equal finite scores -> plain mean of rows 1 and 3
    torch.testing.assert_close(es.parent, (rows[1] + rows[3]) / 2)
    before = es.parent.clone()
    es.ask()
    es.tell([math.nan, math.inf, math.nan, -math.inf])  # all failed: keep the parent
    assert torch.equal(es.parent, before)


def test_softmax_weights_by_hand() -> None:
    es = ESFusion(torch.zeros(3), torch.Generator().manual_seed(2), sigma=1.0, offspring=2, elites=0,
                  temperature=2.0)
    rows = es.ask()
    es.tell([0.0, -2.0])  # losses: softmax(-loss / T)
    w = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    torch.testing.assert_close(es.parent, w[0] * rows[0] + w[1] * rows[1])


def test_sigma_schedule_and_floor() -> None:
    es = ESFusion(torch.zeros(3), torch.Generator().manual_seed(0), sigma=0.1, sigma_decay=0.5,
                  sigma_min=0.01, offspring=2, elites=0)
    seen = []
    assert es.sigma == 0.1
    for _ in range(6):
        es.ask()
        es.tell([0.0, 1.0])
        seen.append(es.sigma)
    assert seen == pytest.approx([0.05, 0.025, 0.0125, 0.01, 0.01, 0.01])


def test_antithetic_pairs() -> None:
    parent = torch.arange(5.0)
    es = ESFusion(parent, torch.Generator().manual_seed(0), sigma=0.3, offspring=6, antithetic=True)
    rows = es.ask()
    assert rows.shape == (7, 5) and torch.equal(rows[6], parent)  # the parent row comes last
    torch.testing.assert_close(rows[:3] + rows[3:6], 2 * parent.expand(3, 5))
    with pytest.raises(ValueError, match="offspring"):
        ESFusion(parent, torch.Generator(), offspring=5, antithetic=True)


def test_worse_parent_restores_best_elite() -> None:
    es = ESFusion(torch.zeros(3), torch.Generator().manual_seed(0), sigma=1.0, offspring=2, elites=1)
    rows = es.ask()
    es.tell([-1.0, -5.0, 0.0])  # offspring 1 is the elite (loss -5.0); the parent becomes the fusion
    assert es.n_restored == 0 and es.best()[1] == -5.0
    assert not torch.equal(es.parent, rows[1])
    es.ask()
    es.tell([0.0, 0.0, -2.0])  # the fused parent's loss -2.0 > -5.0: restore the elite
    assert es.n_restored == 1 and torch.equal(es.parent, rows[1])
    rows3 = es.ask()
    es.tell([-9.0, 0.0, -5.0])  # the restored parent holds; a better offspring becomes the elite
    assert es.n_restored == 1 and torch.equal(es.best()[0], rows3[0]) and es.best()[1] == -9.0


def test_non_differentiable_accuracy_fitness() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50, 2, generator=g) + torch.tensor([3.0, 0.0]),
                   torch.randn(50, 2, generator=g) - torch.tensor([3.0, 0.0])])
    y = torch.cat([torch.zeros(50, dtype=torch.long), torch.ones(50, dtype=torch.long)])

    def accuracy(v: torch.Tensor) -> float:  # a 2x2 linear classifier scored through argmax
        return float(((x @ v.view(2, 2)).argmax(1) == y).float().mean())

    def error(v: torch.Tensor) -> float:  # the loss the minimizing ES is told
        return -accuracy(v)

    start = torch.tensor([-1.0, 1.0, 0.0, 0.0])  # predicts the wrong class almost everywhere
    es = ESFusion(start, torch.Generator().manual_seed(1), sigma=0.5, offspring=12, temperature=0.2,
                  standardize=True)
    assert accuracy(start) < 0.1
    for _ in range(25):
        es.step(error)
    assert accuracy(es.best()[0]) >= 0.95


def test_state_round_trip() -> None:
    def make() -> ESFusion:
        return ESFusion(torch.zeros(20), torch.Generator().manual_seed(4), sigma=0.1, offspring=8,
                        temperature=0.5, standardize=True, elites=2)

    ref = make()
    for _ in range(3):
        ref.step(sphere)
    rows = ref.ask()
    state, tensors = ref.state_dict(), load(save(ref.tensors()))
    other = ESFusion(torch.ones(20), torch.Generator().manual_seed(77))
    other.load_state_dict(json.loads(json.dumps(state)), tensors)
    for es in (ref, other):
        es.tell([sphere(r) for r in rows])
        for _ in range(3):
            es.step(sphere)
    assert torch.equal(ref.parent, other.parent) and ref.sigma == other.sigma
    assert ref.elite_fitness == other.elite_fitness and len(ref.elite_fitness) == 2
