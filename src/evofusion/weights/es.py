"""Evolution strategy with fitness-weighted fusion of offspring (the neuro-evolution seed).

Each round a parent weight vector spawns Gaussian offspring ``parent + sigma * eps`` (optionally
antithetic pairs ``+eps, -eps``, Salimans et al., "Evolution Strategies as a Scalable Alternative to
Reinforcement Learning", 2017); any loss scores them (lower is better, the minimizing
:class:`~evofusion.weights.base.VectorStrategy` contract; a negated accuracy via argmax, or any other
non-differentiable number is fine) and the next parent is their softmax-weighted average,
``sum_k softmax(-f / temperature)_k * offspring_k`` (fitness-weighted recombination as in CMA-ES /
natural ES, Wierstra et al., JMLR 2014). Non-finite fitness gets weight 0; a round where every
offspring failed keeps the parent. ``sigma`` decays geometrically, never below ``sigma_min``.

Elites (``elites >= 1``). The ``elites`` best vectors ever evaluated are kept with their fitness.
The exact rule:

1. :meth:`ESFusion.ask` returns ``offspring`` perturbed rows followed by one extra row, the current
   parent itself, so the parent's fitness is told with the next :meth:`ESFusion.tell`.
2. In ``tell``, if the parent's loss is non-finite or strictly above the best elite loss
   known *before* this round, the fused parent is discarded and the next parent is the best elite
   after adding this round's evaluations (which can be one of this round's offspring). Otherwise
   the next parent is the fusion of this round's offspring.
3. The archive then holds the ``elites`` best finite (vector, fitness) pairs ever told (a vector
   already in the archive is not added twice).

So a parent told to be worse than the best-ever elite lives exactly one round. With ``elites=0``
``ask`` returns only the offspring and the fusion is always accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from evofusion.errors import ConfigError
from evofusion.weights.base import (
    WEIGHT_STRATEGIES,
    VectorStrategy,
    clean_fitness,
    generator_state_from_str,
    generator_state_to_str,
)

__all__ = ["ESFusion"]


class ESFusion(VectorStrategy):
    """Gaussian offspring + softmax fitness-weighted fusion, with an elite archive (minimizing).

    Args:
        parent: the starting vector ``(D,)``.
        generator: the only source of randomness (the Gaussian noise).
        sigma: initial noise scale, > 0.
        offspring: perturbed vectors per round, >= 1 (even when ``antithetic``).
        temperature: softmax temperature (over negated losses), > 0; smaller is greedier.
        sigma_decay: factor applied to sigma after every ``tell``, in (0, 1].
        sigma_min: lower bound of sigma, >= 0.
        elites: best-ever vectors kept; >= 1 also turns on the restore rule (module docstring).
        antithetic: offspring come in ``+eps, -eps`` pairs (halves the noise variance of the fusion).
        standardize: z-score the finite losses before the softmax, so ``temperature`` does
            not depend on the loss scale.
    """

    name = "es"

    def __init__(self, parent: torch.Tensor, generator: torch.Generator, sigma: float = 0.02,
                 offspring: int = 16, temperature: float = 1.0, sigma_decay: float = 0.98,
                 sigma_min: float = 1e-4, elites: int = 1, antithetic: bool = False,
                 standardize: bool = False):
        checks = [("sigma", sigma, sigma > 0, "> 0"), ("offspring", offspring, offspring >= 1, ">= 1"),
                  ("temperature", temperature, temperature > 0, "> 0"),
                  ("sigma_decay", sigma_decay, 0 < sigma_decay <= 1, "(0, 1]"),
                  ("sigma_min", sigma_min, sigma_min >= 0, ">= 0"), ("elites", elites, elites >= 0, ">= 0"),
                  ("offspring", offspring, not antithetic or offspring % 2 == 0, "even with antithetic=True")]
        for name, value, ok, allowed in checks:
            if not ok:
                raise ConfigError(name, f"must be {allowed}, got {value!r}")
        self.parent = parent.detach().reshape(-1).clone()
        self.generator = generator
        self.sigma = max(float(sigma), float(sigma_min))
        self.offspring = int(offspring)
        self.temperature = float(temperature)
        self.sigma_decay = float(sigma_decay)
        self.sigma_min = float(sigma_min)
        self.elites = int(elites)
        self.antithetic = bool(antithetic)
        self.standardize = bool(standardize)
        self.generation = 0
        self.n_restored = 0
        self.elite_vectors = self.parent.new_empty(0, self.parent.numel())
        self.elite_fitness: list[float] = []
        self._pending: torch.Tensor | None = None

    @property
    def n_ask(self) -> int:
        """Rows per ``ask``: the offspring, plus the parent when elites are on."""
        return self.offspring + (1 if self.elites else 0)

    def ask(self) -> torch.Tensor:
        """``(n_ask, D)``: perturbed offspring, then (with elites) the unperturbed parent."""
        if self._pending is not None:
            raise RuntimeError("tell() the fitness of the last ask() before asking again")
        g, d = self.generator, self.parent.numel()
        n = self.offspring // 2 if self.antithetic else self.offspring
        eps = torch.randn(n, d, generator=g, device=g.device).to(self.parent.device, self.parent.dtype)
        if self.antithetic:
            eps = torch.cat([eps, -eps])
        rows = [self.parent + self.sigma * eps]
        if self.elites:
            rows.append(self.parent[None])
        self._pending = torch.cat(rows)
        return self._pending.clone()

    def tell(self, losses: torch.Tensor | Sequence[float]) -> None:  # type: ignore[override]
        """Fuse the offspring by ``softmax(-loss / temperature)``; apply the elite rule; decay sigma."""
        if self._pending is None:
            raise RuntimeError("tell() without a pending ask()")
        f = torch.as_tensor(losses, dtype=torch.float64).reshape(-1)
        if f.numel() != self.n_ask:
            raise ValueError(f"losses has {f.numel()} values, expected {self.n_ask} (see n_ask)")
        rows = self._pending
        fused = self._fuse(rows[: self.offspring], f[: self.offspring])
        prev_best = self.elite_fitness[0] if self.elite_fitness else math.inf
        if self.elites:
            for i in torch.argsort(clean_fitness(f), stable=True).tolist():
                self._archive(rows[i], float(f[i]))
            parent_f = float(f[-1])
            if self.elite_fitness and (not math.isfinite(parent_f) or parent_f > prev_best):
                fused, self.n_restored = self.elite_vectors[0].clone(), self.n_restored + 1
        self.parent = fused
        self._pending = None
        self.generation += 1
        self.sigma = max(self.sigma_min, self.sigma * self.sigma_decay)

    def step(self, loss_fn: Callable[[torch.Tensor], float]) -> None:
        """One round with a loss callable: ``tell([loss_fn(row) for row in ask()])``."""
        self.tell([float(loss_fn(row)) for row in self.ask()])

    def best(self) -> tuple[torch.Tensor, float]:
        """The best elite (a copy) and its loss; the parent and +inf while nothing was told."""
        if not self.elite_fitness:
            return self.parent.clone(), math.inf
        return self.elite_vectors[0].clone(), self.elite_fitness[0]

    @classmethod
    def from_population(cls, population: torch.Tensor, fitness: torch.Tensor, generator: torch.Generator,
                        **params: Any) -> ESFusion:
        """The registry's factory: start from the population's lowest-loss row (``fitness``: losses)."""
        if not isinstance(population, torch.Tensor) or population.ndim != 2:
            raise ConfigError("population", "must be a floating-point tensor of shape (P, D)")
        f = clean_fitness(torch.as_tensor(fitness, dtype=torch.float64).reshape(-1))
        return cls(population[int(torch.argmin(f))], generator, **params)

    # --- internals -----------------------------------------------------------------------------
    def _fuse(self, offspring: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        finite = torch.isfinite(f)
        if not bool(finite.any()):
            return self.parent.clone()  # every offspring failed: keep the parent
        z = -f[finite]  # lower loss, larger weight
        if self.standardize:
            std = z.std(unbiased=False) if z.numel() > 1 else z.new_tensor(0.0)
            z = (z - z.mean()) / std if float(std) > 0 else torch.zeros_like(z)
        w = torch.zeros_like(f)
        w[finite] = torch.softmax(z / self.temperature, 0)
        return (w.to(offspring.dtype).to(offspring.device)[:, None] * offspring).sum(0)

    def _archive(self, vector: torch.Tensor, value: float) -> None:
        if not math.isfinite(value):
            return
        if len(self.elite_fitness) >= self.elites and value >= self.elite_fitness[-1]:
            return
        if any(torch.equal(vector, e) for e in self.elite_vectors):
            return
        vecs = torch.cat([self.elite_vectors, vector[None]])
        fits = [*self.elite_fitness, value]
        order = sorted(range(len(fits)), key=lambda i: fits[i])[: self.elites]  # stable: older first on ties
        self.elite_vectors = vecs[order].clone()
        self.elite_fitness = [fits[i] for i in order]

    # --- state ---------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {"offspring": self.offspring, "temperature": self.temperature, "sigma_decay": self.sigma_decay,
                "sigma_min": self.sigma_min, "elites": self.elites, "antithetic": self.antithetic,
                "standardize": self.standardize}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable hyper-parameters, sigma, counters, elite fitness and generator state."""
        return {"name": "es", "params": self.params(), "sigma": self.sigma,
                "generation": self.generation, "n_restored": self.n_restored,
                "elite_fitness": list(self.elite_fitness), "pending": self._pending is not None,
                "rng": generator_state_to_str(self.generator)}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Parent, elite vectors and pending rows, contiguous on the CPU (safetensors-ready)."""
        out = {"parent": self.parent, "elite_vectors": self.elite_vectors}
        if self._pending is not None:
            out["pending"] = self._pending
        return {k: v.detach().cpu().contiguous() for k, v in out.items()}

    def load_state_dict(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_dict()``/``tensors()`` saved, hyper-parameters and generator included."""
        if state.get("name") != "es":
            raise ValueError(f"state is for weight strategy {state.get('name')!r}, not 'es'")
        p = state["params"]
        self.offspring, self.temperature = int(p["offspring"]), float(p["temperature"])
        self.sigma_decay, self.sigma_min = float(p["sigma_decay"]), float(p["sigma_min"])
        self.elites, self.antithetic, self.standardize = int(p["elites"]), bool(p["antithetic"]), bool(p["standardize"])
        self.sigma = float(state["sigma"])
        self.generation, self.n_restored = int(state["generation"]), int(state["n_restored"])
        self.elite_fitness = [float(v) for v in state["elite_fitness"]]
        generator_state_from_str(self.generator, state["rng"])
        dev = self.parent.device
        self.parent = tensors["parent"].to(dev).clone()
        self.elite_vectors = tensors["elite_vectors"].to(dev).clone()
        self._pending = tensors["pending"].to(dev).clone() if state["pending"] else None


WEIGHT_STRATEGIES.add("es", ESFusion.from_population)
