"""A synthetic, training-free problem for the strategy tests.

``evaluate`` maps a genome to deterministic values: ``params`` by a closed-form count of the
student's weights, ``accuracy`` rising with capacity plus small bonuses for some genes, so the two
objectives trade off. Candidates whose id hits a fixed pattern come back FAILED or with NaN values.
"""

from __future__ import annotations

import math

import numpy as np

from evofusion.genome.space import Genome, SearchSpace
from evofusion.genome.spec import spatial_sizes
from evofusion.objectives import ObjectiveSet
from evofusion.strategies import COMPLETE, FAILED, INFEASIBLE, Proposal, Result, Strategy, create_strategy

SPACES = {"student": SearchSpace(input_size=16, max_stages=4, widths=(4, 8, 16, 32)),
          "chromosome": SearchSpace(input_size=16, encoding="chromosome", chromosome_blocks=4)}


def synthetic_values(genome: Genome) -> dict[str, float]:
    g = genome.to_student()
    params, c_in = 0, g.in_channels
    for s in g.stages:
        params += c_in * s.width * s.kernel**2 + s.width
        params += (s.depth - 1) * (s.width * s.width * s.kernel**2 + s.width)
        c_in = s.width
    feats = c_in if g.head.kind == "gap" else c_in * spatial_sizes(g)[-1] ** 2
    if g.head.hidden:
        params += feats * g.head.hidden + g.head.hidden
        feats = g.head.hidden
    params += feats * g.num_classes + g.num_classes
    # Genes that help only together: evolution can climb this, random sampling rarely lands on it.
    match = [((s.activation == "gelu") + (s.pool == "max") + s.skip) / 3 for s in g.stages]
    accuracy = 0.3 + 0.4 * (1 - math.exp(-params / 20000)) + 0.25 * (sum(match) / len(match)) ** 2
    return {"accuracy": accuracy, "params": float(params)}


def evaluate(candidate_id: int, proposal: Proposal, objectives: ObjectiveSet,
             failures: bool = True) -> Result:
    values = synthetic_values(proposal.genome)
    if failures and candidate_id % 5 == 3:
        return Result(candidate_id, proposal.genome, FAILED, {}, proposal.parents, "synthetic failure")
    if failures and candidate_id % 7 == 2:
        values["accuracy"] = math.nan
    status = COMPLETE if objectives.feasible(values) else INFEASIBLE
    return Result(candidate_id, proposal.genome, status, values, proposal.parents)


Log = list[tuple[str, tuple[int, ...], str | None]]


def drive(strategy: Strategy, generations: int, n: int, failures: bool = True,
          told: list[Result] | None = None) -> Log:
    """Ask/evaluate/tell ``generations`` times; returns what was proposed, in order."""
    log: Log = []
    for _ in range(generations):
        start = strategy.n_asked
        proposals = strategy.ask(n)
        results = [evaluate(start + i, p, strategy.objectives, failures) for i, p in enumerate(proposals)]
        if told is not None:
            told.extend(results)
        strategy.tell(results[::-1])  # told order must not matter
        log += [(p.genome.hash, p.parents, p.operator) for p in proposals]
    return log


# Small populations so that three generations of 6 reach selection in every strategy.
SMALL = {"random": {}, "ga": {"population_size": 6, "elitism": 1},
         "nsga2": {"population_size": 6}, "regularized": {"population_size": 6, "sample_size": 3}}


def two_objectives(constraints: list[str] | None = None) -> ObjectiveSet:
    return ObjectiveSet.from_names(["accuracy", "params"], constraints)


def make_strategy(name: str, seed: int = 0, encoding: str = "student",
                  objectives: ObjectiveSet | None = None, **params: object) -> Strategy:
    """A strategy on the synthetic problem, with the small populations of ``SMALL`` by default."""
    merged = {**SMALL.get(name, {}), **params}
    return create_strategy(name, SPACES[encoding], objectives or two_objectives(),
                           np.random.default_rng(seed), **merged)
