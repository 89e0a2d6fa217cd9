"""Evolver: model merging by evolution (Zhou et al., "Evolver", 2024/2025).

A population of fine-tuned models of one architecture, held as flat parameter vectors, evolves with
differential evolution: each generation every member ``x_i`` gets a mutant built from differences of
task vectors, ``v = x_r1 + F * (x_r2 - x_r3)`` with ``r1, r2, r3`` distinct and different from ``i``
(the shared base cancels in the difference, so working on full vectors equals working on task
vectors ``tau = theta - theta_base``), then binomial crossover with ``x_i`` (rate ``CR``, at least
one coordinate from the mutant). The child replaces its parent only when it scores strictly better
on the development set, so each member's fitness never decreases. The population may be seeded with
simple merges of the fine-tuned models (average, task arithmetic, TIES; see
:mod:`evofusion.weights.merge`) as extra members, as Evolver does.

Ask/tell: :meth:`Evolver.ask` returns the ``(P, D)`` children, the caller scores them with any
fitness (higher is better; NaN or infinite means failed, and a failed child never replaces its
parent) and passes the scores to :meth:`Evolver.tell`. :meth:`Evolver.step` does both with a callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from evofusion.errors import ConfigError
from evofusion.weights.base import check_range, generator_state_from_str, generator_state_to_str
from evofusion.weights.merge import average, task_arithmetic, task_vectors, ties_merge

__all__ = ["Evolver"]

FitnessFn = Callable[[torch.Tensor], float]


def _as_fitness(values: torch.Tensor | Sequence[float], n: int, what: str) -> torch.Tensor:
    f = torch.as_tensor(values, dtype=torch.float64).reshape(-1).clone()
    if f.numel() != n:
        raise ValueError(f"{what} has {f.numel()} values, expected {n}")
    f[~torch.isfinite(f)] = -math.inf  # failed evaluations rank last and can never win
    return f


class Evolver:
    """DE-style evolutionary merging of a population of same-architecture weight vectors.

    Args:
        population: ``(P, D)`` vectors, ``P >= 4`` (three distinct donors besides the member itself).
        fitness: ``(P,)`` development-set scores of ``population``, higher is better.
        generator: the only source of randomness (donor choice, crossover masks).
        F: differential weight, in (0, 2].
        CR: crossover rate, in [0, 1]: share of coordinates taken from the mutant.
    """

    def __init__(self, population: torch.Tensor, fitness: torch.Tensor | Sequence[float],
                 generator: torch.Generator, F: float = 0.5, CR: float = 0.5):  # noqa: N803 - the paper's names
        if not isinstance(population, torch.Tensor) or population.ndim != 2 or population.shape[0] < 4 \
                or not population.is_floating_point():
            raise ConfigError("population", "must be a floating-point tensor (P, D) with P >= 4, got "
                              f"{tuple(population.shape) if isinstance(population, torch.Tensor) else population!r}")
        self.F = check_range("F", F, 0.0, 2.0, lo_open=True)
        self.CR = check_range("CR", CR, 0.0, 1.0)
        self.population = population.detach().clone()
        self.fitness = _as_fitness(fitness, population.shape[0], "fitness")
        self.generator = generator
        self.generation = 0
        self.n_replaced = 0
        self._pending: torch.Tensor | None = None

    @classmethod
    def from_models(cls, base: torch.Tensor, thetas: torch.Tensor | Sequence[torch.Tensor], fitness_fn: FitnessFn,
                    generator: torch.Generator, *, merges: Sequence[str] = ("average", "task_arithmetic", "ties"),
                    task_arithmetic_scale: float = 1.0, ties_density: float = 0.2, F: float = 0.5,  # noqa: N803
                    CR: float = 0.5) -> Evolver:  # noqa: N803
        """Population = the fine-tuned ``thetas`` plus the named simple merges, each scored once.

        Args:
            base: the shared pre-trained vector the models were fine-tuned from.
            thetas: the fine-tuned vectors, ``(N, D)`` or N tensors ``(D,)``.
            fitness_fn: vector -> development-set score (higher is better).
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
        members = [*stacked, *(makers[m]() for m in merges)]
        population = torch.stack(members)
        return cls(population, [float(fitness_fn(v)) for v in population], generator, F=F, CR=CR)

    # --- ask / tell ----------------------------------------------------------------------------
    def ask(self) -> torch.Tensor:
        """The ``(P, D)`` children of this generation, row ``i`` competing with member ``i``."""
        if self._pending is not None:
            raise RuntimeError("tell() the fitness of the last ask() before asking again")
        g, pop = self.generator, self.population
        p, d = pop.shape
        donors = torch.empty(p, 3, dtype=torch.long)
        for i in range(p):
            r = torch.randperm(p - 1, generator=g, device=g.device)[:3].cpu()
            donors[i] = r + (r >= i).long()  # skip i itself
        donors = donors.to(pop.device)
        mutant = pop[donors[:, 0]] + self.F * (pop[donors[:, 1]] - pop[donors[:, 2]])
        take = torch.rand(p, d, generator=g, device=g.device).to(pop.device) < self.CR
        j_rand = torch.randint(d, (p,), generator=g, device=g.device).to(pop.device)
        take[torch.arange(p, device=pop.device), j_rand] = True  # at least one coordinate from the mutant
        self._pending = torch.where(take, mutant, pop)
        return self._pending.clone()

    def tell(self, child_fitness: torch.Tensor | Sequence[float]) -> torch.Tensor:
        """Greedy one-to-one selection; returns the ``(P,)`` bool mask of members replaced."""
        if self._pending is None:
            raise RuntimeError("tell() without a pending ask()")
        f = _as_fitness(child_fitness, self.population.shape[0], "child_fitness")
        better = f > self.fitness  # strictly better; a failed child (-inf) never wins
        mask = better.to(self.population.device)
        self.population[mask] = self._pending[mask]
        self.fitness[better] = f[better]
        self._pending = None
        self.generation += 1
        self.n_replaced += int(better.sum())
        return better

    def step(self, fitness_fn: FitnessFn) -> torch.Tensor:
        """One generation with a fitness callable: ``tell([fitness_fn(c) for c in ask()])``."""
        children = self.ask()
        return self.tell([float(fitness_fn(c)) for c in children])

    def best(self) -> tuple[torch.Tensor, float]:
        """The best member so far (a copy) and its fitness."""
        i = int(torch.argmax(self.fitness))
        return self.population[i].clone(), float(self.fitness[i])

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable hyper-parameters, counters and generator state (tensors: ``tensors()``)."""
        return {"name": "evolver", "params": {"F": self.F, "CR": self.CR}, "generation": self.generation,
                "n_replaced": self.n_replaced, "pending": self._pending is not None,
                "rng": generator_state_to_str(self.generator)}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Population, fitness and pending children, contiguous on the CPU (safetensors-ready)."""
        out = {"population": self.population, "fitness": self.fitness}
        if self._pending is not None:
            out["pending"] = self._pending
        return {k: v.detach().cpu().contiguous() for k, v in out.items()}

    def load_state_dict(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_dict()``/``tensors()`` saved, the generator included."""
        if state.get("name") != "evolver":
            raise ValueError(f"state is for {state.get('name')!r}, not 'evolver'")
        dev = self.population.device
        self.F, self.CR = float(state["params"]["F"]), float(state["params"]["CR"])
        self.generation, self.n_replaced = int(state["generation"]), int(state["n_replaced"])
        generator_state_from_str(self.generator, state["rng"])
        self.population = tensors["population"].to(dev).clone()
        self.fitness = tensors["fitness"].to(torch.float64).clone()
        self._pending = tensors["pending"].to(dev).clone() if state["pending"] else None
