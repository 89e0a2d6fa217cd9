"""Operators on pruning genomes (``kind == "prune"``): mask mutation and crossovers.

The KD + GA pruning seed evolves its binary keep/remove chromosome with bit-flip mutation and
crossover. ``mask_flip`` flips bits (binary encodings) or moves a keep-ratio level one step
(``layer`` encoding); ``mask_uniform`` and ``mask_one_point`` are uniform and one-point crossover.
Children keep the first parent's teacher, layout and encoding; every gene vector of the right length
is a valid pruning genome, so no retries are needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evofusion.errors import ConfigError
from evofusion.genome.prune import PruneGenome
from evofusion.genome.space import SearchSpace
from evofusion.operators.base import OPERATORS, Info, Operator, noop


def _check_compatible(a: PruneGenome, b: PruneGenome) -> bool:
    return (a.groups, a.encoding, a.levels, a.teacher) == (b.groups, b.encoding, b.levels, b.teacher)


@OPERATORS.register("mask_flip")
class MaskFlip(Operator):
    """Change each gene independently with probability ``p`` (default ``rate / len(genes)``).

    Binary genes flip; a keep-ratio gene moves one level up or down (within ``[1, levels]``). At
    least one gene changes. ``info`` is ``{"changed": [sorted gene indices]}``.

    Args:
        p: [0, 1] per-gene probability; None = ``rate / len(genes)``.
        rate: (0, inf) expected changed genes per child when ``p`` is None (default 4: a single
            flipped channel of a several-hundred-channel teacher barely moves the search).
    """

    name = "mask_flip"
    arity = 1
    genome_kind = "prune"

    def __init__(self, space: SearchSpace, p: float | None = None, rate: float = 4.0):
        if p is not None and (isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1):
            raise ConfigError("p", f"must be a number in [0, 1] or None, got {p!r}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            raise ConfigError("rate", f"must be a number > 0, got {rate!r}")
        super().__init__(space, p=p, rate=rate)
        self.p, self.rate = p, float(rate)

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[PruneGenome, Info]:
        (parent,) = parents
        genes = np.asarray(parent.genes, dtype=np.int64)
        n = len(genes)
        p = min(1.0, self.rate / n) if self.p is None else float(self.p)
        change = rng.random(n) < p
        if not change.any():
            change[int(rng.integers(n))] = True
        if parent.binary:
            child = np.where(change, 1 - genes, genes)
        else:
            step = np.where(rng.random(n) < 0.5, -1, 1)
            moved = genes + step
            moved = np.where((moved < 1) | (moved > parent.levels), genes - step, moved)
            child = np.where(change, np.clip(moved, 1, parent.levels), genes)
        if np.array_equal(child, genes):
            return noop(parent)
        return parent.with_genes(child.tolist()), {"changed": [int(i) for i in np.flatnonzero(child != genes)]}


@OPERATORS.register("mask_uniform")
class MaskUniform(Operator):
    """Uniform crossover: each gene from either parent with probability 1/2. ``info`` is
    ``{"from_b": count of genes taken from the second parent}``."""

    name = "mask_uniform"
    arity = 2
    genome_kind = "prune"

    def __init__(self, space: SearchSpace):
        super().__init__(space)

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[PruneGenome, Info]:
        a, b = parents
        if not _check_compatible(a, b):
            return noop(a)
        take_b = rng.random(len(a.genes)) < 0.5
        genes = np.where(take_b, np.asarray(b.genes), np.asarray(a.genes))
        return a.with_genes(genes.tolist()), {"from_b": int(take_b.sum())}


@OPERATORS.register("mask_one_point")
class MaskOnePoint(Operator):
    """One-point crossover (the seed's): ``genes = a[:cut] + b[cut:]``, ``cut`` in ``[1, n - 1]``.
    ``info`` is ``{"cut": cut}``."""

    name = "mask_one_point"
    arity = 2
    genome_kind = "prune"

    def __init__(self, space: SearchSpace):
        super().__init__(space)

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[PruneGenome, Info]:
        a, b = parents
        if not _check_compatible(a, b) or len(a.genes) < 2:
            return noop(a)
        cut = int(rng.integers(1, len(a.genes)))
        return a.with_genes(a.genes[:cut] + b.genes[cut:]), {"cut": cut}
