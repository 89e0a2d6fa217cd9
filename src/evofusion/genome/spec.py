"""The layered student spec: stages of conv blocks and a head.

A genome is a frozen, JSON-serializable value with a stable content hash. It also carries the task
shape (input channels, input size, class count), which operators never change, so that
``build(genome)`` needs nothing else and an exported genome JSON rebuilds its model on its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from evofusion.errors import GenomeError
from evofusion.genome.taps import check_taps
from evofusion.layers.blocks import ACTIVATIONS, POOLS

MAX_WIDTH = 1024
MAX_DEPTH = 8
KERNELS = (1, 3, 5, 7, 9)
HEAD_KINDS = ("gap", "flatten")
MAX_FLATTEN_FEATURES = 65536


@dataclass(frozen=True)
class StageGene:
    """One stage: ``depth`` conv blocks of ``width`` channels, optional skip, then pooling."""

    width: int  # [1, 1024] output channels of every block in the stage
    depth: int = 1  # [1, 8] conv blocks
    kernel: int = 3  # odd, one of 1, 3, 5, 7, 9
    activation: str = "relu"  # a key of evofusion.layers.ACTIVATIONS
    pool: str = "max"  # max | avg | none; 2x2, skipped once the feature map is 1x1
    skip: bool = False  # residual connection around the stage's blocks
    # function-preserving growth (evofusion.operators.morph); both are omitted from to_dict at their
    # defaults so genomes without them keep their hashes
    blend: str = ""  # "" or an activation: act = old + mix * (blend - old), learnable mix (starts at 0)
    skip_gate: bool = False  # the skip branch is scaled by a learnable gate (starts at 0); needs skip


_STAGE_OPTIONAL = {"blend": "", "skip_gate": False}  # StageGene fields left out of to_dict at default


@dataclass(frozen=True)
class HeadGene:
    """Classifier head: global average pool or flatten, optional hidden layer, dropout."""

    kind: str = "gap"  # gap | flatten
    hidden: int = 0  # [0, 4096] hidden units; 0 = linear classifier directly
    dropout: float = 0.0  # [0, 0.9]


@dataclass(frozen=True)
class StudentGenome:
    """A student architecture. ``kind`` tells the JSON decoder what this is."""

    stages: tuple[StageGene, ...]
    head: HeadGene = field(default_factory=HeadGene)
    in_channels: int = 1
    input_size: int = 28
    num_classes: int = 10
    kind: str = "student"
    # named feature taps, (name, location) pairs (see evofusion.genome.taps); omitted from to_dict
    # when empty so genomes without taps keep their hashes
    taps: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.taps, dict):  # accept a mapping; store sorted pairs (one canonical value)
            object.__setattr__(self, "taps", tuple(self.taps.items()))
        if isinstance(self.taps, tuple) and all(isinstance(t, tuple) and len(t) == 2 for t in self.taps):
            object.__setattr__(self, "taps", tuple(sorted(self.taps, key=lambda t: str(t[0]))))
        validate(self)

    # --- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = [{k: v for k, v in s.items() if k not in _STAGE_OPTIONAL or v != _STAGE_OPTIONAL[k]}
                       for s in d["stages"]]
        if self.taps:
            d["taps"] = {name: loc for name, loc in self.taps}
        else:
            del d["taps"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        """Stable content hash: the same architecture gives the same hash in any process."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_student(self) -> StudentGenome:
        return self

    def replace(self, **changes: Any) -> StudentGenome:
        return replace(self, **changes)

    def with_stage(self, index: int, **changes: Any) -> StudentGenome:
        stages = list(self.stages)
        stages[index] = replace(stages[index], **changes)
        return replace(self, stages=tuple(stages))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudentGenome:
        if not isinstance(d, dict):
            raise GenomeError("genome", f"expected a mapping, got {type(d).__name__}")
        known = {"stages", "head", "in_channels", "input_size", "num_classes", "kind", "taps"}
        extra = set(d) - known
        if extra:
            raise GenomeError(sorted(extra)[0], f"unknown field; valid: {', '.join(sorted(known))}")
        if d.get("kind", "student") != "student":
            raise GenomeError("kind", f"expected 'student', got {d.get('kind')!r}")
        stages_raw = d.get("stages")
        if not isinstance(stages_raw, list | tuple) or not stages_raw:
            raise GenomeError("stages", "must be a non-empty list of stages")
        stages = []
        for i, s in enumerate(stages_raw):
            if not isinstance(s, dict):
                raise GenomeError(f"stages[{i}]", "must be a mapping")
            bad = set(s) - {f for f in StageGene.__dataclass_fields__}
            if bad:
                raise GenomeError(f"stages[{i}].{sorted(bad)[0]}", "unknown field; valid: "
                                  + ", ".join(StageGene.__dataclass_fields__))
            if "width" not in s:
                raise GenomeError(f"stages[{i}].width", "is required")
            stages.append(StageGene(**s))
        head_raw = d.get("head", {})
        if not isinstance(head_raw, dict):
            raise GenomeError("head", "must be a mapping")
        bad = set(head_raw) - {f for f in HeadGene.__dataclass_fields__}
        if bad:
            raise GenomeError(f"head.{sorted(bad)[0]}", "unknown field; valid: "
                              + ", ".join(HeadGene.__dataclass_fields__))
        rest: dict[str, Any] = {k: d[k] for k in ("in_channels", "input_size", "num_classes") if k in d}
        if "taps" in d:
            if not isinstance(d["taps"], dict):
                raise GenomeError("taps", "must be a mapping of tap name -> location")
            rest["taps"] = tuple((str(k), v) for k, v in d["taps"].items())
        return cls(stages=tuple(stages), head=HeadGene(**head_raw), **rest)

    @classmethod
    def from_json(cls, text: str) -> StudentGenome:
        return cls.from_dict(json.loads(text))


