"""Binary chromosome of the CNN-evolution seed, decoded into the layered student spec.

Bit layout (seed 003, "Evolving CNN architectures with genetic algorithms"), 12 + n_blocks bits:

====== =========================================================================
bits   meaning
====== =========================================================================
0-1    filter multiplier m = 1 + value (1..4): block i has base_width * m * 2**(i // 2) channels
2      spacer (kept, ignored)
3-4    kernel size, from KERNEL_TABLE
5      spacer
6-7    activation, from ACTIVATION_TABLE
8      spacer
9-10   pooling, from POOL_TABLE (type, and whether every block or every second block pools)
11     spacer
12-..  one bit per block: 1 = single conv layer, 0 = double conv layer
====== =========================================================================

The seed's README names the fields but not its lookup tables; the tables below are ours. Widths
are capped at ``max_width``; pooling is skipped once the feature map is 1x1.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from evofusion.errors import GenomeError
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome

KERNEL_TABLE = (3, 5, 7, 9)
ACTIVATION_TABLE = ("relu", "leaky_relu", "elu", "gelu")
POOL_TABLE = (("max", 1), ("avg", 1), ("max", 2), ("avg", 2))  # (kind, pool every k-th block)
HEADER_BITS = 12


def _value(bits: tuple[int, ...], i: int, j: int) -> int:
    return int("".join(str(b) for b in bits[i:j]), 2)


@dataclass(frozen=True)
class ChromosomeGenome:
    """A bit string plus the decoding constants; ``to_student()`` yields the StudentGenome."""

    bits: tuple[int, ...]
    base_width: int = 4  # [1, 256] channels of the first block at multiplier 1
    max_width: int = 256  # [1, 1024] cap on any block's width
    in_channels: int = 1
    input_size: int = 28
    num_classes: int = 10
    head: str = "gap"  # gap | flatten
    kind: str = "chromosome"

    def __post_init__(self) -> None:
        if not isinstance(self.bits, tuple) or len(self.bits) < HEADER_BITS + 1:
            raise GenomeError("bits", f"need at least {HEADER_BITS + 1} bits (12 header bits + one per "
                              f"block), got {len(self.bits) if hasattr(self.bits, '__len__') else self.bits!r}")
        if any(b not in (0, 1) or isinstance(b, bool) for b in self.bits):
            raise GenomeError("bits", "every bit must be 0 or 1")
        if not 1 <= self.base_width <= 256:
            raise GenomeError("base_width", f"must be in [1, 256], got {self.base_width}")
        if not 1 <= self.max_width <= 1024:
            raise GenomeError("max_width", f"must be in [1, 1024], got {self.max_width}")
        self.to_student()  # validates the decoded spec too

    @property
    def n_blocks(self) -> int:
        return len(self.bits) - HEADER_BITS

    @classmethod
    def from_string(cls, s: str, **kw: Any) -> ChromosomeGenome:
        if not s or set(s) - {"0", "1"}:
            raise GenomeError("bits", f"must be a string of 0 and 1, got {s!r}")
        return cls(bits=tuple(int(c) for c in s), **kw)

    def bitstring(self) -> str:
        return "".join(map(str, self.bits))

    def to_student(self) -> StudentGenome:
        b = self.bits
        mult = 1 + _value(b, 0, 2)
        kernel = KERNEL_TABLE[_value(b, 3, 5)]
        act = ACTIVATION_TABLE[_value(b, 6, 8)]
        pool_kind, every = POOL_TABLE[_value(b, 9, 11)]
        stages = []
        for i, single in enumerate(b[HEADER_BITS:]):
            width = min(self.max_width, self.base_width * mult * 2 ** (i // 2))
            pool = pool_kind if (i + 1) % every == 0 else "none"
            stages.append(StageGene(width=width, depth=1 if single else 2, kernel=kernel,
                                    activation=act, pool=pool))
        return StudentGenome(stages=tuple(stages), head=HeadGene(kind=self.head),
                             in_channels=self.in_channels, input_size=self.input_size,
                             num_classes=self.num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bits": self.bitstring(), "base_width": self.base_width,
                "max_width": self.max_width, "in_channels": self.in_channels,
                "input_size": self.input_size, "num_classes": self.num_classes, "head": self.head}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChromosomeGenome:
        d = dict(d)
        d.pop("kind", None)
        bits = d.pop("bits", None)
        if not isinstance(bits, str):
            raise GenomeError("bits", "must be a string of 0 and 1")
        return cls.from_string(bits, **d)
