from __future__ import annotations

import numpy as np
import pytest

from evofusion.errors import ConfigError
from evofusion.genome.space import SearchSpace
from evofusion.operators import operators_for
from evofusion.strategies import COMPLETE, Result, Variation
from tests.strategies.synthetic_problem import SPACES

SPACE = SPACES["student"]


def results(space: SearchSpace, n: int, seed: int = 0) -> list[Result]:
    rng = np.random.default_rng(seed)
    return [Result(100 + i, space.sample(rng), COMPLETE, {"accuracy": 0.5}) for i in range(n)]


def test_defaults_are_registered_ops_of_the_encoding() -> None:
    v = Variation(SPACE)
    assert v.mutation_names == operators_for(SPACE, 1)
    assert v.crossover_names == operators_for(SPACE, 2)


def test_child_is_new_inside_space_and_records_its_history() -> None:
    v = Variation(SPACE, crossover_prob=0.5, mutation_prob=0.5)
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for _ in range(40):
        a, b = results(SPACE, 2, seed=int(rng.integers(1 << 30)))
        p = v.make_child([a, b], rng, seen)
        assert SPACE.contains(p.genome)
        assert p.genome.hash not in {a.genome.hash, b.genome.hash} | seen
        assert p.parents in ((100,), (100, 101))
        assert p.operator is not None
        ops = p.operator.split("+")
        assert set(p.operator_args) == set(ops)
        assert all(not info.get("noop") for info in p.operator_args.values())
        assert (len(p.parents) == 2) == (ops[0] in v.crossover_names)
        seen.add(p.genome.hash)


def test_mutation_only_uses_one_parent() -> None:
    v = Variation(SPACE, crossover_prob=0.0, mutation_prob=1.0, mutation_ops=["mutate_width"])
    a, b = results(SPACE, 2)
    p = v.make_child([a, b], np.random.default_rng(1), set())
    assert p.parents == (100,) and p.operator == "mutate_width"
    assert p.genome.stages != a.genome.stages


def test_crossover_then_mutation_names_both() -> None:
    v = Variation(SPACE, crossover_prob=1.0, mutation_prob=1.0, mutation_ops=["mutate_kernel"],
                  crossover_ops=["uniform_stage_crossover"])
    rng = np.random.default_rng(2)
    names = set()
    for seed in range(10):
        a, b = results(SPACE, 2, seed=seed)
        names.add(v.make_child([a, b], rng, set()).operator)
    assert "uniform_stage_crossover+mutate_kernel" in names


def test_duplicate_child_is_retried_with_a_mutation() -> None:
    # No mutation is asked for, but a clone of the parent must not come back.
    v = Variation(SPACE, crossover_prob=0.0, mutation_prob=0.0)
    (a,) = results(SPACE, 1)
    p = v.make_child([a], np.random.default_rng(3), set())
    assert p.genome.hash != a.genome.hash and p.operator in v.mutation_names


def test_gives_up_after_retries_and_accepts() -> None:
    # A one-point space: every mutation is a noop, so the parent comes back after the retries.
    space = SearchSpace(min_stages=1, max_stages=1, widths=(8,), min_depth=1, max_depth=1, kernels=(3,),
                        activations=("relu",), pools=("max",), allow_skip=False, head_kinds=("gap",),
                        head_hidden=(0,))
    v = Variation(space, crossover_prob=0.0, mutation_prob=1.0)
    (a,) = results(space, 1)
    p = v.make_child([a], np.random.default_rng(0), set())
    assert p.genome == a.genome and p.operator is None and p.operator_args == {}


def test_deterministic_given_rng() -> None:
    v = Variation(SPACE)
    a, b = results(SPACE, 2)
    c1 = v.make_child([a, b], np.random.default_rng(9), set())
    c2 = v.make_child([a, b], np.random.default_rng(9), set())
    assert c1 == c2


@pytest.mark.parametrize("kwargs, field", [
    ({"crossover_prob": 2.0}, "crossover_prob"), ({"mutation_prob": -1}, "mutation_prob"),
    ({"mutation_ops": ["nope"]}, "mutation_ops"), ({"mutation_ops": ["stage_crossover"]}, "mutation_ops"),
    ({"crossover_ops": ["one_point"]}, "crossover_ops"), ({"crossover_ops": "one_point"}, "crossover_ops"),
])
def test_bad_config_names_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        Variation(SPACE, **kwargs)
    assert e.value.field == field
