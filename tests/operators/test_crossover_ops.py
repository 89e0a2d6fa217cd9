"""Student crossovers against hand-computed results with a fixed rng."""

from __future__ import annotations

import numpy as np

from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome
from evofusion.operators import create_operator


def _g(*widths: int, head: HeadGene | None = None) -> StudentGenome:
    return StudentGenome(stages=tuple(StageGene(width=w) for w in widths), head=head or HeadGene())


A = _g(4, 8, head=HeadGene(hidden=32))
B = _g(16, 24, 32, head=HeadGene(hidden=64))


def test_stage_crossover_follows_its_cuts() -> None:
    op = create_operator("stage_crossover", SearchSpace())
    for seed in range(20):
        child, info = op.apply_with_info(A, B, rng=np.random.default_rng(seed))
        i, j = info["cut_a"], info["cut_b"]
        assert 1 <= i <= 2 and 0 <= j <= 2 and 1 <= i + 3 - j <= 4
        assert child.stages == A.stages[:i] + B.stages[j:]
        assert child.head == (A, B)[info["head_from"]].head


def test_stage_crossover_only_draws_cuts_within_the_stage_bounds() -> None:
    # with at most two stages the only cut taking a stage from each parent is (1, 2)
    op = create_operator("stage_crossover", SearchSpace(max_stages=2))
    for seed in range(5):
        child, info = op.apply_with_info(A, B, rng=np.random.default_rng(seed))
        assert (info["cut_a"], info["cut_b"]) == (1, 2)
        assert [s.width for s in child.stages] == [4, 32]


def test_stage_crossover_noop_when_no_cut_fits() -> None:
    op = create_operator("stage_crossover", SearchSpace(max_stages=1))
    child, info = op.apply_with_info(_g(4), _g(8), rng=np.random.default_rng(0))
    assert info == {"noop": True} and child == _g(4)


def test_uniform_stage_crossover_takes_aligned_stages_from_either_parent() -> None:
    op = create_operator("uniform_stage_crossover", SearchSpace())
    lengths = set()
    for seed in range(20):
        child, info = op.apply_with_info(A, B, rng=np.random.default_rng(seed))
        mask = info["from_b"]
        assert len(mask) == 2
        head = [B.stages[k] if m else A.stages[k] for k, m in enumerate(mask)]
        tail = list((A, B)[info["length_from"]].stages[2:])
        assert list(child.stages) == head + tail
        assert child.head == (A, B)[info["head_from"]].head
        lengths.add(len(child.stages))
    assert lengths == {2, 3}


def test_uniform_stage_crossover_swap_prob_extremes() -> None:
    rng = np.random.default_rng(0)
    none = create_operator("uniform_stage_crossover", SearchSpace(), swap_prob=0.0)
    assert none.apply_with_info(A, B, rng=rng)[1]["from_b"] == [0, 0]
    every = create_operator("uniform_stage_crossover", SearchSpace(), swap_prob=1.0)
    assert every.apply_with_info(A, B, rng=rng)[1]["from_b"] == [1, 1]
