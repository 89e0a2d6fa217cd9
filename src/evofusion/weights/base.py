"""Ask/tell contract for strategies that evolve real vectors (flat network weights), not genomes.

Every weight strategy (DE, SHADE, CADE, Evolver, ES fusion) is a :class:`VectorStrategy`: it
**minimizes** (told values are losses; a score such as accuracy is told negated), ``ask()`` returns
the ``(n, D)`` vectors to evaluate, ``tell(losses)`` takes their losses in the same order (NaN and
infinities mean failed: they never become the best), ``best()`` returns the best vector and its
loss, ``state_dict()`` is JSON and ``tensors()`` safetensors-ready, and ``load_state_dict(state,
tensors)`` restores the strategy exactly, its generator included. All are created by name through
``WEIGHT_STRATEGIES`` with ``(population, fitness, generator, **params)``.

The DE family shares the stricter one-to-one contract below.

A ``WeightStrategy`` holds a population ``(P, D)`` and its fitness ``(P,)`` (lower is better: a loss).
``ask()`` returns ``P`` trial vectors, one per population member; ``tell(fitness)`` receives their
fitness in the same order and does one-to-one greedy selection: trial ``i`` replaces member ``i``
iff its fitness is finite and ``<=`` the member's. Public ``ask``/``tell`` do the bookkeeping
(pending trials, counters, non-finite handling, selection) and call the subclass hooks:

* ``_ask() -> Tensor (P, D)`` (required): make the trials from ``self.population``/``self.fitness``;
* ``_tell(trials, fitness, accepted)`` (optional): adapt parameters (memories, archives) before the
  population is replaced; ``fitness`` is already cleaned (non-finite values are ``+inf``).

Guarantees a strategy gives:
* every random draw comes from the ``torch.Generator`` it was given, never from global state; the
  same generator state and the same told fitness give the same trials;
* a non-finite fitness never replaces a member, and a member whose fitness is non-finite (e.g. a
  diverged initial network) is stored with ``+inf`` so that any finite trial replaces it;
* ``state_dict()`` is JSON-serializable (scalars and the generator state as base64) and
  ``tensors()`` holds every tensor (population, fitness, archives, pending trials) for safetensors;
  ``load_state_dict(state, tensors)`` restores the strategy exactly, the generator included.

What an implementer may assume: ``tell`` is called with the fitness of the last ``ask`` before the
next ``ask``; the population has at least the members the variant needs (checked at construction).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch

from evofusion.errors import ConfigError
from evofusion.registry import Registry
from evofusion.seeding import generator_state_from_str, generator_state_to_str  # noqa: F401 - re-exported


def clean_fitness(fitness: torch.Tensor) -> torch.Tensor:
    """Non-finite values (NaN, +-inf: a diverged network) become ``+inf``, the worst loss."""
    return torch.where(torch.isfinite(fitness), fitness, torch.full_like(fitness, math.inf))


def check_range(field: str, value: Any, lo: float, hi: float, lo_open: bool = False,
                hi_open: bool = False) -> float:
    """Return ``value`` as float, or raise ConfigError naming ``field`` and the allowed interval."""
    interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(field, f"must be a number in {interval}, got {value!r}")
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        raise ConfigError(field, f"must be in {interval}, got {value!r}")
    return float(value)


def check_int(field: str, value: Any, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as int, or raise ConfigError naming ``field`` and the allowed range."""
    allowed = f">= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        raise ConfigError(field, f"must be {allowed}, got {value!r}")
    return int(value)


