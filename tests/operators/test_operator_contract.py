"""Contract suite run on every registered operator (a new operator is tested the day it is registered)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evofusion.genome.io import genome_from_json
from evofusion.genome.prune import PruneGenome
from evofusion.genome.prune_space import PruneSpace
from evofusion.genome.space import Genome, SearchSpace
from evofusion.operators import OPERATORS, Operator, create_operator, operators_for

N_TRIALS = 20

STUDENT_SPACE = SearchSpace()
# a cramped space: wide stages make flatten heads invalid, one kernel, no skips (many noops/retries)
TIGHT_SPACE = SearchSpace(input_size=32, min_stages=2, max_stages=3, widths=(8, 16, 512, 1024),
                          kernels=(3,), pools=("none", "max"), allow_skip=False,
                          head_kinds=("flatten", "gap"), head_hidden=(0,))
CHROMOSOME_SPACE = SearchSpace(encoding="chromosome")
TIGHT_CHROMOSOME_SPACE = SearchSpace(encoding="chromosome", chromosome_blocks=3,
                                     chromosome_base_width=64)


PRUNE_SPACE = PruneSpace(template=PruneGenome(teacher="t", arch="small_cnn", groups=(8, 16, 3),
                                               genes=(1,) * 27), scores=(tuple(range(8)), tuple(range(16)), (1, 2, 3)))
LAYER_PRUNE_SPACE = PruneSpace(template=PruneGenome(teacher="t", arch="small_cnn", groups=(8, 16, 3), genes=(4, 4, 4),
                                                    encoding="layer", levels=4))


def _spaces(op: Operator) -> list[SearchSpace]:
    if op.genome_kind == "prune":
        return [PRUNE_SPACE, LAYER_PRUNE_SPACE]
    if op.genome_kind == "chromosome":
        return [CHROMOSOME_SPACE, TIGHT_CHROMOSOME_SPACE]
    return [STUDENT_SPACE, TIGHT_SPACE]


def _parents(space: SearchSpace, arity: int, seed: int) -> list[Genome]:
    rng = np.random.default_rng(10_000 + seed)
    return [space.sample(rng) for _ in range(arity)]


@pytest.fixture(params=OPERATORS.names())
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_declares_its_contract(name: str) -> None:
    op = create_operator(name, STUDENT_SPACE)
    assert isinstance(op, Operator)
    assert op.name == name
    assert op.arity in (1, 2)
    assert op.genome_kind in ("student", "chromosome", "prune")
    assert isinstance(op.preserves_function, bool)
    assert op.__doc__


def test_children_valid_inside_space_deterministic(name: str) -> None:
    for space in _spaces(create_operator(name, STUDENT_SPACE)):
        op = create_operator(name, space)
        for seed in range(N_TRIALS):
            parents = _parents(space, op.arity, seed)
            before = [p.to_json() for p in parents]
            child, info = op.apply_with_info(*parents, rng=np.random.default_rng(seed))

            assert child.kind == op.genome_kind
            assert genome_from_json(child.to_json()) == child  # valid and round-trips
            assert space.contains(child), (name, seed, child)
            assert [p.to_json() for p in parents] == before  # parents untouched
            assert isinstance(info, dict)
            json.dumps(info)

            again, info_again = op.apply_with_info(*parents, rng=np.random.default_rng(seed))
            assert again.to_json() == child.to_json()
            assert info_again == info
            assert op.apply(*parents, np.random.default_rng(seed)) == child


def test_not_always_a_noop(name: str) -> None:
    op = create_operator(name, STUDENT_SPACE)
    space = _spaces(op)[0]
    op = create_operator(name, space)
    changed = 0
    for seed in range(N_TRIALS):
        parents = _parents(space, op.arity, seed)
        child, info = op.apply_with_info(*parents, rng=np.random.default_rng(seed))
        if child.to_json() != parents[0].to_json():
            changed += 1
            assert info.get("noop") is not True
        else:
            assert info.get("noop") is True or op.arity == 2
    assert changed > 0


def test_noop_info_means_parent_returned(name: str) -> None:
    for space in _spaces(create_operator(name, STUDENT_SPACE)):
        op = create_operator(name, space)
        for seed in range(N_TRIALS):
            parents = _parents(space, op.arity, seed)
            child, info = op.apply_with_info(*parents, rng=np.random.default_rng(seed))
            if info.get("noop"):
                assert info == {"noop": True}
                assert child == parents[0]


def test_rejects_wrong_arity_and_kind(name: str) -> None:
    op = create_operator(name, STUDENT_SPACE)
    space = _spaces(op)[0]
    op = create_operator(name, space)
    parents = _parents(space, op.arity + 1, 0)
    with pytest.raises(TypeError, match="parent"):
        op.apply_with_info(*parents, rng=np.random.default_rng(0))
    other = CHROMOSOME_SPACE if op.genome_kind == "student" else STUDENT_SPACE
    with pytest.raises(TypeError, match="genomes"):
        op.apply_with_info(*_parents(other, op.arity, 0), rng=np.random.default_rng(0))


def test_unknown_parameter_raises(name: str) -> None:
    with pytest.raises(TypeError):
        create_operator(name, STUDENT_SPACE, no_such_param=1)


def test_operators_for_filters_by_kind_and_arity() -> None:
    student = operators_for(STUDENT_SPACE)
    chromo = operators_for(CHROMOSOME_SPACE)
    prune = operators_for(PRUNE_SPACE)
    assert set(student).isdisjoint(chromo) and set(prune).isdisjoint(set(student) | set(chromo))
    assert set(student) | set(chromo) | set(prune) == set(OPERATORS.names())
    assert {"mutate_width", "add_stage", "stage_crossover"} <= set(student)
    assert operators_for(CHROMOSOME_SPACE, arity=1) == ["bit_flip"]
    assert operators_for(CHROMOSOME_SPACE, arity=2) == ["one_point"]
    assert set(operators_for(STUDENT_SPACE, arity=2)) == {"stage_crossover", "uniform_stage_crossover"}
