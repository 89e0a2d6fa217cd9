"""User objectives: a metric of the trained candidate that the search optimizes or constrains.

A user objective is a callable ``fn(model, val_x, val_y) -> float`` (the trained student in eval
mode on the CPU, the validation inputs and labels as tensors), named in the config by import path so
every executor (serial, process pool, Ray workers) can load it::

    objectives:
      names: [accuracy, params, worst_class]
      custom:
        worst_class: {fn: "mypkg.metrics:worst_class_recall", direction: max, weight: 0.5}

It is also the hook for a user's own evaluation: the callable may compute anything from the model
(a robustness score, accuracy on a private split it loads itself, an energy estimate) as long as it
returns a finite number. Once declared, the name works everywhere a built-in metric does: as an
objective, in a constraint (``worst_class >= 0.6``), in reports. A callable that raises or returns a
non-number makes that candidate FAILED with the error, never the run.

``register_objective`` declares one from Python for the current process (serial executor); with
other executors use ``objectives.custom`` (import paths), which every worker resolves itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from evofusion.errors import ConfigError
from evofusion.objectives.base import KNOWN_OBJECTIVES
from evofusion.registry import import_callable

ObjectiveFn = Callable[[Any, Any, Any], float]
_FUNCTIONS: dict[str, ObjectiveFn] = {}  # name -> callable, in this process
BUILTIN = frozenset(KNOWN_OBJECTIVES)


def resolve(path: str) -> ObjectiveFn:
    """The callable at ``"package.module:attribute"``; ConfigError naming what is missing."""
    return import_callable(path, "objectives.custom.fn")  # type: ignore[no-any-return]


def register_objective(name: str, fn: ObjectiveFn | str, direction: str = "max", scale: str = "linear",
                       weight: float = 0.1) -> None:
    """Declare a user objective ``name`` (direction ``max``/``min``, scale ``linear``/``log10``,
    default MOFE weight) computed by ``fn`` (a callable or an import path)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError("objectives.custom", f"an objective name must be an identifier, got {name!r}")
    if name in BUILTIN:
        raise ConfigError("objectives.custom", f"{name!r} is a built-in metric; choose another name")
    if direction not in ("max", "min"):
        raise ConfigError(f"objectives.custom.{name}.direction", f"must be max or min, got {direction!r}")
    if scale not in ("linear", "log10"):
        raise ConfigError(f"objectives.custom.{name}.scale", f"must be linear or log10, got {scale!r}")
    KNOWN_OBJECTIVES[name] = (direction, scale, float(weight))
    _FUNCTIONS[name] = resolve(fn) if isinstance(fn, str) else fn


def declare(specs: dict[str, dict[str, Any]]) -> None:
    """Register every ``objectives.custom`` entry (name -> {fn, direction, scale, weight}) in this
    process; idempotent, so each worker calls it before evaluating."""
    for name, spec in specs.items():
        if name not in _FUNCTIONS:
            register_objective(name, spec["fn"], spec.get("direction", "max"), spec.get("scale", "linear"),
                               spec.get("weight", 0.1))


def custom_values(names: list[str], model: Any, val_x: Any, val_y: Any) -> dict[str, float]:
    """The user objectives among ``names`` (and constraint metrics) measured on the trained ``model``."""
    out: dict[str, float] = {}
    for name in names:
        fn = _FUNCTIONS.get(name)
        if fn is None:
            continue
        was = model.training
        model.eval()
        try:
            v = fn(model, val_x, val_y)
        finally:
            model.train(was)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
            raise ValueError(f"user objective {name!r} returned {v!r}; it must return a finite number")
        out[name] = float(v)
    return out


def is_custom(name: str) -> bool:
    return name in _FUNCTIONS


__all__ = ["custom_values", "declare", "is_custom", "register_objective", "resolve"]