def _int_in(value: Any, lo: int, hi: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise GenomeError(name, f"must be an integer in [{lo}, {hi}], got {value!r}")


def spatial_sizes(genome: StudentGenome) -> list[int]:
    """Feature-map side after each stage (pooling is skipped once the map is 1x1)."""
    size, out = genome.input_size, []
    for s in genome.stages:
        if s.pool != "none" and size >= 2:
            size //= 2
        out.append(size)
    return out


def validate(g: StudentGenome) -> None:
    """Raise GenomeError naming the first invalid field."""
    if g.kind != "student":
        raise GenomeError("kind", f"must be 'student', got {g.kind!r}")
    _int_in(g.in_channels, 1, 64, "in_channels")
    _int_in(g.input_size, 1, 1024, "input_size")
    _int_in(g.num_classes, 2, 100000, "num_classes")
    if not isinstance(g.stages, tuple) or not g.stages:
        raise GenomeError("stages", "must be a non-empty tuple of StageGene")
    if len(g.stages) > 12:
        raise GenomeError("stages", f"at most 12 stages, got {len(g.stages)}")
    for i, s in enumerate(g.stages):
        p = f"stages[{i}]"
        if not isinstance(s, StageGene):
            raise GenomeError(p, "must be a StageGene")
        _int_in(s.width, 1, MAX_WIDTH, f"{p}.width")
        _int_in(s.depth, 1, MAX_DEPTH, f"{p}.depth")
        if s.kernel not in KERNELS or isinstance(s.kernel, bool):
            raise GenomeError(f"{p}.kernel", f"must be one of {KERNELS}, got {s.kernel!r}")
        if s.activation not in ACTIVATIONS:
            raise GenomeError(f"{p}.activation",
                              f"must be one of {', '.join(ACTIVATIONS)}, got {s.activation!r}")
        if s.pool not in POOLS:
            raise GenomeError(f"{p}.pool", f"must be one of {', '.join(POOLS)}, got {s.pool!r}")
        if not isinstance(s.skip, bool):
            raise GenomeError(f"{p}.skip", f"must be true or false, got {s.skip!r}")
        if s.blend != "" and s.blend not in ACTIVATIONS:
            raise GenomeError(f"{p}.blend", f"must be '' or one of {', '.join(ACTIVATIONS)}, got {s.blend!r}")
        if not isinstance(s.skip_gate, bool) or (s.skip_gate and not s.skip):
            raise GenomeError(f"{p}.skip_gate", f"must be true or false, and true only with skip, got "
                              f"{s.skip_gate!r}")
    check_taps(g.taps)
    h = g.head
    if not isinstance(h, HeadGene):
        raise GenomeError("head", "must be a HeadGene")
    if h.kind not in HEAD_KINDS:
        raise GenomeError("head.kind", f"must be one of {', '.join(HEAD_KINDS)}, got {h.kind!r}")
    _int_in(h.hidden, 0, 4096, "head.hidden")
    if isinstance(h.dropout, bool) or not isinstance(h.dropout, int | float) or not 0 <= h.dropout <= 0.9:
        raise GenomeError("head.dropout", f"must be a number in [0, 0.9], got {h.dropout!r}")
    if h.kind == "flatten":
        feats = g.stages[-1].width * spatial_sizes(g)[-1] ** 2
        if feats > MAX_FLATTEN_FEATURES:
            raise GenomeError("head.kind", f"flatten would give {feats} features (max "
                              f"{MAX_FLATTEN_FEATURES}); pool more or use 'gap'")
