"""An elastic supernet over the student space: one set of weights that holds every subnet.

After Cai et al., "Once-for-All" (ICLR 2020) and Yu et al., "BigNAS" (ECCV 2020). The supernet has
``len(max_widths)`` conv stages; stage ``i`` holds ``max_depth`` conv blocks of ``max_widths[i]``
channels with ``max(kernels)`` kernels. A **subnet** is an ordinary :class:`StudentGenome` with the
same number of stages whose stage ``i`` has

* **elastic width**: ``width <= max_widths[i]`` -- the *leading* output channels of every block
  (and the matching leading input channels of the next block and of the classifier);
* **elastic depth**: ``depth in [min_depth, max_depth]`` -- the *first* ``depth`` blocks;
* **elastic kernel**: ``kernel in kernels`` -- the *centre* ``k x k`` crop of the largest kernel
  (OFA's learned kernel-transform matrices are not used: the centre crop alone, as in BigNAS).

What cannot be shared between subnets is fixed per supernet: the activation, the pooling of every
stage, no residual skips, the head kind (``gap`` or ``flatten``) and its hidden width. Those come
from the supernet's :class:`SupernetSpec` and every subnet has them.

``Supernet.forward(x, genome)`` runs the subnet with sliced views of the shared tensors (BatchNorm
in training mode normalizes with the subnet's own batch statistics; its running statistics are
shared and therefore only a starting point: :func:`recalibrate_bn` recomputes them per subnet).
``Supernet.extract(genome)`` returns the subnet as a plain ``build(genome)`` student with copies of
the sliced tensors, which computes the same logits (tested to 1e-5) and exports like any candidate.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evofusion.errors import ConfigError
from evofusion.genome.build import Student, build
from evofusion.genome.spec import KERNELS, HeadGene, StageGene, StudentGenome, spatial_sizes
from evofusion.layers.blocks import ACTIVATIONS, POOLS, make_activation


@dataclass(frozen=True)
class SupernetSpec:
    """The shape of a supernet: what every subnet may choose and what is fixed."""

    max_widths: tuple[int, ...]  # the largest width of each stage (one entry per stage)
    widths: tuple[int, ...]  # width choices (a stage takes those <= its max)
    min_depth: int = 1
    max_depth: int = 2
    kernels: tuple[int, ...] = (3, 5)
    activation: str = "relu"
    pool: str = "max"
    head_kind: str = "gap"
    head_hidden: int = 0
    in_channels: int = 1
    input_size: int = 28
    num_classes: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_widths", tuple(int(w) for w in self.max_widths))
        object.__setattr__(self, "widths", tuple(sorted({int(w) for w in self.widths})))
        object.__setattr__(self, "kernels", tuple(sorted({int(k) for k in self.kernels})))
        checks = [
            ("max_widths", len(self.max_widths) >= 1 and all(1 <= w <= 1024 for w in self.max_widths),
             "one width in [1, 1024] per stage"),
            ("widths", bool(self.widths) and all(w >= 1 for w in self.widths), "a non-empty list of widths >= 1"),
            ("max_depth", 1 <= self.min_depth <= self.max_depth <= 8, "1 <= min_depth <= max_depth <= 8"),
            ("kernels", bool(self.kernels) and all(k in KERNELS for k in self.kernels), f"a subset of {KERNELS}"),
            ("activation", self.activation in ACTIVATIONS, " | ".join(ACTIVATIONS)),
            ("pool", self.pool in POOLS, " | ".join(POOLS)),
            ("head_kind", self.head_kind in ("gap", "flatten"), "gap | flatten"),
            ("head_hidden", 0 <= self.head_hidden <= 4096, "[0, 4096]"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"supernet.{name}", f"must be {allowed}, got {getattr(self, name)!r}")
        for i, m in enumerate(self.max_widths):
            if not any(w <= m for w in self.widths):
                raise ConfigError("supernet.max_widths", f"stage {i}: no width choice <= {m} in {list(self.widths)}")

    @property
    def n_stages(self) -> int:
        return len(self.max_widths)

    def stage_widths(self, i: int) -> tuple[int, ...]:
        return tuple(w for w in self.widths if w <= self.max_widths[i])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SupernetSpec:
        return cls(**d)

    # --- subnets -------------------------------------------------------------------------------
    def genome(self, widths: tuple[int, ...], depths: tuple[int, ...], kernels: tuple[int, ...]) -> StudentGenome:
        stages = tuple(StageGene(width=int(w), depth=int(d), kernel=int(k), activation=self.activation,
                                 pool=self.pool) for w, d, k in zip(widths, depths, kernels, strict=True))
        return StudentGenome(stages=stages, head=HeadGene(kind=self.head_kind, hidden=self.head_hidden),
                             in_channels=self.in_channels, input_size=self.input_size,
                             num_classes=self.num_classes)

    def largest(self) -> StudentGenome:
        n = self.n_stages
        return self.genome(tuple(max(self.stage_widths(i)) for i in range(n)), (self.max_depth,) * n,
                           (max(self.kernels),) * n)

    def smallest(self) -> StudentGenome:
        n = self.n_stages
        return self.genome(tuple(min(self.stage_widths(i)) for i in range(n)), (self.min_depth,) * n,
                           (min(self.kernels),) * n)

    def sample(self, rng: np.random.Generator) -> StudentGenome:
        """A uniformly random subnet (each stage's width, depth and kernel drawn independently)."""
        n = self.n_stages
        return self.genome(tuple(int(rng.choice(self.stage_widths(i))) for i in range(n)),
                           tuple(int(rng.integers(self.min_depth, self.max_depth + 1)) for _ in range(n)),
                           tuple(int(rng.choice(self.kernels)) for _ in range(n)))

    def subnets(self) -> Iterator[StudentGenome]:
        """Every subnet (the space can be large: iterate, do not list, unless it is small)."""
        per_stage = [list(itertools.product(self.stage_widths(i), range(self.min_depth, self.max_depth + 1),
                                            self.kernels)) for i in range(self.n_stages)]
        for combo in itertools.product(*per_stage):
            yield self.genome(*zip(*combo, strict=True))  # type: ignore[arg-type]

    def why_not(self, genome: object) -> str:
        """'' when ``genome`` is a subnet of this supernet, else the first reason it is not."""
        if not isinstance(genome, StudentGenome):
            return f"a subnet is a student genome, not {type(genome).__name__}"
        task = (genome.in_channels, genome.input_size, genome.num_classes)
        if task != (self.in_channels, self.input_size, self.num_classes):
            return f"task (channels, size, classes) {task} is not the supernet's"
        if len(genome.stages) != self.n_stages:
            return f"{len(genome.stages)} stages, the supernet has {self.n_stages}"
        if (genome.head.kind, genome.head.hidden, genome.head.dropout) != (self.head_kind, self.head_hidden, 0.0):
            return f"head {genome.head} is not the supernet's ({self.head_kind}, hidden {self.head_hidden})"
        if genome.taps:
            return "subnets have no feature taps"
        for i, s in enumerate(genome.stages):
            if s.width not in self.stage_widths(i):
                return f"stages[{i}].width {s.width} is not one of {list(self.stage_widths(i))}"
            if not self.min_depth <= s.depth <= self.max_depth:
                return f"stages[{i}].depth {s.depth} is outside [{self.min_depth}, {self.max_depth}]"
            if s.kernel not in self.kernels:
                return f"stages[{i}].kernel {s.kernel} is not one of {list(self.kernels)}"
            if (s.activation, s.pool, s.skip, s.blend) != (self.activation, self.pool, False, ""):
                return (f"stages[{i}] must have activation {self.activation}, pool {self.pool}, no skip "
                        f"(got {s.activation}, {s.pool}, skip {s.skip})")
        return ""

    def contains(self, genome: object) -> bool:
        return not self.why_not(genome)


class Supernet(nn.Module):
    """The shared weights of every subnet of ``spec``; ``forward(x, genome)`` runs one subnet."""

    def __init__(self, spec: SupernetSpec):
        super().__init__()
        self.spec = spec
        k = max(spec.kernels)
        stages, c_in = [], spec.in_channels
        for w in spec.max_widths:
            blocks = nn.ModuleList()
            for j in range(spec.max_depth):
                blocks.append(nn.ModuleDict({"conv": nn.Conv2d(c_in if j == 0 else w, w, k, padding=k // 2, bias=False),
                                             "bn": nn.BatchNorm2d(w)}))
            stages.append(blocks)
            c_in = w
        self.stages = nn.ModuleList(stages)
        last = spec.max_widths[-1]
        side = spatial_sizes(spec.largest())[-1]
        feats = last if spec.head_kind == "gap" else last * side * side
        self.hidden = nn.Linear(feats, spec.head_hidden) if spec.head_hidden else None
        self.fc = nn.Linear(spec.head_hidden or feats, spec.num_classes)
        self.act = make_activation(spec.activation)

    def check(self, genome: StudentGenome) -> None:
        why = self.spec.why_not(genome)
        if why:
            raise ConfigError("subnet", f"not a subnet of this supernet: {why}")

    def forward(self, x: torch.Tensor, genome: StudentGenome) -> torch.Tensor:  # type: ignore[override]
        self.check(genome)
        kmax = max(self.spec.kernels)
        size, c_in = genome.input_size, genome.in_channels
        for s, blocks, out_size in zip(genome.stages, self.stages, spatial_sizes(genome), strict=True):
            off = (kmax - s.kernel) // 2
            for j in range(s.depth):
                conv, bn = blocks[j]["conv"], blocks[j]["bn"]
                w = conv.weight[:s.width, :c_in, off:off + s.kernel, off:off + s.kernel]
                x = F.conv2d(x, w, padding=s.kernel // 2)
                x = F.batch_norm(x, bn.running_mean[:s.width], bn.running_var[:s.width], bn.weight[:s.width],
                                 bn.bias[:s.width], self.training, bn.momentum, bn.eps)
                x = self.act(x)
                c_in = s.width
            if out_size < size:
                x = F.max_pool2d(x, 2) if s.pool == "max" else F.avg_pool2d(x, 2)
            size = out_size
        x = x.mean((2, 3)) if self.spec.head_kind == "gap" else x.flatten(1)
        feats = x.shape[1]
        if self.hidden is not None:
            x = self.act(F.linear(x, self.hidden.weight[:, :feats], self.hidden.bias))
            feats = x.shape[1]
        return F.linear(x, self.fc.weight[:, :feats], self.fc.bias)

    @torch.no_grad()
    def extract(self, genome: StudentGenome) -> Student:
        """The subnet as a plain student (``build(genome)``) holding copies of its sliced tensors."""
        self.check(genome)
        kmax = max(self.spec.kernels)
        model = build(genome)
        sd: dict[str, torch.Tensor] = {}
        c_in = genome.in_channels
        for i, (s, blocks) in enumerate(zip(genome.stages, self.stages, strict=True)):
            off = (kmax - s.kernel) // 2
            for j in range(s.depth):
                conv, bn, p = blocks[j]["conv"], blocks[j]["bn"], f"stages.{i}.blocks.{j}"
                sd[f"{p}.0.weight"] = conv.weight[:s.width, :c_in, off:off + s.kernel, off:off + s.kernel]
                for name in ("weight", "bias", "running_mean", "running_var"):
                    sd[f"{p}.1.{name}"] = getattr(bn, name)[:s.width]
                sd[f"{p}.1.num_batches_tracked"] = bn.num_batches_tracked
                c_in = s.width
        linears = [n for n, m in model.head.named_children() if isinstance(m, nn.Linear)]
        mine = ([self.hidden] if self.hidden is not None else []) + [self.fc]
        for name, lin in zip(linears, mine, strict=True):
            feats = getattr(model.head, name).in_features
            sd[f"head.{name}.weight"] = lin.weight[:, :feats]
            sd[f"head.{name}.bias"] = lin.bias
        model.load_state_dict({k: v.detach().clone() for k, v in sd.items()})
        model.to(next(self.parameters()).device)
        model.train(self.training)
        return model


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    """Recompute every BatchNorm's running statistics of ``model`` from ``batches`` (their exact
    average over the batches, momentum None), then leave it in eval mode. A subnet cut out of a
    supernet needs this: the shared running statistics mix every subnet that was trained."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    dev = next(model.parameters()).device
    for xb in batches:
        model(xb.to(dev))
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.eval()
    return model
