"""Ask/tell search strategies, one a file, created by name from ``STRATEGIES``.

Importing this package registers every built-in strategy (``random``, ``ga``, ``nsga2``,
``regularized``).
"""

from __future__ import annotations

from evofusion.strategies import ga, nsga2, random_search, regularized  # noqa: F401  (registration)
from evofusion.strategies.base import (
    COMPLETE,
    FAILED,
    INFEASIBLE,
    PENDING,
    STRATEGIES,
    Proposal,
    Result,
    Strategy,
    create_strategy,
)
from evofusion.strategies.variation import Variation

__all__ = ["COMPLETE", "FAILED", "INFEASIBLE", "PENDING", "STRATEGIES", "Proposal", "Result", "Strategy",
           "Variation", "create_strategy"]
