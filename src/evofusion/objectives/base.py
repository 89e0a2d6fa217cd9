"""Objectives, constraints and the MOFE weighted-sum fitness.

Every evaluated candidate carries a dict of measured values (``accuracy``, ``params``, ``flops``,
``macs``, ``latency_ms``, ``size_bytes`` ...). An ``ObjectiveSet`` says which of them the search
optimizes (and in which direction), the hard constraints, and how to turn values into

* ``F(values_list)``: an (n, m) matrix to *minimize* (for Pareto ranking, pymoo conventions), and
* ``fitness(values)``: the EvoFusion seed's MOFE score, a weighted sum, higher is better:
  ``fitness = sum_i w_i * sign_i * scale_i(v_i)`` (sign +1 for maximized objectives, -1 for
  minimized; scale ``log10`` for counts such as params and FLOPs, so a weight is "per decade").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evofusion.errors import ConfigError

# name -> (direction, scale, default MOFE weight)
KNOWN_OBJECTIVES: dict[str, tuple[str, str, float]] = {
    "accuracy": ("max", "linear", 1.0),
    "params": ("min", "log10", 0.02),
    "flops": ("min", "log10", 0.01),
    "macs": ("min", "log10", 0.01),
    "latency_ms": ("min", "log10", 0.01),
    "latency_ort_ms": ("min", "log10", 0.01),  # ONNX Runtime CPU latency (objectives/edge.py)
    "size_bytes": ("min", "log10", 0.01),
    "compression": ("max", "linear", 0.1),  # pruning: share of the teacher's parameters removed, [0, 1)
}
STATIC_METRICS = ("params", "flops", "macs", "size_bytes")  # known before training


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str = "max"  # max | min
    scale: str = "linear"  # linear | log10
    weight: float = 1.0  # [0, inf) MOFE weight

    def transform(self, v: float) -> float:
        if self.scale == "log10":
            return math.log10(max(v, 1e-12))
        return float(v)


@dataclass(frozen=True)
class Constraint:
    """A hard limit ``name op value`` (op ``<=`` or ``>=``), e.g. ``params <= 50000``."""

    name: str
    op: str
    value: float

    def violation(self, values: dict[str, float]) -> float:
        """0 when satisfied, else the relative amount by which it is violated."""
        v = values.get(self.name)
        if v is None or not math.isfinite(v):
            return math.inf
        excess = v - self.value if self.op == "<=" else self.value - v
        return max(0.0, excess) / max(abs(self.value), 1e-12)

    @classmethod
    def parse(cls, text: str) -> Constraint:
        for op in ("<=", ">="):
            if op in text:
                name, value = (t.strip() for t in text.split(op, 1))
                if name not in KNOWN_OBJECTIVES:
                    raise ConfigError("constraints", f"unknown metric '{name}'; valid: "
                                      + ", ".join(KNOWN_OBJECTIVES))
                try:
                    bound = float(value.replace("k", "e3").replace("M", "e6"))
                except ValueError:
                    raise ConfigError("constraints", f"'{text}': '{value}' is not a number") from None
                if not math.isfinite(bound):
                    raise ConfigError("constraints", f"'{text}': the bound must be a finite number")
                if name == "accuracy" and not 0.0 <= bound <= 1.0:
                    raise ConfigError("constraints", f"'{text}': accuracy is a share in [0, 1]; no student "
                                      "can meet this bound")
                if name != "accuracy" and (bound < 0 or (op == "<=" and bound == 0 and name != "compression")):
                    raise ConfigError("constraints", f"'{text}': {name} is positive, so no student can "
                                      f"meet '{op} {value}'")
                return cls(name, op, bound)
        raise ConfigError("constraints", f"'{text}' must look like 'params <= 50000' or 'accuracy >= 0.9'")


def check_satisfiable(constraints: list[Constraint]) -> None:
    """ConfigError when two bounds on one metric leave nothing between them (``params <= 100`` with
    ``params >= 1000``): every candidate would be infeasible."""
    for name in {c.name for c in constraints}:
        upper = min((c.value for c in constraints if c.name == name and c.op == "<="), default=math.inf)
        lower = max((c.value for c in constraints if c.name == name and c.op == ">="), default=-math.inf)
        if lower > upper:
            raise ConfigError("constraints", f"{name} >= {lower:g} and {name} <= {upper:g} contradict each "
                              "other: no candidate can be feasible")


def make_objective(name: str, weight: float | None = None) -> Objective:
    if name not in KNOWN_OBJECTIVES:
        raise ConfigError("objectives", f"unknown objective '{name}'; valid: {', '.join(KNOWN_OBJECTIVES)}")
    direction, scale, w = KNOWN_OBJECTIVES[name]
    return Objective(name, direction, scale, w if weight is None else weight)


@dataclass(frozen=True)
class ObjectiveSet:
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = field(default=())

    @classmethod
    def from_names(cls, names: list[str], constraints: list[str] | None = None,
                   weights: dict[str, float] | None = None) -> ObjectiveSet:
        if not names:
            raise ConfigError("objectives", "need at least one objective")
        if len(set(names)) != len(names):
            raise ConfigError("objectives", f"duplicate objective in {names}")
        weights = weights or {}
        return cls(tuple(make_objective(n, weights.get(n)) for n in names),
                   tuple(Constraint.parse(c) for c in (constraints or [])))

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def F(self, values_list: list[dict[str, Any]]) -> np.ndarray:
        """(n, m) matrix to minimize: maximized objectives negated, log10 scale applied."""
        rows = []
        for values in values_list:
            row = []
            for o in self.objectives:
                t = o.transform(values[o.name])
                row.append(-t if o.direction == "max" else t)
            rows.append(row)
        return np.asarray(rows, dtype=float).reshape(len(values_list), len(self.objectives))

    def fitness(self, values: dict[str, Any]) -> float:
        """MOFE weighted sum, higher is better."""
        total = 0.0
        for o in self.objectives:
            t = o.transform(values[o.name])
            total += o.weight * (t if o.direction == "max" else -t)
        return total

    def violation(self, values: dict[str, Any]) -> float:
        return sum(c.violation(values) for c in self.constraints)

    def feasible(self, values: dict[str, Any]) -> bool:
        return self.violation(values) == 0.0

    def static_violation(self, values: dict[str, Any]) -> float:
        """Violation of the constraints that can be checked before training (params, FLOPs, size)."""
        return sum(c.violation(values) for c in self.constraints if c.name in STATIC_METRICS)
