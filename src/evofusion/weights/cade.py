"""CADE: differential evolution with cosine-annealed mutation factor and crossover rate.

R. Jiang, G. Du, S. Yu, Y. Guo, S. K. Goh and H.-K. Tang, "CADE: Cosine Annealing Differential
Evolution for Spiking Neural Network", arXiv:2406.02349, 2024.

Generation ``t`` of ``T = total_generations`` uses ``F_t`` and ``CR_t`` on cosine schedules between
configured bounds, e.g. decreasing ``F_t = F_min + (F_max - F_min) (1 + cos(pi t / (T - 1))) / 2``
(``increasing`` swaps the ends); after ``T`` generations the end value holds. Optional per-member
Gaussian jitter (std ``jitter`` times the bound width) is clipped so that F and CR always stay inside
``[F_min, F_max]`` and ``[CR_min, CR_max]`` (the published code lets its jitter push F above its start
value; here the bounds are a guarantee). Mutation, crossover and selection are those of ``DE``.

Draw order of one ``ask``: with ``jitter > 0``, ``randn(P)`` for F then ``randn(P)`` for CR; then the
draws of ``DE``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from evofusion.errors import ConfigError
from evofusion.weights.base import WEIGHT_STRATEGIES, check_int, check_range
from evofusion.weights.de import DE

SCHEDULES = ("decreasing", "increasing")


def cosine_schedule(t: int, total: int, start: float, end: float) -> float:
    """Cosine interpolation from ``start`` (t = 0) to ``end`` (t >= total - 1)."""
    progress = min(t / max(total - 1, 1), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


@WEIGHT_STRATEGIES.register("cade")
class CADE(DE):
    """DE whose F and CR follow cosine schedules over ``total_generations``.

    Args:
        population, fitness, generator: as for ``DE``.
        total_generations: T >= 1, the generations the schedules span.
        F_min, F_max: bounds of F, 0 < F_min <= F_max <= 2.
        CR_min, CR_max: bounds of CR, 0 <= CR_min <= CR_max <= 1.
        F_schedule, CR_schedule: ``"decreasing"`` (max -> min) | ``"increasing"`` (min -> max).
        jitter: [0, 1] std of per-member Gaussian jitter, as a fraction of the bound width; 0 = none.
        variant: the ``DE`` mutation, ``"rand/1/bin"`` | ``"current-to-best/1"``.
    """

    name = "cade"

    def __init__(self, population: torch.Tensor, fitness: torch.Tensor, generator: torch.Generator,
                 total_generations: int = 100, F_min: float = 0.1, F_max: float = 0.9,
                 CR_min: float = 0.1, CR_max: float = 0.9, F_schedule: str = "decreasing",
                 CR_schedule: str = "decreasing", jitter: float = 0.0, variant: str = "rand/1/bin"):
        self.total_generations = check_int("total_generations", total_generations, 1)
        self.F_min = check_range("F_min", F_min, 0.0, 2.0, lo_open=True)
        self.F_max = check_range("F_max", F_max, self.F_min, 2.0)
        self.CR_min = check_range("CR_min", CR_min, 0.0, 1.0)
        self.CR_max = check_range("CR_max", CR_max, self.CR_min, 1.0)
        for field, value in (("F_schedule", F_schedule), ("CR_schedule", CR_schedule)):
            if value not in SCHEDULES:
                raise ConfigError(field, f"must be one of {' | '.join(SCHEDULES)}, got {value!r}")
        self.F_schedule, self.CR_schedule = F_schedule, CR_schedule
        self.jitter = check_range("jitter", jitter, 0.0, 1.0)
        super().__init__(population, fitness, generator, F=self.F_max, CR=self.CR_max, variant=variant)

    def params(self) -> dict[str, Any]:
        return {"total_generations": self.total_generations, "F_min": self.F_min, "F_max": self.F_max,
                "CR_min": self.CR_min, "CR_max": self.CR_max, "F_schedule": self.F_schedule,
                "CR_schedule": self.CR_schedule, "jitter": self.jitter, "variant": self.variant}

    def scheduled(self, t: int) -> tuple[float, float]:
        """F and CR of generation ``t`` before jitter."""
        def value(lo: float, hi: float, kind: str) -> float:
            start, end = (hi, lo) if kind == "decreasing" else (lo, hi)
            return min(max(cosine_schedule(t, self.total_generations, start, end), lo), hi)

        return (value(self.F_min, self.F_max, self.F_schedule),
                value(self.CR_min, self.CR_max, self.CR_schedule))

    def _rates(self) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        f, cr = self.scheduled(self.generation)
        if self.jitter == 0.0:
            return f, cr
        n = self.size
        f_t = (f + self.jitter * (self.F_max - self.F_min) * self._randn(n)).clamp(self.F_min, self.F_max)
        cr_t = (cr + self.jitter * (self.CR_max - self.CR_min) * self._randn(n)).clamp(self.CR_min,
                                                                                         self.CR_max)
        return f_t, cr_t
