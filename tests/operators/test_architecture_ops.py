"""Student mutations against hand-computed results with a fixed rng."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evofusion.errors import ConfigError
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome
from evofusion.operators import create_operator
from evofusion.operators.base import Info

SPACE = SearchSpace()  # widths 4 8 12 16 24 32 48 64, 1..4 stages, depth 1..3, kernels 3 5


def _g(*widths: int, **kw: object) -> StudentGenome:
    return StudentGenome(stages=tuple(StageGene(width=w) for w in widths), **kw)  # type: ignore[arg-type]


def _apply(name: str, g: StudentGenome, seed: int = 0, space: SearchSpace = SPACE,
           **params: object) -> tuple[Any, Info]:
    return create_operator(name, space, **params).apply_with_info(g, rng=np.random.default_rng(seed))


def test_mutate_width_moves_to_a_neighbour() -> None:
    parent = _g(16)
    seen = set()
    for seed in range(20):
        child, info = _apply("mutate_width", parent, seed)
        assert info["stage"] == 0 and info["old"] == 16 and info["new"] in (12, 24)
        assert child == parent.with_stage(0, width=info["new"])
        seen.add(info["new"])
    assert seen == {12, 24}


def test_mutate_width_at_the_edges_has_one_neighbour() -> None:
    assert _apply("mutate_width", _g(4))[1] == {"stage": 0, "old": 4, "new": 8}
    assert _apply("mutate_width", _g(64))[1] == {"stage": 0, "old": 64, "new": 48}


def test_mutate_width_picks_among_stages() -> None:
    parent = _g(4, 64, 16)
    expected = {(0, 8), (1, 48), (2, 12), (2, 24)}
    seen = {(info["stage"], info["new"]) for info in
            (_apply("mutate_width", parent, seed)[1] for seed in range(40))}
    assert seen == expected


def test_remove_stage_noop_at_min_stages() -> None:
    parent = _g(8, 16)
    child, info = _apply("remove_stage", parent, space=SearchSpace(min_stages=2))
    assert info == {"noop": True}
    assert child is parent
    assert _apply("remove_stage", _g(8))[1] == {"noop": True}  # never below one stage


def test_remove_stage_removes_the_named_stage() -> None:
    parent = _g(8, 16, 24)
    child, info = _apply("remove_stage", parent, 5)
    pos = info["position"]
    assert child.stages == parent.stages[:pos] + parent.stages[pos + 1:]
    assert info["stage"]["width"] == parent.stages[pos].width


def test_add_stage_inserts_and_respects_max() -> None:
    parent = _g(8, 16)
    child, info = _apply("add_stage", parent, 3)
    pos = info["position"]
    assert len(child.stages) == 3
    assert child.stages[:pos] + child.stages[pos + 1:] == parent.stages
    assert child.stages[pos] == StageGene(**info["stage"])
    full = _g(8, 8, 8, 8)
    assert _apply("add_stage", full)[1] == {"noop": True}


def test_mutate_depth_steps_by_one_within_bounds() -> None:
    parent = StudentGenome(stages=(StageGene(width=8, depth=1), StageGene(width=8, depth=3)))
    for seed in range(10):
        child, info = _apply("mutate_depth", parent, seed)
        assert (info["stage"], info["old"], info["new"]) in {(0, 1, 2), (1, 3, 2)}
        assert child.stages[info["stage"]].depth == info["new"]


def test_single_value_spaces_give_noops() -> None:
    parent = _g(8)
    assert _apply("mutate_kernel", parent, space=SearchSpace(kernels=(3,)))[1] == {"noop": True}
    assert _apply("mutate_pool", parent, space=SearchSpace(pools=("max",)))[1] == {"noop": True}
    assert _apply("mutate_activation", parent, space=SearchSpace(activations=("relu",)))[1] == {"noop": True}
    assert _apply("toggle_skip", parent, space=SearchSpace(allow_skip=False))[1] == {"noop": True}


def test_kernel_activation_pool_skip_change_one_stage() -> None:
    parent = _g(8, 16)
    for name, field in [("mutate_kernel", "kernel"), ("mutate_activation", "activation"),
                        ("mutate_pool", "pool"), ("toggle_skip", "skip")]:
        child, info = _apply(name, parent, 7)
        i = info["stage"]
        assert info["old"] == getattr(parent.stages[i], field) != info["new"]
        assert child == parent.with_stage(i, **{field: info["new"]})


def test_mutate_head_changes_kind_or_hidden() -> None:
    parent = _g(8)
    seen = set()
    for seed in range(20):
        child, info = _apply("mutate_head", parent, seed)
        assert getattr(child.head, info["field"]) == info["new"] != info["old"]
        seen.add((info["field"], info["new"]))
    assert seen == {("kind", "flatten"), ("hidden", 32), ("hidden", 64)}


def test_mutate_head_skips_an_invalid_flatten_head() -> None:
    # 64 channels on an unpooled 64x64 map: a flatten head would have 262144 features (too many)
    parent = StudentGenome(stages=(StageGene(width=64, pool="none"),), input_size=64)
    space = SearchSpace(input_size=64, head_kinds=("gap", "flatten"), head_hidden=(0,))
    child, info = _apply("mutate_head", parent, space=space)
    assert info == {"noop": True} and child is parent


def test_mutate_width_skips_widths_that_break_the_flatten_head() -> None:
    # 48 * 32 * 32 = 49152 features is fine; 64 * 32 * 32 = 65536 is the limit; 96 would not be
    space = SearchSpace(input_size=64, widths=(48, 64, 96), pools=("max",), head_kinds=("flatten",),
                        head_hidden=(0,))
    parent = StudentGenome(stages=(StageGene(width=64),), head=HeadGene(kind="flatten"), input_size=64)
    for seed in range(10):
        assert _apply("mutate_width", parent, seed, space=space)[1] == {"stage": 0, "old": 64, "new": 48}


def test_bad_max_tries_raises() -> None:
    with pytest.raises(ConfigError, match="max_tries"):
        create_operator("mutate_width", SPACE, max_tries=0)
