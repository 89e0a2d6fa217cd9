"""GA elitism, NSGA-II survival and constrained ordering, NSGA-II vs random search."""

from __future__ import annotations

import numpy as np

from evofusion.objectives import hypervolume
from evofusion.strategies import COMPLETE, INFEASIBLE, Result
from evofusion.strategies.nsga2 import rank_and_crowding, survival_order
from tests.strategies.synthetic_problem import SPACES, drive, make_strategy, two_objectives

GENOME = SPACES["student"].sample(np.random.default_rng(0))


def result(cid: int, acc: float, params: float) -> Result:
    return Result(cid, GENOME, COMPLETE, {"accuracy": acc, "params": params})


def test_ga_elitism_keeps_the_best() -> None:
    s = make_strategy("ga", seed=0, population_size=8, elitism=2, mutation_prob=1.0)
    best = -np.inf
    told: list[Result] = []
    for _ in range(8):
        drive(s, generations=1, n=8, told=told)
        best = max(s.fitness(r) for r in told if r.usable(s.objectives))
        assert max(s.fitness(r) for r in s.population) == best
        assert len(s.population) <= 8


def test_ga_without_elitism_is_generational() -> None:
    s = make_strategy("ga", seed=0, population_size=6, elitism=0, tournament_size=2)
    drive(s, generations=2, n=6, failures=False)
    ids_before = {r.candidate_id for r in s.population}
    drive(s, generations=1, n=6, failures=False)
    # Six usable children fill a population of six: nobody from the old generation survives.
    assert not ids_before & {r.candidate_id for r in s.population}


def test_ga_pareto_selection_runs() -> None:
    s = make_strategy("ga", seed=0, selection="pareto")
    drive(s, generations=4, n=6)
    assert 0 < len(s.population) <= 6


def test_rank_and_crowding_hand_example() -> None:
    objs = two_objectives()
    rs = [result(0, 0.9, 1000), result(1, 0.8, 100), result(2, 0.7, 1000), result(3, 0.85, 500)]
    cv, rank, crowd = rank_and_crowding(rs, objs)
    assert cv.tolist() == [0, 0, 0, 0]
    assert rank.tolist() == [0, 0, 1, 0]
    assert crowd[0] == np.inf and crowd[1] == np.inf and np.isfinite(crowd[3])
    assert survival_order(rs, objs) == [0, 1, 3, 2]


def test_constrained_domination_feasible_first_then_by_violation() -> None:
    objs = two_objectives(["params <= 1000"])
    rs = [result(0, 0.99, 4000), result(1, 0.5, 900), result(2, 0.99, 2000), result(3, 0.4, 800)]
    rs = [Result(r.candidate_id, r.genome, INFEASIBLE if not objs.feasible(r.values) else COMPLETE,
                 r.values) for r in rs]
    assert survival_order(rs, objs) == [1, 3, 2, 0]
    s = make_strategy("ga", objectives=objs)
    assert s.order(rs)[:2] == [1, 3] and s.order(rs)[2:] == [2, 0]


def test_nsga2_survivors_are_the_best_fronts() -> None:
    s = make_strategy("nsga2", seed=0, population_size=6)
    told: list[Result] = []
    drive(s, generations=5, n=6, told=told, failures=False)
    assert len(s.population) == 6
    _, rank, _ = rank_and_crowding(s.population, s.objectives)
    assert rank.min() == 0


def hypervolume_of_run(name: str, seed: int, **params: object) -> float:
    objs = two_objectives()
    s = make_strategy(name, seed=seed, **params)
    told: list[Result] = []
    drive(s, generations=10, n=12, told=told, failures=False)
    usable = [r for r in told if r.usable(objs)]
    # Minimized: -accuracy (ref 0) and log10(params) (ref 6, i.e. a million parameters).
    return hypervolume(objs.F([r.values for r in usable]), [0.0, 6.0])


def test_nsga2_beats_random_search_on_average() -> None:
    seeds = range(6)
    nsga2 = np.mean([hypervolume_of_run("nsga2", seed, population_size=12) for seed in seeds])
    random = np.mean([hypervolume_of_run("random", seed) for seed in seeds])
    assert nsga2 > random
