"""The search space of pruning genomes: every gene vector over one teacher's channel-group layout.

Sampling follows the KD + GA pruning seed's random initial population, plus importance seeding:
a share ``importance_fraction`` of the draws keeps the channels above a global threshold of the
teacher's importance scores (L1 norm or Taylor, computed by ``evofusion.prune.graph``), at a keep
fraction drawn from ``keep_range``, with a few random flips so seeded members differ. Layer-wise
ratios therefore follow the importance distribution, not a uniform rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evofusion.genome.prune import PruneGenome
from evofusion.genome.space import SearchSpace


@dataclass(frozen=True)
class PruneSpace(SearchSpace):
    """Pruning genomes shaped like ``template`` (same teacher, groups, encoding, levels)."""

    encoding: str = "prune"
    template: PruneGenome | None = None
    scores: tuple[tuple[float, ...], ...] = field(default=(), compare=False, repr=False)  # per group
    importance_fraction: float = 0.5  # [0, 1] share of samples seeded from ``scores``
    keep_range: tuple[float, float] = (0.1, 0.6)  # (0, 1] kept share of channels drawn per sample
    noise: float = 0.02  # [0, 1] flip probability per gene of an importance-seeded sample
    # layer encoding only: random keep-ratio profiles. A sample's ratio for a group of size s is
    # q * (s / smallest group) ** -tilt * exp(N(0, shape_sigma)), tilt ~ U(tilt_range): profiles from
    # "thin layers keep more" (tilt > 0) to uniform (tilt 0), with per-layer log-normal jitter
    shape_sigma: float = 0.0  # >= 0
    tilt_range: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if self.template is None:
            raise ValueError("PruneSpace needs a template PruneGenome")
        lo, hi = self.keep_range
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"keep_range must satisfy 0 < lo <= hi <= 1, got {self.keep_range}")
        if self.scores and len(self.scores) != len(self.template.groups):
            raise ValueError(f"scores has {len(self.scores)} groups, the template {len(self.template.groups)}")
        if self.shape_sigma < 0 or self.tilt_range[0] > self.tilt_range[1]:
            raise ValueError(f"shape_sigma must be >= 0 and tilt_range (lo, hi) with lo <= hi, got "
                             f"{self.shape_sigma}, {self.tilt_range}")

    def _sample_valid(self, rng: np.random.Generator) -> Any:
        t = self.template
        assert t is not None
        q = float(rng.uniform(*self.keep_range))
        if self.scores and rng.random() < self.importance_fraction:
            return self.from_masks(self.importance_masks(q), rng)
        if t.binary:
            genes = (rng.random(len(t.genes)) < q).astype(int)
        elif self.shape_sigma > 0 or self.tilt_range != (0.0, 0.0):
            size = np.asarray(t.groups, dtype=float)
            tilt = float(rng.uniform(*self.tilt_range))
            ratio = q * (size / size.min()) ** -tilt * np.exp(rng.normal(0, self.shape_sigma, len(size)))
            genes = np.clip(np.round(ratio * t.levels), 1, t.levels).astype(int)
        else:
            genes = np.clip(np.round(q * t.levels + rng.normal(0, 1, len(t.genes))), 1, t.levels).astype(int)
        return t.with_genes(genes.tolist())

    def importance_masks(self, keep: float) -> list[np.ndarray]:
        """Keep-masks of the ``keep`` share of channels with the highest importance (globally)."""
        flat = np.concatenate([np.asarray(s, dtype=float) for s in self.scores])
        k = max(1, int(round(keep * len(flat))))
        threshold = np.sort(flat)[::-1][k - 1]
        return [np.asarray(s, dtype=float) >= threshold for s in self.scores]

    def from_masks(self, masks: list[np.ndarray], rng: np.random.Generator | None = None) -> PruneGenome:
        """The template's encoding of per-group keep-masks (block/layer: the kept share per group, as
        the closest number of chunks or ratio level); with ``rng``, ``noise`` flips are added."""
        t = self.template
        assert t is not None
        genes: list[int] = []
        for s, m in zip(t.groups, masks, strict=True):
            r = float(np.mean(m))
            if t.encoding == "channel":
                genes += [int(b) for b in m]
            elif t.encoding == "block":
                b = min(t.levels, s)
                on = int(round(r * b))
                genes += [1] * on + [0] * (b - on)
            else:
                genes.append(int(np.clip(round(r * t.levels), 1, t.levels)))
        g = np.asarray(genes)
        if rng is not None and self.noise > 0:
            flip = rng.random(len(g)) < self.noise
            g = np.where(flip, 1 - g, g) if t.binary else np.where(flip, np.clip(g + rng.choice([-1, 1], len(g)),
                                                                                  1, t.levels), g)
        return t.with_genes(g.tolist())

    def contains(self, genome: Any) -> bool:
        t = self.template
        return (isinstance(genome, PruneGenome) and t is not None and genome.teacher == t.teacher
                and genome.groups == t.groups and genome.encoding == t.encoding and genome.levels == t.levels)
