"""The meta-controller in the search: which mutation operator makes each child.

A search strategy's :class:`~evofusion.strategies.variation.Variation` picks a mutation operator for
every child. By default the pick is uniform. With ``controller:`` in a search config (``--controller``
on ``evofusion search``) an *operator controller* makes the pick instead and learns from the result:
the reward of a child is its gain over its main parent, the change of the scalarized multi-objective
fitness (MOFE, ``ObjectiveSet.fitness``) -- the same reward the growth controllers of ``evofusion grow``
learn from. A FAILED child, or one that violates a constraint its parent met, is rewarded
``failure_reward``.

Three controllers, created by name from ``OPERATOR_CONTROLLERS``:

* ``random``: uniform over the operators (what the search does without a controller, as a baseline
  that records the rewards it would have learned from).
* ``bandit``: UCB1 (Auer et al., 2002) over operators on rewards scaled by their running mean
  absolute value, with an exponential forgetting factor ``decay`` so an operator that stops paying
  (widening once the students are large) loses its lead: adaptive operator selection as in
  Fialho et al.'s dynamic multi-armed bandit, simplified.
* ``rl``: a softmax policy over operators trained by REINFORCE with a moving-average baseline and
  normalized advantages (the operator axis of ``evofusion grow``'s RL controller).

Contract: ``pick(names, rng)`` returns one of ``names`` (the operators still to try for this child)
using only ``rng``; ``observe(operator, reward)`` is called once per evaluated child in candidate-id
order; ``state_dict()`` is JSON-serializable and ``load_state_dict`` restores it exactly, so a resumed
run makes the same picks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from evofusion.errors import ConfigError
from evofusion.registry import Registry


class OperatorController(ABC):
    """Base of the operator controllers. ``operators``: the mutation operators it chooses among."""

    name = ""

    def __init__(self, operators: Sequence[str]):
        if not operators:
            raise ConfigError("controller", "the strategy has no mutation operators to choose among")
        self.operators = list(operators)
        self.history: list[dict[str, Any]] = []  # one entry per observed child: operator, reward

    @abstractmethod
    def _pick(self, names: list[str], rng: np.random.Generator) -> str:
        """The pick among ``names`` (all in ``self.operators``)."""

    def pick(self, names: Sequence[str], rng: np.random.Generator) -> str:
        known = [n for n in names if n in self.operators]
        if not known:
            raise ValueError(f"none of {list(names)} is an operator of this controller ({self.operators})")
        return self._pick(known, rng)

    def observe(self, operator: str, reward: float) -> None:
        if operator not in self.operators or not math.isfinite(reward):
            return
        self.history.append({"operator": operator, "reward": float(reward)})
        self._learn(self.operators.index(operator), float(reward))

    def _learn(self, arm: int, reward: float) -> None:  # noqa: B027 - non-learning controllers
        """Update from one reward."""

    def summary(self) -> dict[str, dict[str, float]]:
        """Per operator: picks observed and mean reward (for reports and logs)."""
        out: dict[str, dict[str, float]] = {}
        for h in self.history:
            s = out.setdefault(h["operator"], {"children": 0, "mean_reward": 0.0})
            s["children"] += 1
            s["mean_reward"] += (h["reward"] - s["mean_reward"]) / s["children"]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "operators": self.operators, "history": self.history, **self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ConfigError("controller", f"checkpoint holds a '{state.get('name')}' operator controller, "
                                            f"not '{self.name}'")
        if list(state.get("operators", [])) != self.operators:
            raise ConfigError("controller", f"checkpoint's operators {state.get('operators')} differ from "
                                            f"the strategy's {self.operators}")
        self.history = [dict(h) for h in state.get("history", [])]
        self._load(state)

    def _state(self) -> dict[str, Any]:
        return {}

    def _load(self, state: dict[str, Any]) -> None:  # noqa: B027 - stateless controllers
        """Restore subclass state."""


OPERATOR_CONTROLLERS: Registry[OperatorController] = Registry("operator_controllers")


@OPERATOR_CONTROLLERS.register("random")
class RandomOperators(OperatorController):
    """Uniform over the operators (the draw the search makes without a controller)."""

    name = "random"

    def _pick(self, names: list[str], rng: np.random.Generator) -> str:
        return names[int(rng.integers(len(names)))]


def _positive(field: str, v: Any, upper: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= upper:
        raise ConfigError(f"controller.{field}", f"must be a number in (0, {upper:g}], got {v!r}")
    return float(v)


@OPERATOR_CONTROLLERS.register("bandit")
class BanditOperators(OperatorController):
    """Discounted UCB1 over operators: untried operators first (in a random order), then the largest
    ``mean + c * sqrt(2 ln N / n)`` of rewards scaled by their running mean absolute value; counts and
    sums decay by ``decay`` per observation."""

    name = "bandit"

    def __init__(self, operators: Sequence[str], c: float = 0.5, decay: float = 0.95):
        super().__init__(operators)
        self.c = _positive("c", c, 100.0)  # (0, 100] exploration weight
        self.decay = _positive("decay", decay, 1.0)  # (0, 1] forgetting per observation (1: none)
        self.counts = [0.0] * len(self.operators)
        self.sums = [0.0] * len(self.operators)
        self.scale = 0.0  # running mean |reward|

    def _pick(self, names: list[str], rng: np.random.Generator) -> str:
        idx = [self.operators.index(n) for n in names]
        untried = [i for i in idx if self.counts[i] < 1e-9]
        if untried:
            return self.operators[untried[int(rng.integers(len(untried)))]]
        total = sum(self.counts[i] for i in idx)
        scale = self.scale if self.scale > 0 else 1.0

        def ucb(i: int) -> float:
            return self.sums[i] / self.counts[i] / scale + self.c * math.sqrt(2 * math.log(max(total, 1.0))
                                                                              / self.counts[i])
        best = max(ucb(i) for i in idx)
        ties = [i for i in idx if ucb(i) >= best - 1e-12]
        return self.operators[ties[int(rng.integers(len(ties)))]]

    def _learn(self, arm: int, reward: float) -> None:
        self.counts = [n * self.decay for n in self.counts]
        self.sums = [s * self.decay for s in self.sums]
        self.counts[arm] += 1.0
        self.sums[arm] += reward
        n = len(self.history)
        self.scale += (abs(reward) - self.scale) / n

    def _state(self) -> dict[str, Any]:
        return {"c": self.c, "decay": self.decay, "counts": self.counts, "sums": self.sums, "scale": self.scale}

    def _load(self, state: dict[str, Any]) -> None:
        self.counts = [float(x) for x in state["counts"]]
        self.sums = [float(x) for x in state["sums"]]
        self.scale = float(state["scale"])


@OPERATOR_CONTROLLERS.register("rl")
class PolicyOperators(OperatorController):
    """REINFORCE over ``p(op) = softmax(theta)`` (restricted to the operators offered), with an EMA
    baseline and advantages divided by the rewards' running standard deviation."""

    name = "rl"

    def __init__(self, operators: Sequence[str], lr: float = 0.5, baseline_decay: float = 0.8):
        super().__init__(operators)
        self.lr = _positive("lr", lr, 10.0)  # (0, 10] policy step size
        if isinstance(baseline_decay, bool) or not isinstance(baseline_decay, int | float) \
                or not 0 <= baseline_decay < 1:
            raise ConfigError("controller.baseline_decay", f"must be in [0, 1), got {baseline_decay!r}")
        self.baseline_decay = float(baseline_decay)
        self.theta = [0.0] * len(self.operators)
        self.baseline: float | None = None
        self.reward_var = 0.0

    def probabilities(self, names: Sequence[str] | None = None) -> dict[str, float]:
        names = list(names or self.operators)
        z = np.array([self.theta[self.operators.index(n)] for n in names])
        p = np.exp(z - z.max())
        p /= p.sum()
        return {n: float(q) for n, q in zip(names, p, strict=True)}

    def _pick(self, names: list[str], rng: np.random.Generator) -> str:
        p = self.probabilities(names)
        return names[int(rng.choice(len(names), p=np.array([p[n] for n in names])))]

    def _learn(self, arm: int, reward: float) -> None:
        if self.baseline is None:
            self.baseline = reward
            return
        adv = reward - self.baseline
        self.reward_var = self.baseline_decay * self.reward_var + (1 - self.baseline_decay) * adv * adv
        adv /= math.sqrt(self.reward_var) + 1e-8
        p = self.probabilities()
        for i, name in enumerate(self.operators):
            self.theta[i] += self.lr * adv * ((1.0 if i == arm else 0.0) - p[name])
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward

    def _state(self) -> dict[str, Any]:
        return {"lr": self.lr, "baseline_decay": self.baseline_decay, "theta": self.theta,
                "baseline": self.baseline, "reward_var": self.reward_var}

    def _load(self, state: dict[str, Any]) -> None:
        self.theta = [float(x) for x in state["theta"]]
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self.reward_var = float(state["reward_var"])


def create_operator_controller(name: str, operators: Sequence[str], **params: Any) -> OperatorController:
    if name not in OPERATOR_CONTROLLERS.names():
        raise ConfigError("controller.name", f"unknown operator controller {name!r}; valid for search: "
                                             f"{', '.join(OPERATOR_CONTROLLERS.names())}")
    try:
        return OPERATOR_CONTROLLERS.get(name)(operators, **params)
    except TypeError as e:
        raise ConfigError("controller.params", f"{name}: {e}") from None


def child_reward(child_values: dict[str, Any] | None, child_status: str, parent_values: dict[str, Any],
                 objectives: Any, failure_reward: float = -1.0) -> float:
    """The gain of a child over its main parent: scalarized fitness difference; ``failure_reward`` for
    a FAILED child or one that violates a constraint its parent met."""
    if child_status not in ("COMPLETE", "INFEASIBLE") or not child_values:
        return failure_reward
    try:
        if objectives.violation(child_values) > objectives.violation(parent_values):
            return failure_reward
        r = objectives.fitness(child_values) - objectives.fitness(parent_values)
    except (KeyError, TypeError, ValueError):
        return failure_reward
    return float(r) if math.isfinite(r) else failure_reward
