"""Operator contract and registry.

An operator makes a child genome from one parent (mutation, ``arity = 1``) or two (crossover,
``arity = 2``). Contract:

* ``apply(*parents, rng)`` never modifies a parent (genomes are frozen) and returns a valid genome
  inside the operator's search space; all randomness comes from ``rng``.
* ``apply_with_info`` returns ``(child, info)``: ``info`` is a JSON-serializable dict of the
  arguments the operator chose (stage index, new width ...), stored in the run database so every
  structural edit can be replayed.
* An operator that cannot act on a parent (e.g. removing a stage from a one-stage genome) returns
  a copy of the parent and ``info = {"noop": True}``; strategies then try another operator.
* ``preserves_function = True`` promises that, with the parent's weights carried over, the child's
  outputs equal the parent's in eval mode to 1e-5 (none of the foundation's operators promise it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from evofusion.genome.space import Genome, SearchSpace
from evofusion.registry import Registry


class Operator(ABC):
    name: str = ""
    arity: int = 1  # 1 = mutation, 2 = crossover
    genome_kind: str = "student"  # student | chromosome: which genomes it accepts
    preserves_function: bool = False

    def __init__(self, space: SearchSpace, **params: Any):
        self.space = space
        self.params = params

    def apply(self, *parents_and_rng: Any) -> Genome:
        *parents, rng = parents_and_rng
        return self.apply_with_info(*parents, rng=rng)[0]

    def apply_with_info(self, *parents: Genome, rng: np.random.Generator) -> tuple[Genome, dict[str, Any]]:
        if len(parents) != self.arity:
            raise TypeError(f"operator '{self.name}' takes {self.arity} parent(s), got {len(parents)}")
        for p in parents:
            if p.kind != self.genome_kind:
                raise TypeError(f"operator '{self.name}' works on {self.genome_kind} genomes, got {p.kind}")
        return self._apply(*parents, rng=rng)

    @abstractmethod
    def _apply(self, *parents: Genome, rng: np.random.Generator) -> tuple[Genome, dict[str, Any]]:
        """Make the child; return (child, info)."""


OPERATORS: Registry[Operator] = Registry("operators")

Info = dict[str, Any]
G = TypeVar("G", bound=Genome)


def noop(parent: G) -> tuple[G, Info]:
    """The contract's "cannot act" answer: the (frozen, hence safely shared) parent and ``{"noop": True}``."""
    return parent, {"noop": True}


def first_valid(parent: G, candidates: Sequence[Callable[[], tuple[G, Info]]],
                rng: np.random.Generator, space: SearchSpace, max_tries: int) -> tuple[G, Info]:
    """Try candidate edits in a random order; return the first whose child is valid and in ``space``.

    Each candidate builds ``(child, info)`` and may raise ``ValueError`` (``GenomeError`` is one)
    when the edit gives an invalid genome. At most ``max_tries`` candidates are tried. A child must
    lie inside ``space`` when the parent did (a parent outside it only has to yield a valid child).
    Returns ``noop(parent)`` when no candidate qualifies.
    """
    if not candidates:
        return noop(parent)
    parent_inside = space.contains(parent)
    for k in rng.permutation(len(candidates))[:max_tries]:
        try:
            child, info = candidates[int(k)]()
        except ValueError:
            continue
        if parent_inside and not space.contains(child):
            continue
        return child, info
    return noop(parent)


def create_operator(name: str, space: SearchSpace, **params: Any) -> Operator:
    return OPERATORS.create(name, space=space, **params)


def operators_for(space: SearchSpace, arity: int | None = None) -> list[str]:
    """Names of registered operators that accept the space's genome kind (and arity, if given)."""
    out = []
    for name in OPERATORS.names():
        op = create_operator(name, space)
        if op.genome_kind == space.encoding and (arity is None or op.arity == arity):
            out.append(name)
    return out
