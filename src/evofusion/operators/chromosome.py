"""Operators on the binary chromosome of the CNN-evolution seed (bit-flip mutation, one-point crossover).

Seed 003, "Evolving CNN architectures with genetic algorithms": a GA over fixed-length bit strings
with per-bit flip mutation and one-point crossover. Both operators keep the decoding constants
(``base_width``, ``max_width``), the task fields and the head of the first parent, so a child is
inside the search space whenever its first parent is (same block count). A bit string whose decoded
student is invalid (e.g. a flatten head with too many features) is redrawn, up to ``max_tries``
times, after which the first parent is returned with ``{"noop": True}``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from evofusion.errors import ConfigError
from evofusion.genome.chromosome import ChromosomeGenome
from evofusion.genome.space import SearchSpace
from evofusion.operators.base import OPERATORS, Info, Operator, noop


def _check_max_tries(max_tries: int) -> None:
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise ConfigError("max_tries", f"must be an integer >= 1, got {max_tries!r}")


@OPERATORS.register("bit_flip")
class BitFlip(Operator):
    """Flip each bit independently with probability ``p`` (default ``1 / len(bits)``).

    At least one bit always flips: when the draw flips none, one uniformly drawn bit is flipped.
    ``info`` is ``{"flipped": [sorted bit indices]}``.
    """

    name = "bit_flip"
    arity = 1
    genome_kind = "chromosome"

    def __init__(self, space: SearchSpace, p: float | None = None, max_tries: int = 10):
        if p is not None and (isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1):
            raise ConfigError("p", f"must be a number in [0, 1] or None (= 1/len(bits)), got {p!r}")
        _check_max_tries(max_tries)
        super().__init__(space, p=p, max_tries=max_tries)
        self.p = p  # [0, 1] per-bit flip probability; None = 1 / len(bits)
        self.max_tries = max_tries

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[ChromosomeGenome, Info]:
        (parent,) = parents
        bits = np.asarray(parent.bits, dtype=np.int64)
        p = 1.0 / len(bits) if self.p is None else float(self.p)
        for _ in range(self.max_tries):
            flip = rng.random(len(bits)) < p
            if not flip.any():
                flip[int(rng.integers(len(bits)))] = True
            child_bits = tuple(int(x) for x in np.where(flip, 1 - bits, bits))
            try:
                child = replace(parent, bits=child_bits)
            except ValueError:
                continue
            return child, {"flipped": [int(i) for i in np.flatnonzero(flip)]}
        return noop(parent)


@OPERATORS.register("one_point")
class OnePoint(Operator):
    """One-point crossover: ``child.bits = a.bits[:cut] + b.bits[cut:]``, ``cut`` in ``[1, n - 1]``.

    ``n = min(len(a.bits), len(b.bits))``. The child has the first parent's length: when ``b`` is
    shorter, ``a``'s own bits fill the tail. ``info`` is ``{"cut": cut}``.
    """

    name = "one_point"
    arity = 2
    genome_kind = "chromosome"

    def __init__(self, space: SearchSpace, max_tries: int = 10):
        _check_max_tries(max_tries)
        super().__init__(space, max_tries=max_tries)
        self.max_tries = max_tries

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[ChromosomeGenome, Info]:
        a, b = parents
        n = min(len(a.bits), len(b.bits))
        for _ in range(self.max_tries):
            cut = int(rng.integers(1, n))
            child_bits = a.bits[:cut] + b.bits[cut:len(a.bits)] + a.bits[len(b.bits):]
            try:
                child = replace(a, bits=child_bits)
            except ValueError:
                continue
            return child, {"cut": cut}
        return noop(a)
