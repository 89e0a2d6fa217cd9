"""MCAE, the meta-controller of architecture evolution: which morph to apply to the live student.

Three controllers behind one interface, created by name from ``CONTROLLERS``:

* ``random``: a uniformly random operator among those that can act, then a random edit of it.
* ``evolutionary``: sample ``k`` candidate edits, score each by training a copy for a short horizon
  and measuring the scalarized fitness, keep the best (a (1, k) evolution strategy per event).
* ``rl``: a softmax policy over operators and, per operator, over stages (the head is one more
  "stage"), trained by REINFORCE with a moving-average baseline (Williams, 1992). The reward of a
  decision is the change of the scalarized multi-objective fitness (MOFE, ``ObjectiveSet.fitness``)
  from that event to the next one.

Contract: ``choose(edits, ctx, rng)`` returns one of ``edits`` (or None to skip growing) using only
``rng`` for randomness; ``observe(reward)`` gets the reward of the previous choice (controllers that do
not learn ignore it); ``state_dict()`` is JSON-serializable and ``load_state_dict`` restores it
exactly, so a resumed run makes the same choices.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from evofusion.errors import ConfigError
from evofusion.genome.spec import StudentGenome
from evofusion.registry import Registry


@dataclass(frozen=True)
class Edit:
    """One applicable morph: operator name, child genome, the operator's info, child params."""

    operator: str
    genome: StudentGenome
    info: dict[str, Any]
    params: int

    @property
    def stage(self) -> int:
        return int(self.info.get("stage", -1))


class GrowthContext(Protocol):
    def score(self, edits: list[Edit]) -> list[float]:
        """Short-horizon scalarized fitness of each edit (higher is better)."""


class Controller(ABC):
    """Base of the meta-controllers (MCAE) that pick which morph a live student undergoes.

    ``operators`` fixes the action space (names of morph operators) and ``max_stages`` the stage axis
    of a policy. Contract:

    * ``choose(edits, ctx, rng)`` returns one of ``edits`` (every applicable morph that keeps the
      student within budget) or None to skip this event. It may score edits through ``ctx.score``
      (short-horizon training of copies), but never modifies ``ctx``'s live model; every random draw
      comes from ``rng``.
    * ``observe(reward)`` is called once after each applied choice, before the next ``choose``, with
      the change of the scalarized fitness since that choice (learning controllers update here).
    * ``state_dict()`` is JSON-serializable and ``load_state_dict`` restores the controller exactly
      (policy, baseline, counters); a state of another controller raises ConfigError.
    """

    name = ""

    def __init__(self, operators: list[str], max_stages: int):
        if not operators:
            raise ConfigError("controller.operators", "need at least one operator")
        self.operators = list(operators)
        self.max_stages = max_stages

    @abstractmethod
    def choose(self, edits: list[Edit], ctx: GrowthContext, rng: np.random.Generator) -> Edit | None:
        """Pick the edit to apply to the live student."""

    def observe(self, reward: float) -> None:  # noqa: B027 - a no-op hook by design
        """Reward (change of the scalarized fitness) of the previous choice."""

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ConfigError("controller", f"checkpoint holds a '{state.get('name')}' controller, not '{self.name}'")


CONTROLLERS: Registry[Controller] = Registry("controllers")


def _by_operator(edits: list[Edit]) -> dict[str, list[Edit]]:
    out: dict[str, list[Edit]] = {}
    for e in edits:
        out.setdefault(e.operator, []).append(e)
    return out


@CONTROLLERS.register("random")
class RandomController(Controller):
    """Uniformly random operator (among those with an applicable edit), then a random edit of it."""

    name = "random"

    def choose(self, edits: list[Edit], ctx: GrowthContext, rng: np.random.Generator) -> Edit | None:
        if not edits:
            return None
        groups = _by_operator(edits)
        ops = sorted(groups)
        group = groups[ops[int(rng.integers(len(ops)))]]
        return group[int(rng.integers(len(group)))]


@CONTROLLERS.register("evolutionary")
class EvolutionaryController(Controller):
    """Sample ``k`` distinct edits (operator first, then edit, as ``random`` does), score each on a
    short horizon (``ctx.score``), keep the best."""

    name = "evolutionary"

    def __init__(self, operators: list[str], max_stages: int, k: int = 4):
        super().__init__(operators, max_stages)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError("controller.k", f"must be an integer >= 1, got {k!r}")
        self.k = k  # [1, inf) candidates scored per event
        self.history: list[dict[str, Any]] = []

    def choose(self, edits: list[Edit], ctx: GrowthContext, rng: np.random.Generator) -> Edit | None:
        if not edits:
            return None
        groups = _by_operator(edits)
        pool = {op: list(range(len(g))) for op, g in groups.items()}
        picked: list[Edit] = []
        while len(picked) < min(self.k, len(edits)):
            ops = sorted(o for o, left in pool.items() if left)
            op = ops[int(rng.integers(len(ops)))]
            j = pool[op].pop(int(rng.integers(len(pool[op]))))
            picked.append(groups[op][j])
        scores = ctx.score(picked) if len(picked) > 1 else [0.0]
        best = int(np.argmax(scores))
        self.history.append({"candidates": [e.operator for e in picked], "scores": [float(s) for s in scores],
                             "chosen": best})
        return picked[best]

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = list(state.get("history", []))


