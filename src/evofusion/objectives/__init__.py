"""Objectives, constraints, MOFE fitness, Pareto tools and model cost metrics."""

from evofusion.objectives.base import (
    KNOWN_OBJECTIVES,
    STATIC_METRICS,
    Constraint,
    Objective,
    ObjectiveSet,
    make_objective,
)
from evofusion.objectives.metrics import count_params, flops_and_macs, measure_latency_ms, size_bytes
from evofusion.objectives.pareto import crowding_distance, hypervolume, non_dominated_ranks, pareto_front

__all__ = ["KNOWN_OBJECTIVES", "STATIC_METRICS", "Constraint", "Objective", "ObjectiveSet",
           "count_params", "crowding_distance", "flops_and_macs", "hypervolume", "make_objective",
           "measure_latency_ms", "non_dominated_ranks", "pareto_front", "size_bytes"]
