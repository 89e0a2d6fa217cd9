"""Elitist generational genetic algorithm of the CNN-evolution seed.

After "Evolving CNN architectures with genetic algorithms" (the project's seed 003), itself the
classic GA of Holland (1975) and Goldberg, "Genetic Algorithms in Search, Optimization and Machine
Learning" (1989): tournament selection, crossover with probability ``crossover_prob``, mutation with
probability ``mutation_prob``, and ``elitism`` best members carried into the next generation.

Selection ranks by the scalar MOFE fitness (``selection="fitness"``, the seed's choice) or by
NSGA-II's constrained (rank, crowding) order (``selection="pareto"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evofusion.genome.space import SearchSpace
from evofusion.objectives.base import ObjectiveSet
from evofusion.strategies.base import STRATEGIES, Proposal, Result, Strategy
from evofusion.strategies.nsga2 import survival_order
from evofusion.strategies.variation import (
    Variation,
    check_choice,
    check_int,
    reject_unknown,
    sample_unseen,
)

SELECTIONS = ("fitness", "pareto")


class GeneticAlgorithm(Strategy):
    """Tournament selection + variation + elitist generational replacement.

    Args:
        population_size: [2, inf) members of a generation.
        tournament_size: [2, population_size] members drawn (without replacement) per tournament.
        crossover_prob: [0, 1] chance a child comes from a crossover of two tournament winners.
        mutation_prob: [0, 1] chance a child is mutated (always when it would repeat a genome).
        elitism: [0, population_size - 1] best members of the old generation that survive.
        selection: ``fitness`` (scalar MOFE) or ``pareto`` (constrained rank, then crowding).
        mutation_ops: arity-1 operator names; None = all registered for the space's encoding.
        crossover_ops: arity-2 operator names; None = all registered for the space's encoding.

    Generation 0 is random samples. Each later ``tell`` forms the next generation from the
    ``elitism`` best old members, then the best children, then (when failures left too few
    children) the best remaining old members, up to ``population_size``.
    """

    name = "ga"
    PARAMS = ("population_size", "tournament_size", "crossover_prob", "mutation_prob", "elitism",
              "selection", "mutation_ops", "crossover_ops")

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 population_size: int = 20, tournament_size: int = 3, crossover_prob: float = 0.9,
                 mutation_prob: float = 0.5, elitism: int = 1, selection: str = "fitness",
                 mutation_ops: list[str] | None = None, crossover_ops: list[str] | None = None,
                 **unknown: Any):
        reject_unknown(self.name, unknown, self.PARAMS)
        super().__init__(space, objectives, rng, population_size=population_size,
                         tournament_size=tournament_size, crossover_prob=crossover_prob,
                         mutation_prob=mutation_prob, elitism=elitism, selection=selection,
                         mutation_ops=mutation_ops, crossover_ops=crossover_ops)
        self.population_size = check_int("population_size", population_size, 2)
        self.tournament_size = check_int("tournament_size", tournament_size, 2, self.population_size)
        self.elitism = check_int("elitism", elitism, 0, self.population_size - 1)
        self.selection = check_choice("selection", selection, SELECTIONS)
        self.variation = Variation(space, crossover_prob, mutation_prob, mutation_ops, crossover_ops)
        self.population: list[Result] = []
        self.seen: set[str] = set()
        self.generation = 0

    def order(self, results: Sequence[Result]) -> list[int]:
        """Indices of ``results``, best first, under this GA's selection; ties keep input order."""
        if self.selection == "pareto":
            return survival_order(results, self.objectives)
        fit = [self.fitness(r) for r in results]
        return sorted(range(len(results)), key=lambda i: (-fit[i], i))

    def _ask(self, n: int) -> list[Proposal]:
        proposals = []
        if not self.population:
            for _ in range(n):
                genome = sample_unseen(self.space, self.rng, self.seen)
                self.seen.add(genome.hash)
                proposals.append(Proposal(genome=genome))
            return proposals
        position = np.empty(len(self.population), dtype=int)
        position[self.order(self.population)] = np.arange(len(self.population))
        for _ in range(n):
            parents = [self.population[self._tournament(position)] for _ in range(2)]
            proposal = self.variation.make_child(parents, self.rng, self.seen)
            self.seen.add(proposal.genome.hash)
            proposals.append(proposal)
        return proposals

    def _tournament(self, position: np.ndarray) -> int:
        """The best-placed of ``tournament_size`` distinct members drawn at random."""
        k = min(self.tournament_size, len(position))
        drawn = self.rng.choice(len(position), size=k, replace=False)
        return int(drawn[np.argmin(position[drawn])])

    def _tell(self, results: list[Result]) -> None:
        children = sorted(results, key=lambda r: r.candidate_id)  # told order must not matter
        self.seen.update(r.genome.hash for r in children)
        ranked_children = [children[i] for i in self.order(children)]
        if not self.population:
            self.population = ranked_children[: self.population_size]
        else:
            ranked_old = [self.population[i] for i in self.order(self.population)]
            elites, rest = ranked_old[: self.elitism], ranked_old[self.elitism:]
            self.population = (elites + ranked_children + rest)[: self.population_size]
        self.generation += 1

    def _state_dict(self) -> dict[str, Any]:
        return {"population": [r.to_dict() for r in self.population], "seen": sorted(self.seen),
                "generation": self.generation}

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.population = [Result.from_dict(d) for d in state["population"]]
        self.seen = set(state["seen"])
        self.generation = int(state["generation"])


STRATEGIES.add("ga", GeneticAlgorithm)
