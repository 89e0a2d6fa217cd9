"""Contract suite: every registered strategy, on the synthetic problem of ``synthetic_problem``."""

from __future__ import annotations

import json
import math

import pytest

from evofusion.errors import ConfigError
from evofusion.operators import operators_for
from evofusion.strategies import FAILED, STRATEGIES, Result, Strategy
from tests.strategies.synthetic_problem import SPACES, drive, evaluate, make_strategy

NAMES = STRATEGIES.names()
ENCODINGS = [e for e, space in SPACES.items() if operators_for(space, 1)]


def held_results(strategy: Strategy) -> list[Result]:
    """Every Result the strategy keeps in an attribute (population, archive ...)."""
    held = []
    for value in vars(strategy).values():
        if isinstance(value, list | tuple) and value and all(isinstance(v, Result) for v in value):
            held.extend(value)
    return held


def test_builtin_strategies_registered() -> None:
    assert {"random", "ga", "nsga2", "regularized"} <= set(NAMES)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", NAMES)
def test_ask_returns_n_valid_proposals(name: str, encoding: str) -> None:
    s = make_strategy(name, encoding=encoding)
    for gen in range(4):
        n = 5 if gen % 2 else 7
        proposals = s.ask(n)
        assert len(proposals) == n
        for p in proposals:
            assert p.genome.kind == encoding
            assert SPACES[encoding].contains(p.genome)
            if p.parents:
                assert p.operator is None or set(p.operator_args) == set(p.operator.split("+"))
        start = s.n_asked - n
        s.tell([evaluate(start + i, p, s.objectives) for i, p in enumerate(proposals)])
    assert s.n_asked == 24 and s.n_told == 24


@pytest.mark.parametrize("name", [n for n in NAMES if n != "random"])
def test_evolving_strategies_make_children_with_history(name: str) -> None:
    s = make_strategy(name, seed=0)
    told: list[Result] = []
    drive(s, generations=4, n=6, told=told)
    ids = {r.candidate_id for r in told}
    children = [r for r in told if r.parents]
    assert children, f"{name} never made a child"
    assert all(set(r.parents) <= ids for r in children)


@pytest.mark.parametrize("name", NAMES)
def test_failed_and_nan_results_never_enter_state(name: str) -> None:
    s = make_strategy(name)
    told: list[Result] = []
    drive(s, generations=4, n=6, told=told)
    bad = {r.candidate_id for r in told if r.status == FAILED or not all(
        isinstance(v, float) and math.isfinite(v) for v in r.values.values()) or not r.values}
    assert bad, "the synthetic problem must produce failures"
    assert s.n_failed == len(bad)
    held = held_results(s)
    assert all(r.candidate_id not in bad for r in held)
    assert all(r.usable(s.objectives) for r in held)
    state = json.loads(json.dumps(s.state_dict()))
    for key in ("population", "archive"):
        for d in state["extra"].get(key, []):
            assert d["candidate_id"] not in bad


@pytest.mark.parametrize("name", NAMES)
def test_all_failed_generation_is_survivable(name: str) -> None:
    s = make_strategy(name)
    proposals = s.ask(4)
    s.tell([Result(i, p.genome, FAILED, {}, p.parents, "oom") for i, p in enumerate(proposals)])
    assert held_results(s) == []
    assert len(s.ask(4)) == 4


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_run_different_seed_different_run(name: str, encoding: str) -> None:
    a = drive(make_strategy(name, seed=1, encoding=encoding), generations=3, n=6)
    b = drive(make_strategy(name, seed=1, encoding=encoding), generations=3, n=6)
    c = drive(make_strategy(name, seed=2, encoding=encoding), generations=3, n=6)
    assert a == b
    assert a != c


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_json_and_resume_equals_uninterrupted(name: str) -> None:
    full = make_strategy(name, seed=3)
    log_full = drive(full, generations=5, n=6)

    first = make_strategy(name, seed=3)
    log_first = drive(first, generations=2, n=6)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = make_strategy(name, seed=999)  # its own rng state must be overwritten
    resumed.load_state_dict(state)
    log_rest = drive(resumed, generations=3, n=6)

    assert log_first + log_rest == log_full
    assert json.dumps(resumed.state_dict(), sort_keys=True) == json.dumps(full.state_dict(), sort_keys=True)


@pytest.mark.parametrize("name", NAMES)
def test_load_state_of_another_strategy_raises(name: str) -> None:
    other = next(n for n in NAMES if n != name)
    with pytest.raises(ValueError, match="strategy"):
        make_strategy(name).load_state_dict(make_strategy(other).state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_told_order_does_not_matter(name: str) -> None:
    logs = []
    for reverse in (False, True):
        s = make_strategy(name, seed=4)
        log = []
        for _ in range(3):
            start = s.n_asked
            proposals = s.ask(6)
            results = [evaluate(start + i, p, s.objectives) for i, p in enumerate(proposals)]
            s.tell(results[::-1] if reverse else results)
            log += [p.genome.hash for p in proposals]
        logs.append(log)
    assert logs[0] == logs[1]


@pytest.mark.parametrize("name", NAMES)
def test_ask_needs_positive_n(name: str) -> None:
    with pytest.raises(ValueError):
        make_strategy(name).ask(0)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_parameter_names_the_field(name: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_strategy(name, bogus_param=1)
    assert e.value.field == "bogus_param"


BAD_PARAMS = [
    ("random", {"max_tries": 0}, "max_tries"),
    ("ga", {"population_size": 1}, "population_size"),
    ("ga", {"population_size": 2.5}, "population_size"),
    ("ga", {"tournament_size": 1}, "tournament_size"),
    ("ga", {"population_size": 6, "tournament_size": 7}, "tournament_size"),
    ("ga", {"population_size": 6, "elitism": 6}, "elitism"),
    ("ga", {"elitism": -1}, "elitism"),
    ("ga", {"selection": "roulette"}, "selection"),
    ("ga", {"crossover_prob": 1.5}, "crossover_prob"),
    ("ga", {"mutation_prob": -0.1}, "mutation_prob"),
    ("ga", {"mutation_ops": ["no_such_op"]}, "mutation_ops"),
    ("ga", {"crossover_ops": ["mutate_width"]}, "crossover_ops"),
    ("nsga2", {"population_size": 0}, "population_size"),
    ("nsga2", {"crossover_prob": True}, "crossover_prob"),
    ("nsga2", {"mutation_ops": "mutate_width"}, "mutation_ops"),
    ("regularized", {"population_size": 1}, "population_size"),
    ("regularized", {"sample_size": 0}, "sample_size"),
    ("regularized", {"population_size": 6, "sample_size": 7}, "sample_size"),
    ("regularized", {"mutation_ops": ["bit_flip"]}, "mutation_ops"),
]


@pytest.mark.parametrize("name, params, field", BAD_PARAMS)
def test_bad_params_raise_config_error_naming_field(name: str, params: dict, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_strategy(name, **params)
    assert e.value.field == field
    assert field in str(e.value)
