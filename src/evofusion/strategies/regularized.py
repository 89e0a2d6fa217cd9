"""Regularized (aging) evolution: Real, Aggarwal, Huang & Le, "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019.

The population is a queue: each child is a mutation of the fittest of ``sample_size`` members drawn
at random, joins at the young end, and the oldest member dies, however fit it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evofusion.genome.space import SearchSpace
from evofusion.objectives.base import ObjectiveSet
from evofusion.strategies.base import STRATEGIES, Proposal, Result, Strategy
from evofusion.strategies.variation import Variation, check_int, reject_unknown, sample_unseen


class RegularizedEvolution(Strategy):
    """Aging evolution with tournament-of-``sample_size`` parent choice and mutation only.

    Args:
        population_size: [2, inf) members alive at once (the paper's P).
        sample_size: [1, population_size] members drawn (default population_size // 4, at least 2), without replacement, to pick a parent
            (the paper's S); the parent is the one with the highest scalar MOFE fitness.
        mutation_ops: arity-1 operator names; None = all registered for the space's encoding.

    Until the population holds ``population_size`` members, ``ask`` returns random samples
    (children of the current members fill the rest of a batch once it has any).
    """

    name = "regularized"
    PARAMS = ("population_size", "sample_size", "mutation_ops")

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 population_size: int = 20, sample_size: int | None = None, mutation_ops: list[str] | None = None,
                 **unknown: Any):
        reject_unknown(self.name, unknown, self.PARAMS)
        super().__init__(space, objectives, rng, population_size=population_size,
                         sample_size=sample_size, mutation_ops=mutation_ops)
        self.population_size = check_int("population_size", population_size, 2)
        if sample_size is None:  # Real et al. (2019) use S = P / 4 (P=100, S=25)
            sample_size = min(self.population_size, max(2, self.population_size // 4))
        self.sample_size = check_int("sample_size", sample_size, 1, self.population_size)
        self.variation = Variation(space, crossover_prob=0.0, mutation_prob=1.0,
                                   mutation_ops=mutation_ops, crossover_ops=[])
        self.population: list[Result] = []  # oldest first
        self.seen: set[str] = set()

    def _ask(self, n: int) -> list[Proposal]:
        n_random = n if not self.population else min(n, max(0, self.population_size - len(self.population)))
        proposals = []
        for _ in range(n_random):
            genome = sample_unseen(self.space, self.rng, self.seen)
            self.seen.add(genome.hash)
            proposals.append(Proposal(genome=genome))
        for _ in range(n - n_random):
            k = min(self.sample_size, len(self.population))
            drawn = self.rng.choice(len(self.population), size=k, replace=False)
            parent = max((self.population[int(i)] for i in drawn), key=self.fitness)
            proposal = self.variation.make_child([parent], self.rng, self.seen)
            self.seen.add(proposal.genome.hash)
            proposals.append(proposal)
        return proposals

    def _tell(self, results: list[Result]) -> None:
        children = sorted(results, key=lambda r: r.candidate_id)  # told order must not matter
        self.seen.update(r.genome.hash for r in children)
        self.population = (self.population + children)[-self.population_size:]

    def _state_dict(self) -> dict[str, Any]:
        return {"population": [r.to_dict() for r in self.population], "seen": sorted(self.seen)}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.population = [Result.from_dict(d) for d in state["population"]]
        self.seen = set(state["seen"])


STRATEGIES.add("regularized", RegularizedEvolution)
