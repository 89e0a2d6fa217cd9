"""Operator registry: plugins, unknown names, duplicates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import evofusion.registry
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import StudentGenome
from evofusion.operators import OPERATORS, Operator, create_operator, operators_for
from evofusion.operators.base import Info


class WidestFirst(Operator):
    """Test plugin: sets the first stage to the widest width of the space."""

    name = "test_widest_first"

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[StudentGenome, Info]:
        (g,) = parents
        return g.with_stage(0, width=max(self.space.widths)), {"stage": 0}


def test_custom_operator_via_add() -> None:
    OPERATORS.add("test_widest_first", WidestFirst)
    try:
        space = SearchSpace()
        assert "test_widest_first" in OPERATORS.names()
        assert "test_widest_first" in operators_for(space, arity=1)
        op = create_operator("test_widest_first", space)
        g = space.sample(np.random.default_rng(0))
        assert op.apply(g, np.random.default_rng(0)).stages[0].width == 64
        with pytest.raises(KeyError, match="already registered"):
            OPERATORS.add("test_widest_first", WidestFirst)
    finally:
        del OPERATORS._items["test_widest_first"]
    assert "test_widest_first" not in OPERATORS.names()


def test_entry_point_plugin_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEntryPoint:
        name = "test_plugin_op"

        def load(self) -> type[Operator]:
            return WidestFirst

    def fake_entry_points(group: str) -> list[FakeEntryPoint]:
        return [FakeEntryPoint()] if group == "evofusion.operators" else []

    monkeypatch.setattr(evofusion.registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(OPERATORS, "_items", dict(OPERATORS._items))  # restored afterwards
    monkeypatch.setattr(OPERATORS, "_plugins_loaded", False)
    assert isinstance(create_operator("test_plugin_op", SearchSpace()), WidestFirst)


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(KeyError) as e:
        create_operator("no_such_operator", SearchSpace())
    msg = str(e.value)
    assert "no_such_operator" in msg
    for name in ("bit_flip", "mutate_width", "stage_crossover"):
        assert name in msg


def test_duplicate_builtin_registration_raises() -> None:
    with pytest.raises(KeyError, match="already registered"):
        OPERATORS.register("bit_flip")(WidestFirst)
    assert OPERATORS.get("bit_flip").__name__ == "BitFlip"
