"""Pareto tools on a minimization matrix ``F`` of shape (n, m) (pymoo conventions).

Non-dominated sorting is Deb et al. 2002 ("A fast and elitist multiobjective genetic algorithm:
NSGA-II"), delegated to pymoo's ``NonDominatedSorting``; crowding distance is the same paper's
density estimate; the hypervolume is pymoo's exact ``HV`` indicator. Every function accepts
``n = 0`` and ``n = 1``.
"""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

try:
    from pymoo.operators.survival.rank_and_crowding.metrics import (
        calc_crowding_distance as _pymoo_crowding,
    )
except ImportError:  # pragma: no cover - older/newer pymoo layouts
    _pymoo_crowding = None


def _as_matrix(F: np.ndarray) -> np.ndarray:
    F = np.asarray(F, dtype=float)
    if F.ndim == 1:
        F = F.reshape(-1, 1) if F.size else F.reshape(0, 1)
    if F.ndim != 2:
        raise ValueError(f"F must be an (n, m) matrix, got shape {F.shape}")
    return F


def non_dominated_ranks(F: np.ndarray) -> np.ndarray:
    """Front index of every row: 0 for the non-dominated front, 1 for the next, and so on."""
    F = _as_matrix(F)
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    _, rank = NonDominatedSorting().do(F, return_rank=True)
    return np.asarray(rank, dtype=int)


def pareto_front(F: np.ndarray) -> np.ndarray:
    """Row indices of the non-dominated points (rank 0), ascending."""
    return np.flatnonzero(non_dominated_ranks(F) == 0)


def _local_crowding(F: np.ndarray) -> np.ndarray:
    n, m = F.shape
    cd = np.zeros(n)
    for j in range(m):
        order = np.argsort(F[:, j], kind="mergesort")
        span = F[order[-1], j] - F[order[0], j]
        cd[order[0]] = cd[order[-1]] = np.inf
        if span > 0:
            cd[order[1:-1]] += (F[order[2:], j] - F[order[:-2], j]) / span
    return cd / m


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """Crowding distance of each row within the set ``F`` (normally one front); larger = lonelier.

    Boundary points of a front get ``inf``; a set of at most two points is all boundary.
    """
    F = _as_matrix(F)
    n = len(F)
    if n <= 2:
        return np.full(n, np.inf)
    cd = _pymoo_crowding(F) if _pymoo_crowding is not None else _local_crowding(F)
    return np.asarray(cd, dtype=float)


def hypervolume(F: np.ndarray, ref_point: np.ndarray | list[float] | tuple[float, ...]) -> float:
    """Volume dominated by ``F`` and bounded by ``ref_point`` (minimization).

    Points that do not strictly dominate the reference point in every objective add nothing and
    are dropped; an empty set has hypervolume 0.
    """
    ref = np.asarray(ref_point, dtype=float).reshape(-1)
    F = _as_matrix(F)
    if len(F) == 0:
        return 0.0
    if F.shape[1] != len(ref):
        raise ValueError(f"F has {F.shape[1]} objectives but ref_point has {len(ref)}")
    F = F[np.all(np.isfinite(F), axis=1) & np.all(F < ref, axis=1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=ref)(F))
