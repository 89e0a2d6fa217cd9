"""NSGA-II: Deb, Pratap, Agarwal & Meyarivan, "A fast and elitist multiobjective genetic algorithm:
NSGA-II", IEEE Transactions on Evolutionary Computation 6(2), 2002.

Parents are chosen by binary tournament on (constraint violation, non-domination rank, crowding
distance); survivors are the best ``population_size`` of parents + children in the same order.
Constraints follow the paper's constrained domination: a feasible solution beats an infeasible one,
two infeasible ones compare by total violation, two feasible ones by Pareto rank then crowding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evofusion.genome.space import SearchSpace
from evofusion.objectives.base import ObjectiveSet
from evofusion.objectives.pareto import crowding_distance, non_dominated_ranks
from evofusion.strategies.base import STRATEGIES, Proposal, Result, Strategy
from evofusion.strategies.variation import Variation, check_int, reject_unknown, sample_unseen


def rank_and_crowding(results: Sequence[Result], objectives: ObjectiveSet
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per result: (constraint violation, non-domination rank, crowding distance).

    Ranks and crowding are computed among the feasible results only (crowding within each front);
    infeasible results get rank 0 and crowding 0 and are ordered by their violation alone.
    """
    n = len(results)
    cv = np.array([objectives.violation(r.values) for r in results], dtype=float).reshape(n)
    rank = np.zeros(n, dtype=int)
    crowd = np.zeros(n, dtype=float)
    feasible = np.flatnonzero(cv == 0)
    if len(feasible):
        F = objectives.F([results[i].values for i in feasible])
        r = non_dominated_ranks(F)
        rank[feasible] = r
        for front in np.unique(r):
            crowd[feasible[r == front]] = crowding_distance(F[r == front])
    return cv, rank, crowd


def survival_order(results: Sequence[Result], objectives: ObjectiveSet) -> list[int]:
    """Indices of ``results``, best first, by (violation, rank, -crowding); ties keep input order."""
    cv, rank, crowd = rank_and_crowding(results, objectives)
    return sorted(range(len(results)), key=lambda i: (cv[i], rank[i], -crowd[i], i))


class NSGA2(Strategy):
    """NSGA-II over genomes, with the project's crossover and mutation operators.

    Args:
        population_size: [2, inf) survivors kept each generation.
        crossover_prob: [0, 1] chance a child comes from a crossover of its two parents.
        mutation_prob: [0, 1] chance a child is mutated (always when it would repeat a genome).
        mutation_ops: arity-1 operator names; None = all registered for the space's encoding.
        crossover_ops: arity-2 operator names; None = all registered for the space's encoding.

    Generation 0 (while no result has survived) is random samples.
    """

    name = "nsga2"
    PARAMS = ("population_size", "crossover_prob", "mutation_prob", "mutation_ops", "crossover_ops")

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 population_size: int = 20, crossover_prob: float = 0.9, mutation_prob: float = 1.0,
                 mutation_ops: list[str] | None = None, crossover_ops: list[str] | None = None,
                 **unknown: Any):
        reject_unknown(self.name, unknown, self.PARAMS)
        super().__init__(space, objectives, rng, population_size=population_size,
                         crossover_prob=crossover_prob, mutation_prob=mutation_prob,
                         mutation_ops=mutation_ops, crossover_ops=crossover_ops)
        self.population_size = check_int("population_size", population_size, 2)
        self.variation = Variation(space, crossover_prob, mutation_prob, mutation_ops, crossover_ops)
        self.population: list[Result] = []
        self.seen: set[str] = set()
        self.generation = 0

    def _ask(self, n: int) -> list[Proposal]:
        proposals = []
        if not self.population:
            for _ in range(n):
                genome = sample_unseen(self.space, self.rng, self.seen)
                self.seen.add(genome.hash)
                proposals.append(Proposal(genome=genome))
            return proposals
        cv, rank, crowd = rank_and_crowding(self.population, self.objectives)
        keys = [(cv[i], rank[i], -crowd[i]) for i in range(len(self.population))]
        for _ in range(n):
            parents = [self.population[self._tournament(keys)] for _ in range(2)]
            proposal = self.variation.make_child(parents, self.rng, self.seen)
            self.seen.add(proposal.genome.hash)
            proposals.append(proposal)
        return proposals

    def _tournament(self, keys: list[tuple[float, int, float]]) -> int:
        """Binary tournament: the smaller (violation, rank, -crowding) of two distinct members."""
        if len(keys) == 1:
            return 0
        a, b = (int(i) for i in self.rng.choice(len(keys), size=2, replace=False))
        return b if keys[b] < keys[a] else a

    def _tell(self, results: list[Result]) -> None:
        children = sorted(results, key=lambda r: r.candidate_id)  # told order must not matter
        self.seen.update(r.genome.hash for r in children)
        merged = self.population + children
        order = survival_order(merged, self.objectives)
        self.population = [merged[i] for i in order[: self.population_size]]
        self.generation += 1

    def _state_dict(self) -> dict[str, Any]:
        return {"population": [r.to_dict() for r in self.population], "seen": sorted(self.seen),
                "generation": self.generation}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.population = [Result.from_dict(d) for d in state["population"]]
        self.seen = set(state["seen"])
        self.generation = int(state["generation"])


STRATEGIES.add("nsga2", NSGA2)
