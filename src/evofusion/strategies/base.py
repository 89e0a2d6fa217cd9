"""Ask/tell strategy contract.

``ask(n)`` returns ``n`` proposals; ``tell(results)`` receives their evaluations (in any order, each
naming its ``candidate_id``). Public ``ask``/``tell`` do the bookkeeping (counters, dropping failed
and infeasible results from selection) and call the subclass hooks ``_ask``/``_tell``.

Guarantees a strategy gives:
* all randomness comes from the ``rng`` it was given; with the same rng state and the same told
  results it asks the same proposals;
* a FAILED result, or one with a non-finite objective value, never enters a population, elite set
  or archive (constraint-violating ones rank after every feasible one);
* ``state_dict()`` is JSON-serializable and ``load_state_dict`` restores the strategy exactly,
  the rng included.

What an implementer may assume: proposals it asked are told back before the next ``ask`` (the
Study evaluates a whole batch), and results carry ``values`` with every objective's name.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evofusion.genome.io import genome_from_dict
from evofusion.genome.space import Genome, SearchSpace
from evofusion.objectives.base import ObjectiveSet
from evofusion.registry import Registry

COMPLETE, FAILED, INFEASIBLE, PENDING = "COMPLETE", "FAILED", "INFEASIBLE", "PENDING"


@dataclass
class Proposal:
    """A candidate to evaluate: its genome and how it was made."""

    genome: Genome
    parents: tuple[int, ...] = ()  # candidate ids of the parents
    operator: str | None = None  # operator names joined by '+', None for random samples
    operator_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """An evaluated candidate, as the Study tells it back."""

    candidate_id: int
    genome: Genome
    status: str  # COMPLETE | FAILED | INFEASIBLE
    values: dict[str, float] = field(default_factory=dict)
    parents: tuple[int, ...] = ()
    reason: str = ""

    def usable(self, objectives: ObjectiveSet) -> bool:
        """Fit for selection: COMPLETE or INFEASIBLE with every objective finite."""
        if self.status not in (COMPLETE, INFEASIBLE):
            return False
        return all(isinstance(self.values.get(n), int | float) and math.isfinite(self.values[n])
                   for n in objectives.names)

    def to_dict(self) -> dict[str, Any]:
        return {"candidate_id": self.candidate_id, "genome": self.genome.to_dict(),
                "status": self.status, "values": dict(self.values), "parents": list(self.parents),
                "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        return cls(candidate_id=d["candidate_id"], genome=genome_from_dict(d["genome"]),
                   status=d["status"], values=dict(d["values"]), parents=tuple(d["parents"]),
                   reason=d.get("reason", ""))


class Strategy(ABC):
    """Base of every search strategy. Subclasses implement ``_ask`` and ``_tell``."""

    name: str = ""

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 **params: Any):
        self.space = space
        self.objectives = objectives
        self.rng = rng
        self.params = params
        self.n_asked = 0
        self.n_told = 0
        self.n_failed = 0

    def ask(self, n: int) -> list[Proposal]:
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        proposals = self._ask(n)
        self.n_asked += len(proposals)
        return proposals

    def tell(self, results: list[Result]) -> None:
        usable = [r for r in results if r.usable(self.objectives)]
        self.n_told += len(results)
        self.n_failed += len(results) - len(usable)
        self._tell(usable)

    def update(self, results: list[Result]) -> None:
        """Better-trained scores of genomes already told (multi-fidelity promotions): a member of the
        strategy's population with the same genome takes the new result. Strategies without a
        population ignore it. Unusable results are dropped as in ``tell``."""
        population = getattr(self, "population", None)
        if not isinstance(population, list):
            return
        new = {r.genome.hash: r for r in results if r.usable(self.objectives)}
        for i, member in enumerate(population):
            if isinstance(member, Result) and member.genome.hash in new:
                population[i] = new[member.genome.hash]

    @abstractmethod
    def _ask(self, n: int) -> list[Proposal]: ...

    @abstractmethod
    def _tell(self, results: list[Result]) -> None:
        """Receives only usable results (failed ones are already dropped)."""

    # --- selection helpers --------------------------------------------------------------------
    def fitness(self, r: Result) -> float:
        """Scalar MOFE fitness; infeasible results rank below every feasible one."""
        v = self.objectives.violation(r.values)
        return self.objectives.fitness(r.values) if v == 0 else -1e9 - v

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rng": self.rng.bit_generator.state, "n_asked": self.n_asked,
                "n_told": self.n_told, "n_failed": self.n_failed, "extra": self._state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state is for strategy '{state.get('name')}', not '{self.name}'")
        self.rng.bit_generator.state = state["rng"]
        self.n_asked, self.n_told, self.n_failed = state["n_asked"], state["n_told"], state["n_failed"]
        self._load_state_dict(state["extra"])

    def _state_dict(self) -> dict[str, Any]:
        return {}

    def _load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what ``_state_dict`` saved; strategies without extra state keep the default."""


STRATEGIES: Registry[Strategy] = Registry("strategies")


def create_strategy(name: str, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                    **params: Any) -> Strategy:
    return STRATEGIES.create(name, space=space, objectives=objectives, rng=rng, **params)
