"""Evolver: model merging by evolution (Zhou et al., "Evolver", 2024/2025).

A population of fine-tuned models of one architecture, held as flat parameter vectors, evolves with
differential evolution: each generation every member ``x_i`` gets a mutant built from differences of
task vectors, ``v = x_r1 + F * (x_r2 - x_r3)`` with ``r1, r2, r3`` distinct and different from ``i``
(the shared base cancels in the difference, so working on full vectors equals working on task
vectors ``tau = theta - theta_base``), then binomial crossover with ``x_i`` (rate ``CR``, at least
one coordinate from the mutant). The child replaces its parent only when its loss on the
development set is strictly lower, so each member's loss never increases. The population may be
seeded with simple merges of the fine-tuned models (average, task arithmetic, TIES; see
:mod:`evofusion.weights.merge`) as extra members, as Evolver does.

Evolver *is* DE's ``rand/1/bin`` (:class:`evofusion.weights.de.DE`) with strict replacement and the
paper's defaults (``F = CR = 0.5``); it follows the minimizing :class:`VectorStrategy` contract
(tell losses, e.g. the negated development accuracy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from evofusion.errors import ConfigError
from evofusion.weights.base import WEIGHT_STRATEGIES
from evofusion.weights.de import DE
from evofusion.weights.merge import average, task_arithmetic, task_vectors, ties_merge

__all__ = ["Evolver"]

LossFn = Callable[[torch.Tensor], float]


@WEIGHT_STRATEGIES.register("evolver")
class Evolver(DE):
    """DE-style evolutionary merging of a population of same-architecture weight vectors.

    Args:
        population: ``(P, D)`` vectors, ``P >= 4`` (three distinct donors besides the member itself).
        fitness: ``(P,)`` development-set losses of ``population`` (lower is better).
        generator: the only source of randomness (donor choice, crossover masks).
        F: differential weight, in (0, 2].
        CR: crossover rate, in [0, 1]: share of coordinates taken from the mutant.
    """

    name = "evolver"
    strict = True

    def __init__(self, population: torch.Tensor, fitness: torch.Tensor | Sequence[float],
                 generator: torch.Generator, F: float = 0.5, CR: float = 0.5):  # noqa: N803 - the paper's names
        if not isinstance(population, torch.Tensor):
            raise ConfigError("population", "must be a floating-point tensor (P, D) with P >= 4")
        fit = torch.as_tensor(fitness, dtype=population.dtype if population.is_floating_point() else None)
        super().__init__(population, fit.reshape(-1), generator, F=F, CR=CR, variant="rand/1/bin")

    def params(self) -> dict[str, float]:  # type: ignore[override]
        return {"F": self.F, "CR": self.CR}

    @property
    def n_replaced(self) -> int:
        return self._replaced

    def _tell(self, trials: torch.Tensor, fitness: torch.Tensor, accepted: torch.Tensor) -> None:
        self._replaced = getattr(self, "_replaced", 0) + int(accepted.sum())

    def _state_dict(self) -> dict[str, int]:
        return {"n_replaced": self.n_replaced}

    def _load_state_dict(self, state: dict, tensors: dict[str, torch.Tensor]) -> None:
        self._replaced = int(state.get("n_replaced", 0))

    _replaced = 0

    @classmethod
    def from_models(cls, base: torch.Tensor, thetas: torch.Tensor | Sequence[torch.Tensor], loss_fn: LossFn,
                    generator: torch.Generator, *, merges: Sequence[str] = ("average", "task_arithmetic", "ties"),
                    task_arithmetic_scale: float = 1.0, ties_density: float = 0.2, F: float = 0.5,  # noqa: N803
                    CR: float = 0.5) -> Evolver:  # noqa: N803
        """Population = the fine-tuned ``thetas`` plus the named simple merges, each scored once.

        Args:
            base: the shared pre-trained vector the models were fine-tuned from.
            thetas: the fine-tuned vectors, ``(N, D)`` or N tensors ``(D,)``.
            loss_fn: vector -> development-set loss (lower is better).
            merges: any of ``"average"``, ``"task_arithmetic"``, ``"ties"``, added as extra members.
        """
        stacked = torch.stack(list(thetas)) if not isinstance(thetas, torch.Tensor) else thetas
        taus = task_vectors(base, stacked)
        makers: dict[str, Callable[[], torch.Tensor]] = {
            "average": lambda: average(stacked),
            "task_arithmetic": lambda: task_arithmetic(base, taus, task_arithmetic_scale),
            "ties": lambda: ties_merge(base, taus, ties_density),
        }
        unknown = [m for m in merges if m not in makers]
        if unknown:
            raise ConfigError("merges", f"unknown merge {unknown[0]!r}; valid: {', '.join(makers)}")
        population = torch.stack([*stacked, *(makers[m]() for m in merges)])
        return cls(population, [float(loss_fn(v)) for v in population], generator, F=F, CR=CR)
