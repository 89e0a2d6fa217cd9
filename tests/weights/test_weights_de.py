"""DE (Storn & Price 1997) over real vectors: one step by hand, greedy selection, registry."""

from __future__ import annotations

import math

import pytest
import torch

from evofusion.errors import ConfigError
from evofusion.weights.base import WEIGHT_STRATEGIES, create_weight_strategy
from evofusion.weights.de import DE

P, D = 6, 5


def _setup(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(P, D, generator=torch.Generator().manual_seed(100 + seed))
    return x, (x ** 2).sum(1)


def _replay_draws(seed: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generator's draws of one DE ask, in the documented order."""
    g = torch.Generator().manual_seed(seed)
    keys = torch.rand(P, P, generator=g)
    for i in range(P):
        keys[i, i] = math.inf
    r = torch.argsort(keys, dim=1)[:, :k]
    u = torch.rand(P, D, generator=g)
    j_rand = torch.randint(D, (P,), generator=g)
    return r, u, j_rand


def test_rand_1_bin_one_step_by_hand() -> None:
    x, f = _setup()
    de = DE(x, f, torch.Generator().manual_seed(42), F=0.7, CR=0.5)
    trial = de.ask()
    r, u, j_rand = _replay_draws(42, 3)
    for i in range(P):
        r1, r2, r3 = (int(v) for v in r[i])
        assert len({r1, r2, r3, i}) == 4
        mutant = x[r1] + 0.7 * (x[r2] - x[r3])
        torch.testing.assert_close(de.last_draws["mutant"][i], mutant, rtol=0, atol=0)
        for j in range(D):
            from_mutant = bool(u[i, j] < 0.5) or j == int(j_rand[i])
            expected = mutant[j] if from_mutant else x[i, j]
            assert trial[i, j].item() == pytest.approx(expected.item(), abs=0)
            assert bool(de.last_draws["mask"][i, j]) == from_mutant
    torch.testing.assert_close(de.last_draws["r"], r)
    torch.testing.assert_close(de.last_draws["j_rand"], j_rand)


def test_current_to_best_one_step_by_hand() -> None:
    x, f = _setup(1)
    de = DE(x, f, torch.Generator().manual_seed(5), F=0.4, CR=0.8, variant="current-to-best/1")
    trial = de.ask()
    r, u, j_rand = _replay_draws(5, 2)
    best = x[int(torch.argmin(f))]
    for i in range(P):
        r1, r2 = (int(v) for v in r[i])
        assert len({r1, r2, i}) == 3
        mutant = x[i] + 0.4 * (best - x[i]) + 0.4 * (x[r1] - x[r2])
        mask = u[i] < 0.8
        mask[int(j_rand[i])] = True
        torch.testing.assert_close(trial[i], torch.where(mask, mutant, x[i]), rtol=0, atol=1e-7)


def test_greedy_selection_keeps_the_better() -> None:
    x, f = _setup()
    f = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, math.nan])  # member 5 diverged
    de = DE(x, f, torch.Generator().manual_seed(0))
    assert de.fitness[5] == math.inf
    trial = de.ask()
    told = torch.tensor([0.5, 2.0, 1.0, math.nan, math.inf, 3.0])
    accepted = de.tell(told)
    assert accepted.tolist() == [True, False, True, False, False, True]
    for i in range(P):
        torch.testing.assert_close(de.population[i], trial[i] if accepted[i] else x[i], rtol=0, atol=0)
    assert de.fitness.tolist() == [0.5, 1.0, 1.0, 1.0, 1.0, 3.0]
    vec, fit = de.best()
    assert fit == 0.5
    torch.testing.assert_close(vec, trial[0])
    assert (de.generation, de.n_evals, de.n_nonfinite) == (1, P, 2)


def test_ask_tell_protocol() -> None:
    x, f = _setup()
    de = DE(x, f, torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError):
        de.tell(f)
    de.ask()
    with pytest.raises(RuntimeError):
        de.ask()
    with pytest.raises(ValueError):
        de.tell(f[:-1])


def test_same_seed_same_trials_different_seed_different() -> None:
    x, f = _setup()
    a = DE(x, f, torch.Generator().manual_seed(3)).ask()
    b = DE(x, f, torch.Generator().manual_seed(3)).ask()
    c = DE(x, f, torch.Generator().manual_seed(4)).ask()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"F": 0.0}, "F"), ({"F": 2.5}, "F"), ({"CR": -0.1}, "CR"), ({"CR": 1.5}, "CR"),
    ({"variant": "best/2/exp"}, "variant"), ({"F": float("nan")}, "F"),
])
def test_bad_params_name_the_field(kwargs: dict, field: str) -> None:
    x, f = _setup()
    with pytest.raises(ConfigError) as err:
        DE(x, f, torch.Generator(), **kwargs)
    assert err.value.field == field


def test_population_too_small() -> None:
    x, f = _setup()
    with pytest.raises(ConfigError) as err:
        DE(x[:3], f[:3], torch.Generator())
    assert err.value.field == "population"
    DE(x[:3], f[:3], torch.Generator(), variant="current-to-best/1")  # needs only 3


def test_registry() -> None:
    import evofusion.weights.cade  # noqa: F401 - registers
    import evofusion.weights.shade  # noqa: F401 - registers

    assert {"de", "shade", "cade"} <= set(WEIGHT_STRATEGIES.names())
    x, f = _setup()
    s = create_weight_strategy("de", x, f, torch.Generator().manual_seed(0), F=0.3)
    assert isinstance(s, DE) and s.F == 0.3
    with pytest.raises(KeyError, match="valid"):
        create_weight_strategy("nope", x, f, torch.Generator())
