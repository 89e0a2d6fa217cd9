"""The minimizing ask/tell contract, over every registered weight strategy (a new one is tested the
day it is registered)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load, save

import evofusion.weights  # noqa: F401 - registers every weight strategy
from evofusion.weights.base import WEIGHT_STRATEGIES, VectorStrategy, create_weight_strategy

TARGET = torch.linspace(-1.0, 1.0, 6)
NAMES = WEIGHT_STRATEGIES.names()


def loss(v: torch.Tensor) -> float:
    return float(((v - TARGET) ** 2).sum())


def make(name: str, seed: int = 0) -> VectorStrategy:
    pop = torch.randn(8, 6, generator=torch.Generator().manual_seed(100), dtype=torch.float64)
    fit = torch.tensor([loss(v) for v in pop], dtype=torch.float64)
    params = {"total_generations": 40} if name == "cade" else {}
    return create_weight_strategy(name, pop, fit, torch.Generator().manual_seed(seed), **params)


def run(s: VectorStrategy, n: int) -> None:
    for _ in range(n):
        s.step(loss)


def test_registry_holds_every_weight_strategy() -> None:
    assert set(NAMES) >= {"de", "shade", "cade", "evolver", "es"}


@pytest.mark.parametrize("name", NAMES)
def test_minimizes(name: str) -> None:
    s = make(name)
    start = min(loss(v) for v in make(name).ask())
    run(s, 40)
    vec, best = s.best()
    assert best == pytest.approx(loss(vec))
    assert best < start  # lower is better: the loss went down


@pytest.mark.parametrize("name", NAMES)
def test_ask_shape_and_pending_check(name: str) -> None:
    s = make(name)
    rows = s.ask()
    assert rows.ndim == 2 and rows.shape[1] == 6
    with pytest.raises(RuntimeError):
        s.ask()  # tell first
    s.tell(torch.tensor([loss(v) for v in rows], dtype=torch.float64))
    assert s.generation == 1


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_losses_never_become_best(name: str) -> None:
    s = make(name)
    run(s, 2)
    _, before = s.best()
    for bad in (math.nan, math.inf, -math.inf):
        rows = s.ask()
        s.tell(torch.full((len(rows),), bad, dtype=torch.float64))
        vec, best = s.best()
        assert math.isfinite(best) and best == pytest.approx(before) and best == pytest.approx(loss(vec))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_run_other_seed_other_run(name: str) -> None:
    a, b, c = make(name, 5), make(name, 5), make(name, 6)
    for s in (a, b, c):
        run(s, 4)
    assert torch.equal(a.best()[0], b.best()[0])
    assert not torch.equal(a.ask(), c.ask())


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_between_ask_and_tell(name: str) -> None:
    ref = make(name, 2)
    run(ref, 3)
    rows = ref.ask()
    state = json.loads(json.dumps(ref.state_dict()))  # JSON-serializable
    tensors = load(save(ref.tensors()))  # safetensors-ready
    other = make(name, 99)
    other.load_state_dict(state, tensors)
    for s in (ref, other):
        s.tell(torch.tensor([loss(v) for v in rows], dtype=torch.float64))
        run(s, 3)
    assert torch.equal(ref.best()[0], other.best()[0]) and ref.generation == other.generation == 7


@pytest.mark.parametrize("name", NAMES)
def test_state_of_another_strategy_is_refused(name: str) -> None:
    s = make(name)
    other = next(n for n in NAMES if n != name)
    o = make(other)
    with pytest.raises(ValueError):
        s.load_state_dict(o.state_dict(), o.tensors())
