"""SHADE and CADE on a sphere; parameter bounds; resume equals an uninterrupted run (all DE family)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load, save

from evofusion.errors import ConfigError
from evofusion.weights.base import WeightStrategy, create_weight_strategy
from evofusion.weights.cade import CADE
from evofusion.weights.shade import SHADE

P, D = 20, 20


def sphere(x: torch.Tensor) -> torch.Tensor:
    return (x ** 2).sum(1)


def _init(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(P, D, generator=torch.Generator().manual_seed(seed)) * 10 - 5
    return x, sphere(x)


def test_shade_bounds_and_convergence() -> None:
    x, f = _init()
    s = SHADE(x, f, torch.Generator().manual_seed(1))
    initial = s.best()[1]
    for _ in range(100):
        trial = s.ask()
        d = s.last_draws
        assert bool((d["F"] > 0).all()) and bool((d["F"] <= 1).all())
        assert bool((d["CR"] >= 0).all()) and bool((d["CR"] <= 1).all())
        rows = torch.arange(P)
        assert bool((d["r1"] != rows).all()) and bool((d["r2"] != rows).all())
        assert bool((d["r2"] != d["r1"]).all())
        s.tell(sphere(trial))
        assert s.archive.shape[0] <= s.archive_capacity
        assert bool((s.memory_F > 0).all()) and bool((s.memory_F <= 1).all())
        assert bool((s.memory_CR >= 0).all()) and bool((s.memory_CR <= 1).all())
    assert s.best()[1] < 1e-2 * initial


def test_shade_one_step_and_memory_update_by_hand() -> None:
    x, f = _init(2)
    s = SHADE(x, f, torch.Generator().manual_seed(3), memory_size=4)
    trial = s.ask()
    d = s.last_draws
    fc = d["F"][:, None]
    mutant = x + fc * (x[d["pbest"]] - x) + fc * (x[d["r1"]] - x[d["r2"]])  # archive empty: union = x
    torch.testing.assert_close(d["mutant"], mutant, rtol=0, atol=1e-6)
    torch.testing.assert_close(trial, torch.where(d["mask"], mutant, x), rtol=0, atol=1e-6)
    n_top = torch.clamp(torch.round(d["p"] * P), 2, P)
    rank = torch.argsort(torch.argsort(f))
    assert bool((rank[d["pbest"]] < n_top).all())
    told = sphere(trial)
    better = told < f
    assert bool(better.any())
    s.tell(told)
    w = (f - told)[better].double()
    w = w / w.sum()
    sf, scr = d["F"][better].double(), d["CR"][better].double()
    assert s.memory_F[0].item() == pytest.approx(((w * sf * sf).sum() / (w * sf).sum()).item())
    assert s.memory_CR[0].item() == pytest.approx((w * scr).sum().item())
    assert s.memory_F[1:].tolist() == [0.5] * 3 and s.memory_index == 1
    assert s.archive.shape[0] == int(better.sum())


@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_cade_schedule_bounds_and_convergence(jitter: float) -> None:
    x, f = _init()
    gens = 150
    s = CADE(x, f, torch.Generator().manual_seed(1), total_generations=gens, F_min=0.2, F_max=0.8,
             CR_min=0.3, CR_max=0.9, jitter=jitter)
    initial = s.best()[1]
    fs = []
    for _ in range(gens):
        trial = s.ask()
        F, CR = s.last_draws["F"], s.last_draws["CR"]
        assert bool((F >= 0.2).all()) and bool((F <= 0.8).all())
        assert bool((CR >= 0.3).all()) and bool((CR <= 0.9).all())
        fs.append(F.float().mean().item())
        s.tell(sphere(trial))
    assert s.best()[1] < 1e-2 * initial
    if jitter == 0.0:
        assert fs[0] == pytest.approx(0.8) and fs[-1] == pytest.approx(0.2)
        assert all(a >= b for a, b in zip(fs, fs[1:], strict=False))  # cosine decay
        assert fs[gens // 2] == pytest.approx(0.5, abs=0.01)


def test_cade_increasing_schedule_and_end_value_holds() -> None:
    x, f = _init()
    s = CADE(x, f, torch.Generator(), total_generations=10, CR_schedule="increasing", CR_min=0.1, CR_max=0.7)
    assert s.scheduled(0)[1] == pytest.approx(0.1)
    assert s.scheduled(9)[1] == pytest.approx(0.7)
    assert s.scheduled(50) == s.scheduled(9)


def _run(s: WeightStrategy, n: int) -> None:
    for _ in range(n):
        s.tell(sphere(s.ask()))


@pytest.mark.parametrize(("name", "params"), [
    ("de", {"F": 0.6}), ("de", {"variant": "current-to-best/1"}), ("shade", {"memory_size": 3}),
    ("cade", {"total_generations": 12, "jitter": 0.2}),
])
@pytest.mark.parametrize("pending", [False, True])
def test_resume_equals_uninterrupted(name: str, params: dict, pending: bool) -> None:
    x, f = _init(4)
    full = create_weight_strategy(name, x, f, torch.Generator().manual_seed(9), **params)
    _run(full, 12)

    first = create_weight_strategy(name, x, f, torch.Generator().manual_seed(9), **params)
    _run(first, 5)
    asked = first.ask() if pending else None
    state = json.loads(json.dumps(first.state_dict()))  # JSON round trip
    tensors = load(save(first.tensors()))  # safetensors round trip

    y, g = _init(5)  # a different start and generator: everything must come from the checkpoint
    resumed = create_weight_strategy(name, y, g, torch.Generator().manual_seed(123), **params)
    resumed.load_state_dict(state, tensors)
    if pending:
        assert asked is not None
        resumed.tell(sphere(asked))
        _run(resumed, 6)
    else:
        _run(resumed, 7)
    torch.testing.assert_close(resumed.population, full.population, rtol=0, atol=0)
    torch.testing.assert_close(resumed.fitness, full.fitness, rtol=0, atol=0)
    assert resumed.generation == full.generation == 12
    assert resumed.state_dict() == full.state_dict()


def test_load_state_of_another_strategy_is_refused() -> None:
    x, f = _init()
    s = SHADE(x, f, torch.Generator())
    c = CADE(x, f, torch.Generator())
    with pytest.raises(ValueError, match="shade"):
        c.load_state_dict(s.state_dict(), s.tensors())


@pytest.mark.parametrize(("cls", "kwargs", "field"), [
    (SHADE, {"memory_size": 0}, "memory_size"), (SHADE, {"p_max": 0.0}, "p_max"),
    (SHADE, {"archive_rate": -1.0}, "archive_rate"), (SHADE, {"init_F": 1.5}, "init_F"),
    (CADE, {"total_generations": 0}, "total_generations"), (CADE, {"F_min": 0.0}, "F_min"),
    (CADE, {"F_min": 0.6, "F_max": 0.5}, "F_max"), (CADE, {"CR_max": 1.2}, "CR_max"),
    (CADE, {"CR_min": 0.5, "CR_max": 0.4}, "CR_max"), (CADE, {"jitter": -0.1}, "jitter"),
    (CADE, {"F_schedule": "up"}, "F_schedule"), (CADE, {"variant": "best/1"}, "variant"),
])
def test_bad_params_name_the_field(cls: type, kwargs: dict, field: str) -> None:
    x, f = _init()
    with pytest.raises(ConfigError) as err:
        cls(x, f, torch.Generator(), **kwargs)
    assert err.value.field == field
    assert field in str(err.value)


def test_nonfinite_trials_never_enter() -> None:
    x, f = _init()
    s = SHADE(x, f, torch.Generator().manual_seed(0))
    s.ask()
    s.tell(torch.full((P,), math.nan))
    torch.testing.assert_close(s.population, x, rtol=0, atol=0)
    assert s.archive.shape[0] == 0 and s.memory_index == 0
