"""Differential evolution over real vectors.

R. Storn and K. Price, "Differential Evolution - A Simple and Efficient Heuristic for Global
Optimization over Continuous Spaces", Journal of Global Optimization 11:341-359, 1997.

Per generation and per target ``x_i``: a mutant ``v_i`` (``rand/1``: ``x_r1 + F (x_r2 - x_r3)`` with
``r1, r2, r3`` distinct and ``!= i``; ``current-to-best/1``: ``x_i + F (x_best - x_i) + F (x_r1 - x_r2)``),
binomial crossover with one forced index ``j_rand`` (``u_ij = v_ij`` if ``rand_ij < CR`` or
``j == j_rand``, else ``x_ij``), then greedy one-to-one selection (in ``WeightStrategy.tell``).

Draw order of one ``ask`` (reproducible from the generator): distinct indices (one ``rand(P, P)``
ranking), crossover uniforms ``rand(P, D)``, ``j_rand = randint(D, (P,))``.
"""

from __future__ import annotations

from typing import Any

import torch

from evofusion.errors import ConfigError
from evofusion.weights.base import WEIGHT_STRATEGIES, WeightStrategy, check_range

VARIANTS = ("rand/1/bin", "current-to-best/1")


def distinct_indices(strategy: WeightStrategy, k: int) -> torch.Tensor:
    """``(P, k)`` member indices, distinct within a row and different from the row's own index.

    One ``rand(P, P)`` draw ranks the members for every row (the row's own index ranked last), so a
    test can replay it: ``keys = rand(P, P); keys[i, i] = inf; argsort(keys, 1)[:, :k]``.
    """
    n = strategy.size
    keys = strategy._rand(n, n)
    keys.fill_diagonal_(float("inf"))
    return torch.argsort(keys, dim=1)[:, :k]


def binomial_crossover(strategy: WeightStrategy, target: torch.Tensor, mutant: torch.Tensor,
                       cr: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Binomial crossover with one forced mutant index per row.

    Args:
        cr: crossover rate, a float or a ``(P,)`` tensor, in [0, 1].

    Returns:
        trial ``(P, D)``, the boolean mask of mutant positions ``(P, D)``, and ``j_rand`` ``(P,)``.
    """
    n, d = target.shape
    cr_t = torch.as_tensor(cr, dtype=target.dtype, device=target.device)
    if cr_t.ndim == 1:
        cr_t = cr_t[:, None]
    mask = strategy._rand(n, d) < cr_t
    j_rand = strategy._randint(d, n)
    mask[torch.arange(n, device=mask.device), j_rand] = True
    return torch.where(mask, mutant, target), mask, j_rand


@WEIGHT_STRATEGIES.register("de")
class DE(WeightStrategy):
    """Classic DE: ``rand/1/bin`` or ``current-to-best/1`` with binomial crossover.

    Args:
        population: initial members ``(P, D)``; ``P >= 4`` for rand/1, ``P >= 3`` for current-to-best/1.
        fitness: their losses ``(P,)``.
        generator: the only source of randomness.
        F: differential weight, (0, 2].
        CR: crossover rate, [0, 1].
        variant: ``"rand/1/bin"`` | ``"current-to-best/1"`` (binomial crossover in both).
    """

    name = "de"

    def __init__(self, population: torch.Tensor, fitness: torch.Tensor, generator: torch.Generator,
                 F: float = 0.5, CR: float = 0.9, variant: str = "rand/1/bin"):
        if variant not in VARIANTS:
            raise ConfigError("variant", f"must be one of {' | '.join(VARIANTS)}, got {variant!r}")
        self.F = check_range("F", F, 0.0, 2.0, lo_open=True)
        self.CR = check_range("CR", CR, 0.0, 1.0)
        self.variant = variant
        super().__init__(population, fitness, generator, min_population=4 if variant == "rand/1/bin" else 3)

    def params(self) -> dict[str, Any]:
        return {"F": self.F, "CR": self.CR, "variant": self.variant}

    def _rates(self) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """F and CR for this generation (scalars or ``(P,)``); schedules override this."""
        return self.F, self.CR

    def _ask(self) -> torch.Tensor:
        f, cr = self._rates()
        x = self._population
        f_col = f[:, None] if isinstance(f, torch.Tensor) else f
        if self.variant == "rand/1/bin":
            r = distinct_indices(self, 3)
            mutant = x[r[:, 0]] + f_col * (x[r[:, 1]] - x[r[:, 2]])
        else:
            r = distinct_indices(self, 2)
            best = x[int(torch.argmin(self._fitness))]
            mutant = x + f_col * (best[None, :] - x) + f_col * (x[r[:, 0]] - x[r[:, 1]])
        trial, mask, j_rand = binomial_crossover(self, x, mutant, cr)
        self.last_draws = {"r": r, "mask": mask, "j_rand": j_rand, "mutant": mutant,
                           "F": torch.as_tensor(f), "CR": torch.as_tensor(cr)}
        return trial
