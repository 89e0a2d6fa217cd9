"""Mutation and crossover operators, one family a file, created by name from ``OPERATORS``.

Importing this package registers every built-in family; third-party operators join through the
``evofusion.operators`` entry-point group.
"""

from __future__ import annotations

from evofusion.operators import architecture, chromosome, crossover, mask, morph  # noqa: F401  (registration)
from evofusion.operators.base import OPERATORS, Operator, create_operator, operators_for

__all__ = ["OPERATORS", "Operator", "create_operator", "operators_for"]
