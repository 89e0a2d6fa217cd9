"""Budget fill: scale a layer-ratio pruning genome up to a parameter target.

Why: under a hard ``params <= N`` constraint, a GA over per-layer keep ratios spends most of its
candidates on *where* the network is thin, yet every candidate that lies well under the budget is
simply a worse version of itself scaled up, and one over it is infeasible. A repair that multiplies
all keep ratios by the largest common factor ``c`` with ``params(c * genes) <= N`` projects every
genome onto the budget surface, so the search compares allocations (the *shape* of the keep-ratio
profile) at equal parameters, which is exactly the comparison the baseline (uniform L1 at equal
parameters) sets. Measured on ResNet-18 (w0.25) at 10% of its parameters, 400 KD steps: a profile
that keeps a larger share of the thin early layers beats the uniform one by about 1 pp (README,
GA pruning section).

``BudgetFill`` is a ``SearchSpace.repair``: deterministic, memoized by genes, and it never returns a
genome over the target unless even the all-ones genome (one level per group) is over it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evofusion.errors import ConfigError
from evofusion.genome.prune import PruneGenome
from evofusion.objectives.metrics import count_params
from evofusion.prune.model import build_pruned


def largest_fitting(fits: Callable[[float], bool], lo: float, hi: float, iters: int) -> float:
    """The largest ``x`` in ``[lo, hi]`` with ``fits(x)`` found by ``iters`` bisection steps, for a
    ``fits`` that is true below some point and false above it. ``lo`` when no probed point fits
    (``fits(lo)`` itself is not called: the caller knows what its floor means)."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def pruned_params(genome: PruneGenome) -> int:
    """Parameters of the pruned network ``genome`` describes (built without weights)."""
    return int(count_params(build_pruned(genome)))


class BudgetFill:
    """Repair for layer-encoded pruning genomes: the genes scaled by the largest common factor whose
    network has at most ``target`` parameters (bisection over the factor, ``iters`` steps).

    Args:
        target: the parameter limit (>= 1).
        count: parameters of a genome's pruned network (default: build it and count).
        iters: bisection steps over the factor (14 gives the factor to ~1e-4 of its range).
    """

    def __init__(self, target: int, count: Callable[[PruneGenome], int] = pruned_params, iters: int = 14):
        if int(target) < 1:
            raise ConfigError("prune.target_params", f"the budget fill needs a parameter target >= 1, got {target}")
        self.target, self.count, self.iters = int(target), count, int(iters)
        self._memo: dict[tuple[int, ...], PruneGenome] = {}
        self._params: dict[tuple[int, ...], int] = {}

    def params(self, genome: PruneGenome) -> int:
        key = tuple(genome.genes)
        if key not in self._params:
            self._params[key] = int(self.count(genome))
        return self._params[key]

    @staticmethod
    def scaled(genome: PruneGenome, c: float) -> PruneGenome:
        g = np.clip(np.round(c * np.asarray(genome.genes, dtype=float)), 1, genome.levels).astype(int)
        return genome.with_genes(g.tolist())

    def fits(self, genome: PruneGenome) -> bool:
        return self.params(genome) <= self.target

    def _largest_fitting(self, genome: PruneGenome, lo: float, hi: float) -> PruneGenome | None:
        """``scaled(genome, c)`` for the largest ``c`` in ``[lo, hi]`` that fits (bisection), or None."""
        top = self.scaled(genome, hi)
        if self.fits(top):
            return top
        c = largest_fitting(lambda x: self.fits(self.scaled(genome, x)), lo, hi, self.iters)
        found = self.scaled(genome, c)  # memoized params: fits() does not build it again
        return found if self.fits(found) else None

    def __call__(self, genome: PruneGenome) -> PruneGenome:
        """The repaired genome: fits the target and no common scale-up of it does (a fixed point:
        repairing it again returns it unchanged)."""
        if not isinstance(genome, PruneGenome) or genome.encoding != "layer":
            raise ConfigError("prune.fill_budget", "the budget fill scales per-layer keep ratios: it needs "
                              "--encoding layer (got a genome with encoding "
                              f"{getattr(genome, 'encoding', type(genome).__name__)!r})")
        key = tuple(genome.genes)
        if key in self._memo:
            return self._memo[key]
        g = genome
        if not self.fits(g):  # scale down: the largest fitting factor below 1 (all ones if none)
            g = self._largest_fitting(g, 0.0, 1.0) or self.scaled(g, 0.0)
        if self.fits(g):
            while True:  # scale up until one more step of the largest gene(s) below the cap would not fit
                free = [v for v in g.genes if v < g.levels]  # genes at the cap cannot grow
                if not free:
                    break
                step = 1 + 0.51 / max(free)
                bump = self.scaled(g, step)
                if bump.genes == g.genes or not self.fits(bump):
                    break
                up = self._largest_fitting(g, step, g.levels / min(g.genes))
                assert up is not None  # ``bump`` fits
                g = up
        self._memo[key] = g
        return g
