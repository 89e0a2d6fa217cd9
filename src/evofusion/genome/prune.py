"""Pruning genome of the KD + GA pruning seed: which channels of a trained teacher survive.

"Knowledge Distillation with Genetic Architecture Search for Tiny IoT Devices" encodes a pruned
network as a binary chromosome, one gene per filter or neuron (1 = keep). Prunable units here are
Torch-Pruning's channel *groups* (channels that must go together: a residual stream, an Inception
concatenation, a depthwise conv's in/out pair), listed in a fixed order by ``evofusion.prune.graph``.
Three encodings of the same decision:

========== ================================================ ======================================
encoding   genes                                            decode, for a group of ``s`` channels
========== ================================================ ======================================
channel    one bit per channel (the seed's encoding)        keep the channels whose bit is 1
block      ``min(levels, s)`` bits per group                channels ranked by importance, split
                                                            into that many chunks; keep chunks with 1
layer      one integer in ``[1, levels]`` per group         keep the ``round(g / levels * s)`` most
                                                            important channels
========== ================================================ ======================================

Every group keeps at least one channel (its most important one when the genes keep none), so every
genome is a valid network. Channel counts (and so parameter counts) do not depend on the ranking;
which channels survive does (the evaluator ranks by the teacher's L1 norms).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evofusion.errors import GenomeError

ENCODINGS = ("channel", "block", "layer")


@dataclass(frozen=True)
class PruneGenome:
    """A keep/remove decision over a teacher's prunable channel groups (frozen, hashable, JSON)."""

    teacher: str  # teacher identity (hex prefix of its weights hash)
    arch: str  # zoo architecture the teacher is rebuilt from
    groups: tuple[int, ...]  # channels per prunable group, in layout order
    genes: tuple[int, ...]
    encoding: str = "channel"  # channel | block | layer
    levels: int = 8  # [1, 1024] block: chunks per group; layer: keep-ratio steps
    width: float = 1.0
    in_channels: int = 1
    num_classes: int = 10
    input_size: int = 28
    kind: str = "prune"

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise GenomeError("encoding", f"must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")
        if not isinstance(self.levels, int) or not 1 <= self.levels <= 1024:
            raise GenomeError("levels", f"must be an integer in [1, 1024], got {self.levels!r}")
        if not self.groups or any(not isinstance(s, int) or s < 1 for s in self.groups):
            raise GenomeError("groups", f"must be a non-empty list of channel counts >= 1, got {self.groups!r}")
        n = self.gene_count(self.encoding, self.groups, self.levels)
        if not isinstance(self.genes, tuple) or len(self.genes) != n:
            got = len(self.genes) if hasattr(self.genes, "__len__") else self.genes
            raise GenomeError("genes", f"encoding '{self.encoding}' over groups {list(self.groups)} needs "
                              f"{n} genes, got {got}")
        lo, hi = self.gene_range(self.encoding, self.levels)
        if any(isinstance(g, bool) or not isinstance(g, int) or not lo <= g <= hi for g in self.genes):
            raise GenomeError("genes", f"every gene must be an integer in [{lo}, {hi}]")

    # --- layout --------------------------------------------------------------------------------
    @staticmethod
    def gene_count(encoding: str, groups: Sequence[int], levels: int) -> int:
        if encoding == "channel":
            return int(sum(groups))
        if encoding == "block":
            return int(sum(min(levels, s) for s in groups))
        return len(groups)

    @staticmethod
    def gene_range(encoding: str, levels: int) -> tuple[int, int]:
        return (1, levels) if encoding == "layer" else (0, 1)

    @property
    def binary(self) -> bool:
        return self.encoding != "layer"

    def group_genes(self) -> list[tuple[int, ...]]:
        """The genes split per group."""
        out, pos = [], 0
        for s in self.groups:
            n = s if self.encoding == "channel" else min(self.levels, s) if self.encoding == "block" else 1
            out.append(self.genes[pos:pos + n])
            pos += n
        return out

    def keep_masks(self, rankings: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
        """One boolean keep-mask per group. ``rankings[g]`` lists group g's channel indices, most
        important first (default: index order); it decides which channels a block/layer gene keeps
        and which channel survives in a group the genes would empty."""
        masks = []
        for g, (s, genes) in enumerate(zip(self.groups, self.group_genes(), strict=True)):
            rank = np.arange(s) if rankings is None else np.asarray(rankings[g], dtype=np.int64)
            if len(rank) != s:
                raise GenomeError("groups", f"group {g} has {s} channels but its ranking has {len(rank)}")
            keep = np.zeros(s, dtype=bool)
            if self.encoding == "channel":
                keep[:] = np.asarray(genes, dtype=bool)
            elif self.encoding == "block":
                for bit, chunk in zip(genes, np.array_split(rank, len(genes)), strict=True):
                    keep[chunk] = bool(bit)
            else:
                keep[rank[:max(1, int(round(genes[0] / self.levels * s)))]] = True
            if not keep.any():
                keep[rank[0]] = True
            masks.append(keep)
        return masks

    def kept_fraction(self) -> float:
        """Share of the prunable channels kept (ranking-independent)."""
        return float(sum(int(m.sum()) for m in self.keep_masks()) / sum(self.groups))

    # --- I/O -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        genes: Any = "".join(map(str, self.genes)) if self.binary else list(self.genes)
        return {"kind": self.kind, "teacher": self.teacher, "arch": self.arch, "width": self.width,
                "in_channels": self.in_channels, "num_classes": self.num_classes,
                "input_size": self.input_size, "encoding": self.encoding, "levels": self.levels,
                "groups": list(self.groups), "genes": genes}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PruneGenome:
        d = dict(d)
        d.pop("kind", None)
        genes = d.pop("genes", None)
        if isinstance(genes, str):
            if set(genes) - {"0", "1"}:
                raise GenomeError("genes", "a binary gene string holds only 0 and 1")
            genes = tuple(int(c) for c in genes)
        elif isinstance(genes, list):
            genes = tuple(genes)
        else:
            raise GenomeError("genes", f"must be a 0/1 string or a list of integers, got {type(genes).__name__}")
        groups = d.pop("groups", None)
        if not isinstance(groups, list):
            raise GenomeError("groups", "must be a list of channel counts")
        return cls(genes=genes, groups=tuple(groups), **d)

    def with_genes(self, genes: Sequence[int]) -> PruneGenome:
        """The same genome with other genes (validated)."""
        from dataclasses import replace

        return replace(self, genes=tuple(int(g) for g in genes))
