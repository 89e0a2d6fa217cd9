"""Operator controllers of the search: valid picks, determinism, learning from rewards, exact state,
the reward of a child, and the controller inside a Study (config, CLI, checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evofusion import Study
from evofusion.config import validate_config
from evofusion.errors import ConfigError
from evofusion.objectives.base import ObjectiveSet
from evofusion.strategies.operator_control import (
    OPERATOR_CONTROLLERS,
    child_reward,
    create_operator_controller,
)
from tests.conftest import tiny_config

OPS = ["mutate_width", "mutate_depth", "fp_widen", "fp_deepen"]


@pytest.mark.parametrize("name", OPERATOR_CONTROLLERS.names())
def test_picks_are_offered_deterministic_and_resume_exactly(name: str) -> None:
    a = create_operator_controller(name, OPS)
    rng = np.random.default_rng(0)
    for i in range(12):
        offered = OPS[i % 3:]
        op = a.pick(offered, rng)
        assert op in offered
        a.observe(op, 0.1 if op == "fp_widen" else -0.05)
    b = create_operator_controller(name, OPS)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))  # JSON round trip
    ra, rb = np.random.default_rng(5), np.random.default_rng(5)
    assert [a.pick(OPS, ra) for _ in range(20)] == [b.pick(OPS, rb) for _ in range(20)]
    with pytest.raises(ValueError, match="none of"):
        a.pick(["add_stage"], ra)


@pytest.mark.parametrize("name", ["bandit", "rl"])
def test_learning_controllers_prefer_the_operator_that_pays(name: str) -> None:
    c = create_operator_controller(name, OPS)
    rng = np.random.default_rng(1)
    reward_rng = np.random.default_rng(2)
    for _ in range(150):
        op = c.pick(OPS, rng)
        c.observe(op, (0.05 if op == "fp_deepen" else -0.02) + 0.01 * reward_rng.standard_normal())
    picks = [c.pick(OPS, rng) for _ in range(200)]
    assert picks.count("fp_deepen") > 0.6 * len(picks), {o: picks.count(o) for o in OPS}
    s = c.summary()
    assert s["fp_deepen"]["mean_reward"] > 0 > s["mutate_width"]["mean_reward"]


def test_random_controller_stays_uniform() -> None:
    c = create_operator_controller("random", OPS)
    rng = np.random.default_rng(0)
    for _ in range(100):
        c.observe("fp_deepen", 1.0)
    picks = [c.pick(OPS, rng) for _ in range(800)]
    assert all(150 < picks.count(o) < 250 for o in OPS)


def test_controller_state_of_another_kind_or_operator_set_is_refused() -> None:
    b = create_operator_controller("bandit", OPS)
    with pytest.raises(ConfigError, match="'rl' operator controller"):
        b.load_state_dict(create_operator_controller("rl", OPS).state_dict())
    with pytest.raises(ConfigError, match="operators"):
        b.load_state_dict(create_operator_controller("bandit", OPS[:2]).state_dict())


def test_bad_controller_params_are_named() -> None:
    with pytest.raises(ConfigError, match="controller.c"):
        create_operator_controller("bandit", OPS, c=-1)
    with pytest.raises(ConfigError, match="controller.lr"):
        create_operator_controller("rl", OPS, lr=0)
    with pytest.raises(ConfigError, match="controller.params"):
        create_operator_controller("bandit", OPS, nope=1)
    with pytest.raises(ConfigError, match="controller.name"):
        create_operator_controller("evolutionary", OPS)


def test_child_reward_is_the_fitness_gain_or_the_failure_reward() -> None:
    obj = ObjectiveSet.from_names(["accuracy", "params"], ["params <= 1000"])
    parent = {"accuracy": 0.5, "params": 500.0}
    child = {"accuracy": 0.7, "params": 500.0}
    assert child_reward(child, "COMPLETE", parent, obj) == pytest.approx(obj.fitness(child) - obj.fitness(parent))
    assert child_reward(child, "COMPLETE", parent, obj) > 0
    assert child_reward(None, "FAILED", parent, obj) == -1.0
    assert child_reward({"accuracy": 0.9, "params": 5000.0}, "INFEASIBLE", parent, obj, -0.5) == -0.5
    assert child_reward({"accuracy": float("nan"), "params": 500.0}, "COMPLETE", parent, obj) == -1.0


def test_config_names_a_bad_controller(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="controller.name.*bandit"):
        validate_config(tiny_config(controller={"name": "evolutionary"}))
    with pytest.raises(ConfigError, match="controller.failure_reward"):
        validate_config(tiny_config(controller={"name": "bandit", "failure_reward": 3}))
    with pytest.raises(ConfigError, match="controller.*'random' makes no mutated children"):
        Study.create(tiny_config(controller={"name": "bandit"}, **{"strategy.name": "random"}), tmp_path / "r",
                     log=lambda *_: None)
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="controller.params.*nope"):
        Study.create(tiny_config(controller={"name": "rl", "params": {"nope": 1}}), tmp_path / "r2",
                     log=lambda *_: None)


def test_a_search_with_a_controller_rewards_each_mutated_child(tmp_path: Path) -> None:
    s = Study.create(tiny_config(generations=3, controller={"name": "bandit"}), tmp_path / "r", log=lambda *_: None)
    try:
        s.optimize()
        ctrl = s.strategy.variation.controller
        rows = {r["id"]: r for r in s.store.candidates()}
        state, _ = s.store.latest_checkpoint()
    finally:
        s.close()
    # children whose last operator is a mutation (a crossover-only child teaches the controller nothing)
    mutated = [r for r in rows.values() if r["operator"] and r["operator"].split("+")[-1] in ctrl.operators]
    assert mutated and len(ctrl.history) == len(mutated)
    obj = ObjectiveSet.from_names(["accuracy", "params"], [])
    for h, r in zip(ctrl.history, sorted(mutated, key=lambda r: r["id"]), strict=True):
        assert h["operator"] == r["operator"].split("+")[-1]
        parent = rows[r["parents"][0]]
        assert h["reward"] == pytest.approx(child_reward(r["objective_values"], r["status"],
                                                         parent["objective_values"], obj))
    assert state["controller"]["name"] == "bandit" and state["controller"]["history"] == ctrl.history


def test_controller_from_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from evofusion.cli import app
    from evofusion.store import RunStore

    args = ["search", "--data", "digits", "--limit", "300", "--population", "4", "--generations", "2", "--seed", "7",
            "--set", "space.widths=[4, 8]", "--set", "space.max_stages=2", "--set", "teacher.epochs=20",
            "--steps", "6", "--top-k", "0", "--quiet"]
    r = CliRunner().invoke(app, [*args, "--controller", "rl", "--run-dir", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    with RunStore(tmp_path / "r", lock=False, readonly=True) as s:
        assert s.config()["controller"]["name"] == "rl"
        assert s.latest_checkpoint()[0]["controller"]["name"] == "rl"
    r = CliRunner().invoke(app, [*args, "--controller", "evolutionary", "--run-dir", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "controller.name" in r.output and not (tmp_path / "bad").exists()
