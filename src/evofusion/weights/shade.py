"""SHADE: success-history based parameter adaptation for differential evolution.

R. Tanabe and A. Fukunaga, "Success-History Based Parameter Adaptation for Differential Evolution",
IEEE Congress on Evolutionary Computation (CEC), 2013, pp. 71-78.

Per target ``x_i``: pick a memory slot ``r_i`` in ``[0, H)``; ``CR_i ~ N(M_CR[r_i], 0.1)`` clipped to
[0, 1]; ``F_i ~ Cauchy(M_F[r_i], 0.1)``, regenerated while ``<= 0`` and truncated to 1; ``p_i ~ U[2/P,
p_max]``; mutant ``current-to-pbest/1``: ``x_i + F_i (x_pbest - x_i) + F_i (x_r1 - x_r2)`` with
``x_pbest`` one of the ``round(p_i P)`` best, ``r1 != i`` from the population and ``r2 != i, r1`` from
the population united with the external archive; binomial crossover. A trial strictly better than
its target sends the target to the archive (random members leave once it exceeds
``archive_rate * P``) and records ``(F_i, CR_i, |Δf|)``; after the generation, memory slot ``k``
takes the ``|Δf|``-weighted arithmetic mean of the successful CR (eq. 7 of the paper) and the
weighted Lehmer mean ``Σ w F² / Σ w F`` of the successful F (eq. 8), and ``k`` advances cyclically.
No bound handling: weight vectors are unbounded.

Draw order of one ``ask``: ``r = randint(H, (P,))``, ``randn(P)`` for CR, ``rand(P)`` for F (then one
``rand(m)`` per regeneration round of the ``m`` values ``<= 0``), ``rand(P)`` for ``p_i``, ``rand(P)``
for the pbest rank, ``rand(P, P)`` for ``r1``, ``rand(P, P + A)`` for ``r2``, then the crossover.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from evofusion.weights.base import WEIGHT_STRATEGIES, WeightStrategy, check_int, check_range
from evofusion.weights.de import binomial_crossover

SCALE = 0.1  # spread of the CR normal and the F Cauchy draws (the paper's 0.1)


@WEIGHT_STRATEGIES.register("shade")
class SHADE(WeightStrategy):
    """SHADE with an external archive and success-history memories of size ``memory_size``.

    Args:
        population: initial members ``(P, D)``, ``P >= 3``.
        fitness: their losses ``(P,)``.
        generator: the only source of randomness.
        memory_size: H, [1, 10000] slots of M_CR and M_F.
        p_max: (0, 1] upper bound of the pbest fraction ``p_i`` (its lower bound is ``2/P``).
        archive_rate: [0, 10] archive capacity as a multiple of ``P``; 0 disables the archive.
        init_F: (0, 1] initial M_F; init_CR: [0, 1] initial M_CR (the paper: 0.5 both).
    """

    name = "shade"

    def __init__(self, population: torch.Tensor, fitness: torch.Tensor, generator: torch.Generator,
                 memory_size: int = 10, p_max: float = 0.2, archive_rate: float = 1.0,
                 init_F: float = 0.5, init_CR: float = 0.5):
        self.memory_size = check_int("memory_size", memory_size, 1, 10000)
        self.p_max = check_range("p_max", p_max, 0.0, 1.0, lo_open=True)
        self.archive_rate = check_range("archive_rate", archive_rate, 0.0, 10.0)
        self.init_F = check_range("init_F", init_F, 0.0, 1.0, lo_open=True)
        self.init_CR = check_range("init_CR", init_CR, 0.0, 1.0)
        super().__init__(population, fitness, generator, min_population=3)
        dev, dtype = self._population.device, self._population.dtype
        self.memory_F = torch.full((self.memory_size,), self.init_F, dtype=torch.float64, device=dev)
        self.memory_CR = torch.full((self.memory_size,), self.init_CR, dtype=torch.float64, device=dev)
        self.memory_index = 0  # k: the slot the next successful generation overwrites
        self.archive = torch.empty((0, self.dim), dtype=dtype, device=dev)
        self._pending_F: torch.Tensor | None = None
        self._pending_CR: torch.Tensor | None = None

    @property
    def archive_capacity(self) -> int:
        return int(round(self.archive_rate * self.size))

    def params(self) -> dict[str, Any]:
        return {"memory_size": self.memory_size, "p_max": self.p_max, "archive_rate": self.archive_rate,
                "init_F": self.init_F, "init_CR": self.init_CR}

    # --- parameter draws -------------------------------------------------------------------------
    def _draw_rates(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.size
        slot = self._randint(self.memory_size, n)
        m_cr = self.memory_CR[slot].to(self._population.dtype)
        m_f = self.memory_F[slot].to(self._population.dtype)
        cr = (m_cr + SCALE * self._randn(n)).clamp(0.0, 1.0)
        f = m_f + SCALE * torch.tan(math.pi * (self._rand(n) - 0.5))
        bad = f <= 0  # the paper regenerates non-positive F until positive
        while bool(bad.any()):
            idx = torch.nonzero(bad).flatten()
            f[idx] = m_f[idx] + SCALE * torch.tan(math.pi * (self._rand(idx.numel()) - 0.5))
            bad = f <= 0
        return slot, f.clamp(max=1.0), cr

    def _ask(self) -> torch.Tensor:
        n, x = self.size, self._population
        slot, f, cr = self._draw_rates()
        p_min = 2.0 / n
        p = p_min + self._rand(n) * max(self.p_max - p_min, 0.0)
        n_top = torch.clamp(torch.round(p * n), 2, n).long()
        ranked = torch.argsort(self._fitness, stable=True)
        pbest = ranked[torch.clamp((self._rand(n) * n_top).long(), max=n - 1)]
        keys = self._rand(n, n)
        keys.fill_diagonal_(float("inf"))
        r1 = torch.argmin(keys, dim=1)
        union = torch.cat([x, self.archive]) if self.archive.shape[0] else x
        rows = torch.arange(n, device=x.device)
        keys2 = self._rand(n, union.shape[0])
        keys2[rows, rows] = float("inf")
        keys2[rows, r1] = float("inf")
        r2 = torch.argmin(keys2, dim=1)
        fc = f[:, None]
        mutant = x + fc * (x[pbest] - x) + fc * (x[r1] - union[r2])
        trial, mask, j_rand = binomial_crossover(self, x, mutant, cr)
        self._pending_F, self._pending_CR = f, cr
        self.last_draws = {"slot": slot, "F": f, "CR": cr, "p": p, "pbest": pbest, "r1": r1, "r2": r2,
                           "mask": mask, "j_rand": j_rand, "mutant": mutant}
        return trial

    # --- adaptation ------------------------------------------------------------------------------
    def _tell(self, trials: torch.Tensor, fitness: torch.Tensor, accepted: torch.Tensor) -> None:
        assert self._pending_F is not None and self._pending_CR is not None
        better = accepted & (fitness < self._fitness)
        if bool(better.any()):
            self._grow_archive(self._population[better])
            delta = (self._fitness[better] - fitness[better]).double()
            if bool(torch.isfinite(delta).all()):
                w = delta / delta.sum()
            else:  # a diverged (+inf) parent was replaced: those successes share the weight
                w = torch.isinf(delta).double()
                w = w / w.sum()
            s_f = self._pending_F[better].double()
            s_cr = self._pending_CR[better].double()
            k = self.memory_index
            self.memory_CR[k] = (w * s_cr).sum()
            self.memory_F[k] = (w * s_f * s_f).sum() / (w * s_f).sum()
            self.memory_index = (k + 1) % self.memory_size
        self._pending_F = self._pending_CR = None

    def _grow_archive(self, replaced: torch.Tensor) -> None:
        cap = self.archive_capacity
        if cap == 0:
            return
        archive = torch.cat([self.archive, replaced])
        if archive.shape[0] > cap:  # random members leave (the paper)
            keep = torch.argsort(self._rand(archive.shape[0]))[:cap]
            archive = archive[torch.sort(keep).values]
        self.archive = archive

    # --- state -----------------------------------------------------------------------------------
    def _state_dict(self) -> dict[str, Any]:
        return {"memory_index": self.memory_index}

    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {"memory_F": self.memory_F, "memory_CR": self.memory_CR, "archive": self.archive}
        if self._pending_F is not None and self._pending_CR is not None:
            out["pending_F"], out["pending_CR"] = self._pending_F, self._pending_CR
        return out

    def _load_state_dict(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        dev, dtype = self._population.device, self._population.dtype
        self.memory_index = int(state["memory_index"])
        self.memory_F = tensors["memory_F"].to(dev, torch.float64).clone()
        self.memory_CR = tensors["memory_CR"].to(dev, torch.float64).clone()
        self.archive = tensors["archive"].to(dev, dtype).clone().reshape(-1, self.dim)
        if self.pending:
            self._pending_F = tensors["pending_F"].to(dev, dtype).clone()
            self._pending_CR = tensors["pending_CR"].to(dev, dtype).clone()
        else:
            self._pending_F = self._pending_CR = None
