"""Random search: independent uniform samples of the search space.

The baseline of Bergstra & Bengio, "Random Search for Hyper-Parameter Optimization" (JMLR 2012),
and of Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture Search" (UAI 2019).
It never selects, so told results only update the set of genomes already proposed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evofusion.genome.space import SearchSpace
from evofusion.objectives.base import ObjectiveSet
from evofusion.strategies.base import STRATEGIES, Proposal, Result, Strategy
from evofusion.strategies.variation import check_int, reject_unknown, sample_unseen


class RandomSearch(Strategy):
    """Uniform samples of ``space``, avoiding genomes it already proposed.

    Args:
        max_tries: [1, 1000] draws per proposal to find a genome not proposed before; after that
            a repeat is accepted (small spaces can run out of new genomes).
    """

    name = "random"

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 max_tries: int = 10, **unknown: Any):
        reject_unknown(self.name, unknown, ["max_tries"])
        super().__init__(space, objectives, rng, max_tries=max_tries)
        self.max_tries = check_int("max_tries", max_tries, 1, 1000)
        self.seen: set[str] = set()

    def _ask(self, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            genome = sample_unseen(self.space, self.rng, self.seen, self.max_tries)
            self.seen.add(genome.hash)
            proposals.append(Proposal(genome=genome))
        return proposals

    def _tell(self, results: list[Result]) -> None:
        self.seen.update(r.genome.hash for r in results)

    def _state_dict(self) -> dict[str, Any]:
        return {"seen": sorted(self.seen)}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen = set(state["seen"])


STRATEGIES.add("random", RandomSearch)
