"""``build(genome) -> nn.Module``: the only place a genome becomes a module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from evofusion.genome.spec import StudentGenome, spatial_sizes
from evofusion.layers.blocks import ConvStage, make_activation
from evofusion.registry import Registry
from evofusion.seeding import torch_seeded

# builders of genome kinds that do not describe a student (``genome.kind``), e.g. ``prune``, whose
# builder needs the teacher zoo and Torch-Pruning above this package: registered, never imported here
GENOME_BUILDERS: Registry[Callable[[Any], nn.Module]] = Registry("genome_builders")


class Student(nn.Module):
    """A built student: ``stages`` (one ConvStage each) then ``head``. Keeps its genome."""

    def __init__(self, genome: StudentGenome):
        super().__init__()
        self.genome = genome
        stages, c_in = [], genome.in_channels
        sizes, size = spatial_sizes(genome), genome.input_size
        for s, out_size in zip(genome.stages, sizes, strict=True):
            pool = s.pool if out_size < size else "none"
            stages.append(ConvStage(c_in, s.width, s.depth, s.kernel, s.activation, pool, s.skip,
                                    s.blend, s.skip_gate))
            c_in, size = s.width, out_size
        self.stages = nn.Sequential(*stages)
        h = genome.head
        feats = c_in if h.kind == "gap" else c_in * size * size
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1) if h.kind == "gap" else nn.Identity(),
                                   nn.Flatten()]
        if h.hidden:
            layers += [nn.Linear(feats, h.hidden), make_activation(genome.stages[-1].activation)]
            feats = h.hidden
        if h.dropout:
            layers.append(nn.Dropout(h.dropout))
        layers.append(nn.Linear(feats, genome.num_classes))
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(x))


def build(genome: Any, seed: int | None = None) -> Student:
    """Build the module a genome describes (any genome with ``to_student()``, e.g. a chromosome; other
    kinds through ``GENOME_BUILDERS``, e.g. a pruning genome: its teacher's architecture with the
    genome's channels physically removed). With ``seed``, the initial weights come from that seed and
    the caller's torch generator is left untouched.
    """
    if seed is not None:
        with torch_seeded(seed):
            return build(genome)
    kind = getattr(genome, "kind", "student")
    if kind not in ("student", "chromosome"):
        return GENOME_BUILDERS.get(kind)(genome)  # type: ignore[return-value]
    return Student(genome.to_student())
