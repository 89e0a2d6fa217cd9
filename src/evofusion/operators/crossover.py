"""Crossover of two layered student specs (two parents, one child).

``stage_crossover`` is the one-point crossover over variable-length stage lists used by the CNN-GA
seed (child = head stages of one parent + tail stages of the other); ``uniform_stage_crossover``
is uniform crossover over aligned stages (each stage gene from either parent).

The task fields (input channels, input size, class count) always come from the first parent.
Children are valid and inside the search space whenever both parents are; when no recombination
qualifies within ``max_tries`` tries the operator returns the first parent with ``{"noop": True}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evofusion.errors import ConfigError
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import StudentGenome
from evofusion.operators.base import OPERATORS, Info, Operator, first_valid, noop


class StudentCrossover(Operator):
    """Base of the two-parent student crossovers."""

    arity = 2
    genome_kind = "student"

    def __init__(self, space: SearchSpace, max_tries: int = 10):
        if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
            raise ConfigError("max_tries", f"must be an integer >= 1, got {max_tries!r}")
        super().__init__(space, max_tries=max_tries)
        self.max_tries = max_tries  # [1, inf) recombinations tried before giving up (noop)

    def _inside(self, *parents: StudentGenome) -> bool:
        return all(self.space.contains(p) for p in parents)


@OPERATORS.register("stage_crossover")
class StageCrossover(StudentCrossover):
    """One-point crossover of the stage lists: ``child.stages = a.stages[:i] + b.stages[j:]``.

    ``i`` is drawn in ``[1, len(a)]`` and ``j`` in ``[0, len(b) - 1]``, so the child takes at least
    one stage from each parent; only cut pairs whose child length lies in
    ``[space.min_stages, space.max_stages]`` are drawn (the length is kept in bounds by the choice
    of cuts, never by cutting stages off afterwards). The head comes from either parent.
    ``info`` is ``{"cut_a": i, "cut_b": j, "head_from": 0 | 1}``.
    """

    name = "stage_crossover"

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[StudentGenome, Info]:
        a, b = parents
        lo, hi = self.space.min_stages, min(self.space.max_stages, 12)
        cuts = [(i, j) for i in range(1, len(a.stages) + 1) for j in range(len(b.stages))
                if lo <= i + len(b.stages) - j <= hi]

        def cross(i: int, j: int) -> Callable[[], tuple[StudentGenome, Info]]:
            def make() -> tuple[StudentGenome, Info]:
                head_from = int(rng.integers(2))
                child = a.replace(stages=a.stages[:i] + b.stages[j:], head=(a, b)[head_from].head)
                return child, {"cut_a": i, "cut_b": j, "head_from": head_from}
            return make

        return first_valid(a, [cross(i, j) for i, j in cuts], rng, self.space, self.max_tries)


@OPERATORS.register("uniform_stage_crossover")
class UniformStageCrossover(StudentCrossover):
    """Uniform crossover over aligned stages.

    Stage ``k < min(len(a), len(b))`` comes whole from ``b`` with probability ``swap_prob`` and from
    ``a`` otherwise; the child's length, and so its unaligned tail stages, come from one parent
    drawn at random (``length_from``), its head from another draw (``head_from``).
    ``info`` is ``{"from_b": [0/1 per aligned stage], "length_from": 0 | 1, "head_from": 0 | 1}``.
    """

    name = "uniform_stage_crossover"

    def __init__(self, space: SearchSpace, swap_prob: float = 0.5, max_tries: int = 10):
        if isinstance(swap_prob, bool) or not isinstance(swap_prob, int | float) or not 0 <= swap_prob <= 1:
            raise ConfigError("swap_prob", f"must be a number in [0, 1], got {swap_prob!r}")
        super().__init__(space, max_tries=max_tries)
        self.params["swap_prob"] = swap_prob
        self.swap_prob = float(swap_prob)  # [0, 1] probability that an aligned stage comes from b

    def _apply(self, *parents: Any, rng: np.random.Generator) -> tuple[StudentGenome, Info]:
        a, b = parents
        n = min(len(a.stages), len(b.stages))
        inside = self._inside(a, b)
        for _ in range(self.max_tries):
            from_b = [bool(x) for x in rng.random(n) < self.swap_prob]
            length_from = int(rng.integers(2))
            head_from = int(rng.integers(2))
            length_parent = (a, b)[length_from]
            stages = tuple(b.stages[k] if from_b[k] else a.stages[k] for k in range(n))
            stages += length_parent.stages[n:]
            try:
                child = a.replace(stages=stages, head=(a, b)[head_from].head)
            except ValueError:
                continue
            if inside and not self.space.contains(child):
                continue
            return child, {"from_b": [int(x) for x in from_b], "length_from": length_from,
                           "head_from": head_from}
        return noop(a)