def _softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits, -np.inf)
    z = z - z[mask].max()
    p = np.where(mask, np.exp(z), 0.0)
    return p / p.sum()


@CONTROLLERS.register("rl")
class RLController(Controller):
    """REINFORCE over (operator, stage) with a moving-average baseline and normalized advantages.

    Policy: ``p(op) = softmax(theta_op)`` over operators with an applicable edit, then
    ``p(stage | op) = softmax(theta_stage[op])`` over that operator's applicable stages (index
    ``max_stages`` stands for the head), then a uniform choice among that (op, stage)'s edits.
    """

    name = "rl"

    def __init__(self, operators: list[str], max_stages: int, lr: float = 0.5, baseline_decay: float = 0.8):
        super().__init__(operators, max_stages)
        if not 0 < lr <= 10:
            raise ConfigError("controller.lr", f"must be in (0, 10], got {lr!r}")
        if not 0 <= baseline_decay < 1:
            raise ConfigError("controller.baseline_decay", f"must be in [0, 1), got {baseline_decay!r}")
        self.lr = lr  # (0, 10] policy step size
        self.baseline_decay = baseline_decay  # [0, 1) EMA decay of the reward baseline
        self.theta_op = np.zeros(len(self.operators))
        self.theta_stage = np.zeros((len(self.operators), max_stages + 1))
        self.baseline: float | None = None
        self.reward_var = 0.0
        self.pending: dict[str, Any] | None = None  # the last choice, waiting for its reward
        self.history: list[dict[str, Any]] = []

    def _stage_col(self, stage: int) -> int:
        return self.max_stages if stage < 0 else min(stage, self.max_stages - 1)

    def probabilities(self, edits: list[Edit]) -> dict[str, float]:
        """Current p(op) over the operators that have an applicable edit (for reports and tests)."""
        mask = np.array([any(e.operator == o for e in edits) for o in self.operators])
        if not mask.any():
            return {}
        p = _softmax(self.theta_op, mask)
        return {o: float(p[i]) for i, o in enumerate(self.operators) if mask[i]}

    def choose(self, edits: list[Edit], ctx: GrowthContext, rng: np.random.Generator) -> Edit | None:
        edits = [e for e in edits if e.operator in self.operators]
        if not edits:
            return None
        op_mask = np.array([any(e.operator == o for e in edits) for o in self.operators])
        p_op = _softmax(self.theta_op, op_mask)
        oi = int(rng.choice(len(self.operators), p=p_op))
        mine = [e for e in edits if e.operator == self.operators[oi]]
        st_mask = np.zeros(self.max_stages + 1, dtype=bool)
        for e in mine:
            st_mask[self._stage_col(e.stage)] = True
        p_st = _softmax(self.theta_stage[oi], st_mask)
        si = int(rng.choice(self.max_stages + 1, p=p_st))
        group = [e for e in mine if self._stage_col(e.stage) == si]
        self.pending = {"op": oi, "stage": si, "op_mask": op_mask.tolist(), "stage_mask": st_mask.tolist()}
        return group[int(rng.integers(len(group)))]

    def observe(self, reward: float) -> None:
        if self.pending is None or not math.isfinite(reward):
            self.pending = None
            return
        if self.baseline is None:
            self.baseline = reward
        adv = reward - self.baseline
        self.reward_var = self.baseline_decay * self.reward_var + (1 - self.baseline_decay) * adv * adv
        adv_n = adv / (math.sqrt(self.reward_var) + 1e-3)
        a = self.pending
        op_mask, st_mask = np.array(a["op_mask"]), np.array(a["stage_mask"])
        g_op = -_softmax(self.theta_op, op_mask)
        g_op[a["op"]] += 1.0
        g_st = -_softmax(self.theta_stage[a["op"]], st_mask)
        g_st[a["stage"]] += 1.0
        self.theta_op += self.lr * adv_n * g_op
        self.theta_stage[a["op"]] += self.lr * adv_n * g_st
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        self.history.append({"op": self.operators[a["op"]], "stage": a["stage"], "reward": reward,
                             "advantage": adv_n})
        self.pending = None

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "operators": self.operators, "theta_op": self.theta_op.tolist(),
                "theta_stage": self.theta_stage.tolist(), "baseline": self.baseline,
                "reward_var": self.reward_var, "pending": self.pending, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state["operators"] != self.operators:
            raise ConfigError("controller.operators", "differ from the checkpoint's; resume with the same ones")
        self.theta_op = np.asarray(state["theta_op"], dtype=float)
        self.theta_stage = np.asarray(state["theta_stage"], dtype=float)
        self.baseline, self.reward_var = state["baseline"], float(state["reward_var"])
        self.pending, self.history = state["pending"], list(state["history"])


def create_controller(name: str, operators: list[str], max_stages: int, **params: Any) -> Controller:
    """A controller by name (``random``, ``evolutionary``, ``rl``); unknown names list the valid ones."""
    try:
        factory = CONTROLLERS.get(name)
    except KeyError as e:
        raise ConfigError("controller.name", str(e.args[0])) from None
    try:
        return factory(operators=operators, max_stages=max_stages, **params)
    except TypeError as e:
        raise ConfigError("controller.params", f"{e}") from None