class VectorStrategy(ABC):
    """The minimizing ask/tell contract every weight strategy implements (module docstring)."""

    name: str = ""
    generation: int = 0  # completed ask/tell rounds

    @abstractmethod
    def ask(self) -> torch.Tensor:
        """The ``(n, D)`` vectors to evaluate next; ``tell`` their losses before asking again."""

    @abstractmethod
    def tell(self, losses: torch.Tensor) -> Any:
        """Losses of the last ``ask``'s vectors, in order (lower is better; non-finite = failed)."""

    @abstractmethod
    def best(self) -> tuple[torch.Tensor, float]:
        """The best vector found so far (a copy) and its loss."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def tensors(self) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None: ...

    def step(self, loss_fn: Any) -> Any:
        """One round with a loss callable: ``tell([loss_fn(v) for v in ask()])``."""
        return self.tell(torch.tensor([float(loss_fn(v)) for v in self.ask()], dtype=torch.float64))


class WeightStrategy(VectorStrategy):
    """Base of the one-to-one (DE-family) strategies. Subclasses implement ``_ask`` (and optionally
    ``_tell``). ``strict = True`` makes a trial replace its member only when strictly better
    (Evolver); the default accepts ties (classic DE).

    Args:
        population: initial members ``(P, D)``, floating point; copied.
        fitness: their fitness ``(P,)`` (a loss: lower is better); non-finite values become ``+inf``.
        generator: the only source of randomness; draws are made on its device.
        min_population: the smallest ``P`` the subclass's mutation needs.
    """

    strict: bool = False

    def __init__(self, population: torch.Tensor, fitness: torch.Tensor, generator: torch.Generator,
                 min_population: int = 1):
        if not isinstance(population, torch.Tensor) or population.ndim != 2 \
                or not population.is_floating_point():
            raise ConfigError("population", "must be a floating-point tensor of shape (P, D)")
        if population.shape[0] < min_population:
            raise ConfigError("population", f"{self.name or type(self).__name__} needs at least "
                              f"{min_population} members, got {population.shape[0]}")
        if population.shape[1] < 1:
            raise ConfigError("population", "vectors must have at least one dimension (D >= 1)")
        if not isinstance(fitness, torch.Tensor) or tuple(fitness.shape) != (population.shape[0],):
            raise ConfigError("fitness", f"must be a tensor of shape ({population.shape[0]},)")
        if not isinstance(generator, torch.Generator):
            raise ConfigError("generator", f"must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator
        self._population = population.detach().clone()
        self._fitness = clean_fitness(fitness.detach().to(population.device, population.dtype).clone())
        self._trials: torch.Tensor | None = None
        self.generation = 0  # completed ask/tell rounds
        self.n_evals = 0  # trial fitness values told
        self.n_nonfinite = 0  # of which non-finite
        self.last_draws: dict[str, torch.Tensor] = {}  # the random draws of the last ask (tests, logs)

    # --- properties ------------------------------------------------------------------------------
    @property
    def population(self) -> torch.Tensor:
        return self._population

    @property
    def fitness(self) -> torch.Tensor:
        return self._fitness

    @property
    def size(self) -> int:
        return int(self._population.shape[0])

    @property
    def dim(self) -> int:
        return int(self._population.shape[1])

    @property
    def pending(self) -> bool:
        """True between an ``ask`` and its ``tell``."""
        return self._trials is not None

    def best(self) -> tuple[torch.Tensor, float]:
        """The best member and its fitness (greedy selection makes it the best so far)."""
        i = int(torch.argmin(self._fitness))
        return self._population[i].clone(), float(self._fitness[i])

    # --- template methods ------------------------------------------------------------------------
    def ask(self) -> torch.Tensor:
        """Trial vectors ``(P, D)``, trial ``i`` competing with member ``i``."""
        if self._trials is not None:
            raise RuntimeError("tell() the fitness of the previous trials before asking again")
        trials = self._ask()
        if tuple(trials.shape) != tuple(self._population.shape):
            raise RuntimeError(f"{type(self).__name__}._ask returned shape {tuple(trials.shape)}, "
                               f"expected {tuple(self._population.shape)}")
        self._trials = trials
        return trials.clone()

    def tell(self, fitness_of_trials: torch.Tensor) -> torch.Tensor:
        """Greedy one-to-one selection; returns the boolean mask of accepted trials ``(P,)``."""
        if self._trials is None:
            raise RuntimeError("tell() without a pending ask()")
        f = torch.as_tensor(fitness_of_trials).detach().to(self._population.device, self._population.dtype)
        if tuple(f.shape) != (self.size,):
            raise ValueError(f"tell() needs fitness of shape ({self.size},), got {tuple(f.shape)}")
        finite = torch.isfinite(f)
        f = clean_fitness(f)
        accepted = finite & ((f < self._fitness) if self.strict else (f <= self._fitness))
        trials = self._trials
        self._tell(trials, f, accepted)
        self._population = torch.where(accepted[:, None], trials, self._population)
        self._fitness = torch.where(accepted, f, self._fitness)
        self._trials = None
        self.generation += 1
        self.n_evals += self.size
        self.n_nonfinite += int((~finite).sum())
        return accepted

    @abstractmethod
    def _ask(self) -> torch.Tensor: ...

    def _tell(self, trials: torch.Tensor, fitness: torch.Tensor,  # noqa: B027 - optional hook
              accepted: torch.Tensor) -> None:
        """Adapt before selection replaces the population; the default adapts nothing."""

    # --- randomness helpers ----------------------------------------------------------------------
    def _rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) draws from the strategy's generator, moved to the population's device."""
        return torch.rand(shape, generator=self.generator, device=self.generator.device,
                          dtype=self._population.dtype).to(self._population.device)

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.generator.device,
                           dtype=self._population.dtype).to(self._population.device)

    def _randint(self, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(high, shape, generator=self.generator,
                             device=self.generator.device).to(self._population.device)

    # --- state -----------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The constructor's hyper-parameters (JSON scalars); subclasses extend."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable counters, hyper-parameters and generator state (tensors: ``tensors()``)."""
        return {"name": self.name, "params": self.params(), "generation": self.generation,
                "n_evals": self.n_evals, "n_nonfinite": self.n_nonfinite,
                "pending": self._trials is not None, "rng": generator_state_to_str(self.generator),
                "extra": self._state_dict()}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state, contiguous and on CPU (safetensors-ready)."""
        out = {"population": self._population, "fitness": self._fitness}
        if self._trials is not None:
            out["trials"] = self._trials
        out.update(self._tensors())
        return {k: v.detach().cpu().contiguous() for k, v in out.items()}

    def load_state_dict(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_dict()``/``tensors()`` saved; the generator state included."""
        if state.get("name") != self.name:
            raise ValueError(f"state is for weight strategy '{state.get('name')}', not '{self.name}'")
        if state.get("params") != self.params():
            raise ValueError(f"state was saved with parameters {state.get('params')}, "
                             f"this strategy has {self.params()}")
        dev, dtype = self._population.device, self._population.dtype
        self._population = tensors["population"].to(dev, dtype).clone()
        self._fitness = tensors["fitness"].to(dev, dtype).clone()
        self._trials = tensors["trials"].to(dev, dtype).clone() if state["pending"] else None
        self.generation, self.n_evals = int(state["generation"]), int(state["n_evals"])
        self.n_nonfinite = int(state["n_nonfinite"])
        generator_state_from_str(self.generator, state["rng"])
        self._load_state_dict(state["extra"], tensors)

    def _state_dict(self) -> dict[str, Any]:
        return {}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_state_dict(self, state: dict[str, Any],  # noqa: B027 - optional hook
                         tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``_state_dict``/``_tensors`` saved; strategies without extra state keep this."""


WEIGHT_STRATEGIES: Registry[VectorStrategy] = Registry("weight_strategies")


def create_weight_strategy(name: str, population: torch.Tensor, fitness: torch.Tensor,
                           generator: torch.Generator, **params: Any) -> VectorStrategy:
    """Create a registered weight strategy by name: ``de``, ``shade``, ``cade``, ``evolver``, ``es``
    (registered when ``evofusion.weights`` is imported). ``fitness``: losses of ``population``."""
    return WEIGHT_STRATEGIES.create(name, population=population, fitness=fitness, generator=generator,
                                    **params)
