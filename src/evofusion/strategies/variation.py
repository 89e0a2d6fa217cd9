"""Variation: how a strategy turns selected parents into one child proposal.

``Variation`` holds no randomness of its own (the strategy passes its ``rng``) and no state, so a
strategy's ``state_dict`` need not include it. The module also holds the small helpers every
strategy shares: parameter validation that raises ``ConfigError`` naming the field, and random
sampling that avoids genomes already proposed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import evofusion.operators  # noqa: F401  (registers the built-in operators)
from evofusion.errors import ConfigError
from evofusion.genome.space import Genome, SearchSpace
from evofusion.operators.base import OPERATORS, Operator, create_operator, operators_for
from evofusion.strategies.base import Proposal, Result

MAX_RETRIES = 10  # extra mutations tried when a child repeats a parent or a seen genome


# --- parameter validation ---------------------------------------------------------------------
def check_int(field: str, value: Any, lo: int, hi: float = math.inf) -> int:
    """``value`` as an int in [lo, hi], else ConfigError naming ``field`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        upper = "inf" if hi == math.inf else str(int(hi))
        raise ConfigError(field, f"must be an integer in [{lo}, {upper}], got {value!r}")
    return int(value)


def check_probability(field: str, value: Any) -> float:
    """``value`` as a float in [0, 1], else ConfigError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(field, f"must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_choice(field: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(field, f"must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def reject_unknown(strategy: str, unknown: dict[str, Any], valid: Sequence[str]) -> None:
    """Raise ConfigError for the first parameter a strategy does not take."""
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(name, f"unknown parameter of strategy '{strategy}'; valid: {', '.join(valid)}")


# --- sampling ---------------------------------------------------------------------------------
def sample_unseen(space: SearchSpace, rng: np.random.Generator, seen: set[str], tries: int = 10) -> Genome:
    """A random genome whose hash is not in ``seen`` (the last draw after ``tries`` draws)."""
    genome = space.sample(rng)
    for _ in range(tries - 1):
        if genome.hash not in seen:
            break
        genome = space.sample(rng)
    return genome


# --- variation --------------------------------------------------------------------------------
class Variation:
    """Crossover then mutation, with retries against duplicates.

    Args:
        space: the search space; operators keep children inside it.
        crossover_prob: [0, 1] chance of applying a crossover when two parents are given.
        mutation_prob: [0, 1] chance of applying a mutation after (or instead of) crossover.
        mutation_ops: arity-1 operator names; None = every registered one for ``space.encoding``.
        crossover_ops: arity-2 operator names; None = every registered one for ``space.encoding``.

    A child that equals one of its parents, whose hash is in ``seen``, or that the space does not
    admit (``SearchSpace.admissible``, e.g. over a static params/FLOPs limit) is remade from the same
    crossover result with another mutation (operators not yet tried first), up to ``MAX_RETRIES``
    times, after which the last one is accepted (an inadmissible one is replaced by a fresh
    admissible sample without parents). An operator answering ``{"noop": True}`` counts
    as no change and is not recorded in the proposal. Every candidate child first goes through the
    space's ``repair`` (``SearchSpace.repaired``), so the checks see the genome that is proposed.
    """

    def __init__(self, space: SearchSpace, crossover_prob: float = 0.9, mutation_prob: float = 1.0,
                 mutation_ops: Sequence[str] | None = None, crossover_ops: Sequence[str] | None = None):
        self.space = space
        self.crossover_prob = check_probability("crossover_prob", crossover_prob)
        self.mutation_prob = check_probability("mutation_prob", mutation_prob)
        self.mutations = self._operators("mutation_ops", mutation_ops, 1)
        self.crossovers = self._operators("crossover_ops", crossover_ops, 2)
        # an operator controller (evofusion.strategies.operator_control) that picks the mutation
        # operator of each child; None: a uniform draw
        self.controller: Any = None

    def _operators(self, field: str, names: Sequence[str] | None, arity: int) -> list[Operator]:
        if names is None:
            names = operators_for(self.space, arity)
        elif isinstance(names, str) or not isinstance(names, Sequence):
            raise ConfigError(field, f"must be a list of operator names, got {names!r}")
        ops: list[Operator] = []
        for name in names:
            if name not in OPERATORS:
                raise ConfigError(field, f"unknown operator '{name}'; valid: {', '.join(OPERATORS.names())}")
            op = create_operator(name, self.space)
            if op.arity != arity or op.genome_kind != self.space.encoding:
                valid = operators_for(self.space, arity)
                raise ConfigError(field, f"operator '{name}' (arity {op.arity}, {op.genome_kind} genomes) "
                                  f"does not fit; valid here: {', '.join(valid)}")
            ops.append(op)
        return ops

    @property
    def mutation_names(self) -> list[str]:
        return [op.name for op in self.mutations]

    @property
    def crossover_names(self) -> list[str]:
        return [op.name for op in self.crossovers]

    def make_child(self, parents: Sequence[Result], rng: np.random.Generator, seen: set[str]) -> Proposal:
        """One child of ``parents`` (the first is the main parent; a second enables crossover)."""
        if not parents:
            raise ValueError("make_child needs at least one parent")
        parent_hashes = {p.genome.hash for p in parents}
        base: Genome = parents[0].genome
        used = [parents[0]]
        base_ops: list[str] = []
        base_args: dict[str, Any] = {}
        if len(parents) >= 2 and self.crossovers and rng.random() < self.crossover_prob:
            op = self.crossovers[int(rng.integers(len(self.crossovers)))]
            child, info = op.apply_with_info(parents[0].genome, parents[1].genome, rng=rng)
            if not info.get("noop"):
                base, used = self.space.repaired(child), [parents[0], parents[1]]
                base_ops, base_args = [op.name], {op.name: info}

        genome, op_name, info = base, None, None
        if self.mutations and rng.random() < self.mutation_prob:
            genome, op_name, info = self._mutate(base, self.mutations, rng)
        tried: set[str] = {op_name} if op_name else set()
        for _ in range(MAX_RETRIES):
            if not self.mutations or (genome.hash not in parent_hashes and genome.hash not in seen
                                      and self.space.admits(genome)):
                break
            fresh = [op for op in self.mutations if op.name not in tried] or self.mutations
            genome, op_name, info = self._mutate(base, fresh, rng)
            tried.add(op_name)
        if not self.space.admits(genome):  # variation cannot reach the admissible region: resample
            return Proposal(genome=self.space.sample(rng))
        ops, args = list(base_ops), dict(base_args)
        if info is not None and op_name is not None:
            ops.append(op_name)
            args[op_name] = info
        return Proposal(genome=genome, parents=tuple(p.candidate_id for p in used),
                        operator="+".join(ops) if ops else None, operator_args=args)

    def _mutate(self, base: Genome, pool: list[Operator], rng: np.random.Generator
                ) -> tuple[Genome, str, dict[str, Any] | None]:
        """Apply one operator of ``pool`` (the controller's pick, else a uniform draw): (child, its name,
        its info or None for a noop)."""
        if self.controller is not None:
            name = self.controller.pick([o.name for o in pool], rng)
            op = next(o for o in pool if o.name == name)
        else:
            op = pool[int(rng.integers(len(pool)))]
        child, info = op.apply_with_info(base, rng=rng)
        if info.get("noop"):
            return base, op.name, None
        return self.space.repaired(child), op.name, info
