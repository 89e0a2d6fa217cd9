"""MCAE controllers: valid choices, determinism, learning (RL) and exact resume of their state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evofusion.errors import ConfigError
from evofusion.genome.spec import StageGene, StudentGenome
from evofusion.growth.controller import CONTROLLERS, Edit, RLController, create_controller

OPS = ["fp_widen", "fp_deepen", "fp_kernel"]


def _edits() -> list[Edit]:
    g = StudentGenome(stages=(StageGene(4), StageGene(8)))
    out = []
    for op in OPS:
        for stage in (0, 1):
            out.append(Edit(op, g.with_stage(stage, width=8 + stage), {"stage": stage}, 100 + stage))
    out.append(Edit("fp_kernel", g, {"stage": -1}, 50))
    return out


class _Ctx:
    """Scores an edit by a fixed table (short-horizon fitness stand-in)."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, edits: list[Edit]) -> list[float]:
        self.calls += 1
        return [1.0 if (e.operator, e.stage) == ("fp_deepen", 1) else 0.0 for e in edits]


@pytest.mark.parametrize("name", CONTROLLERS.names())
def test_choice_is_one_of_the_edits_and_deterministic(name: str) -> None:
    edits = _edits()
    for seed in range(5):
        a = create_controller(name, OPS, 4).choose(edits, _Ctx(), np.random.default_rng(seed))
        b = create_controller(name, OPS, 4).choose(edits, _Ctx(), np.random.default_rng(seed))
        assert a in edits and a == b
    assert create_controller(name, OPS, 4).choose([], _Ctx(), np.random.default_rng(0)) is None


@pytest.mark.parametrize("name", CONTROLLERS.names())
def test_state_dict_round_trips_through_json(name: str) -> None:
    c = create_controller(name, OPS, 4)
    rng = np.random.default_rng(0)
    for r in (0.1, -0.2, 0.3):
        c.choose(_edits(), _Ctx(), rng)
        c.observe(r)
    c.choose(_edits(), _Ctx(), rng)  # an RL choice waiting for its reward is part of the state
    state = json.loads(json.dumps(c.state_dict()))
    d = create_controller(name, OPS, 4)
    d.load_state_dict(state)
    assert d.state_dict() == c.state_dict()
    s1, s2 = rng.bit_generator.state, None
    rng2 = np.random.default_rng(0)
    rng2.bit_generator.state = s1
    s2 = rng2
    assert c.choose(_edits(), _Ctx(), rng) == d.choose(_edits(), _Ctx(), s2)


def test_evolutionary_keeps_the_best_scored_edit() -> None:
    c = create_controller("evolutionary", OPS, 4, k=len(_edits()))
    ctx = _Ctx()
    e = c.choose(_edits(), ctx, np.random.default_rng(0))
    assert (e.operator, e.stage) == ("fp_deepen", 1) and ctx.calls == 1
    assert len(c.history[0]["scores"]) == len(_edits())


def test_random_picks_operators_uniformly() -> None:
    c = create_controller("random", OPS, 4)
    rng = np.random.default_rng(0)
    counts = {op: 0 for op in OPS}
    for _ in range(900):
        counts[c.choose(_edits(), _Ctx(), rng).operator] += 1
    assert all(250 < v < 350 for v in counts.values()), counts


def test_rl_learns_to_prefer_the_rewarded_operator_and_stage() -> None:
    c = create_controller("rl", OPS, 4, lr=0.3)
    assert isinstance(c, RLController)
    rng = np.random.default_rng(1)
    before = c.probabilities(_edits())["fp_deepen"]
    for _ in range(150):
        e = c.choose(_edits(), _Ctx(), rng)
        c.observe(1.0 if (e.operator, e.stage) == ("fp_deepen", 1) else 0.0)
    after = c.probabilities(_edits())["fp_deepen"]
    assert before == pytest.approx(1 / 3) and after > 0.8
    picks = [c.choose(_edits(), _Ctx(), rng) for _ in range(50)]
    assert sum((e.operator, e.stage) == ("fp_deepen", 1) for e in picks) > 35


def test_unknown_controller_and_bad_params_name_the_field() -> None:
    with pytest.raises(ConfigError, match="controller.name.*valid: evolutionary, random, rl"):
        create_controller("nope", OPS, 4)
    with pytest.raises(ConfigError, match="controller.k"):
        create_controller("evolutionary", OPS, 4, k=0)
    with pytest.raises(ConfigError, match="controller.params"):
        create_controller("random", OPS, 4, k=3)
    with pytest.raises(ConfigError, match="controller.lr"):
        create_controller("rl", OPS, 4, lr=-1.0)
