"""The search space: which genomes a strategy may propose, and how to sample one at random."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from evofusion.errors import ConfigError
from evofusion.genome.chromosome import HEADER_BITS, ChromosomeGenome
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome

Genome = StudentGenome | ChromosomeGenome


@dataclass(frozen=True)
class SearchSpace:
    """Bounds of the student search space. Every operator keeps its children inside them.

    ``encoding`` picks the genome kind: ``student`` (the layered spec) or ``chromosome`` (the
    CNN-evolution seed's bit string, ``chromosome_blocks`` layer bits).
    """

    in_channels: int = 1
    input_size: int = 28
    num_classes: int = 10
    encoding: str = "student"  # student | chromosome
    min_stages: int = 1  # [1, 12]
    max_stages: int = 4  # [min_stages, 12]
    widths: tuple[int, ...] = (4, 8, 12, 16, 24, 32, 48, 64)
    min_depth: int = 1  # [1, 8]
    max_depth: int = 3  # [min_depth, 8]
    kernels: tuple[int, ...] = (3, 5)
    activations: tuple[str, ...] = ("relu", "gelu", "silu", "hardswish")
    pools: tuple[str, ...] = ("max", "avg", "none")
    allow_skip: bool = True
    head_kinds: tuple[str, ...] = ("gap", "flatten")
    head_hidden: tuple[int, ...] = (0, 32, 64)
    chromosome_blocks: int = 7  # layer bits of a chromosome genome
    chromosome_base_width: int = 4
    # optional cheap predicate (e.g. static hard constraints: params, FLOPs): sampling and variation
    # retry until it holds, so evaluations are not spent on candidates known to be infeasible
    admissible: Callable[[Genome], bool] | None = field(default=None, compare=False, repr=False)
    admissible_tries: int = 200  # draws before sample() gives up and returns the last one
    # optional deterministic map applied to every sampled genome and every child before the
    # admissibility check (e.g. pruning's budget fill: scale keep ratios up to a parameter target)
    repair: Callable[[Genome], Genome] | None = field(default=None, compare=False, repr=False)

    def admits(self, genome: Genome) -> bool:
        return self.admissible is None or bool(self.admissible(genome))

    def repaired(self, genome: Genome) -> Genome:
        """``genome`` after the space's ``repair`` (itself when there is none)."""
        return genome if self.repair is None else self.repair(genome)

    def _task(self) -> dict[str, int]:
        return {"in_channels": self.in_channels, "input_size": self.input_size,
                "num_classes": self.num_classes}

    def sample_stage(self, rng: np.random.Generator) -> StageGene:
        return StageGene(
            width=int(rng.choice(self.widths)),
            depth=int(rng.integers(self.min_depth, self.max_depth + 1)),
            kernel=int(rng.choice(self.kernels)),
            activation=str(rng.choice(self.activations)),
            pool=str(rng.choice(self.pools)),
            skip=bool(self.allow_skip and rng.random() < 0.5),
        )

    def sample(self, rng: np.random.Generator) -> Genome:
        """A uniformly random genome of this space that validates and, when the space has an
        ``admissible`` predicate, satisfies it (the last draw after ``admissible_tries`` otherwise)."""
        genome = self.repaired(self._sample_valid(rng))
        for _ in range(self.admissible_tries - 1):
            if self.admits(genome):
                break
            genome = self.repaired(self._sample_valid(rng))
        return genome

    def _sample_valid(self, rng: np.random.Generator) -> Genome:
        if self.encoding == "chromosome":
            bits = tuple(int(b) for b in rng.integers(0, 2, HEADER_BITS + self.chromosome_blocks))
            return ChromosomeGenome(bits=bits, base_width=self.chromosome_base_width, **self._task())
        for _ in range(100):
            n = int(rng.integers(self.min_stages, self.max_stages + 1))
            stages = tuple(self.sample_stage(rng) for _ in range(n))
            head = HeadGene(kind=str(rng.choice(self.head_kinds)),
                            hidden=int(rng.choice(self.head_hidden)))
            try:
                return StudentGenome(stages=stages, head=head, **self._task())
            except ValueError:
                continue
        raise ConfigError("space", "could not sample a valid genome in 100 tries: the space and the static "
                          "constraints leave (almost) no valid student; widen space.* or relax the constraints")

    def contains(self, genome: Genome) -> bool:
        """True when every gene lies inside the space's bounds."""
        if isinstance(genome, ChromosomeGenome):
            return self.encoding == "chromosome" and genome.n_blocks == self.chromosome_blocks
        if self.encoding != "student":
            return False
        g = genome
        if not self.min_stages <= len(g.stages) <= self.max_stages:
            return False
        for s in g.stages:
            if (s.width not in self.widths or not self.min_depth <= s.depth <= self.max_depth
                    or s.kernel not in self.kernels or s.activation not in self.activations
                    or s.pool not in self.pools or (s.skip and not self.allow_skip)
                    or (s.blend and s.blend not in self.activations)):
                return False
        return g.head.kind in self.head_kinds and g.head.hidden in self.head_hidden
