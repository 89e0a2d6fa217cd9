"""build(genome): output shapes, structure, and a timm-style backward check for every activation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evofusion.genome.build import Student, build
from evofusion.genome.chromosome import ChromosomeGenome
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome
from evofusion.layers.blocks import ACTIVATIONS, ConvStage

GENOMES = {
    "one-stage-gap": StudentGenome(stages=(StageGene(4),), input_size=8),
    "flatten": StudentGenome(stages=(StageGene(8), StageGene(16)), head=HeadGene(kind="flatten"),
                             input_size=12, num_classes=3),
    "flatten-hidden-dropout": StudentGenome(stages=(StageGene(8, pool="avg"),),
                                            head=HeadGene(kind="flatten", hidden=16, dropout=0.5),
                                            in_channels=3, input_size=10, num_classes=4),
    "gap-hidden": StudentGenome(stages=(StageGene(8), StageGene(8, depth=2)), head=HeadGene(hidden=32)),
    "skip-width-change": StudentGenome(stages=(StageGene(8, skip=True), StageGene(16, depth=2, skip=True)),
                                       in_channels=2, input_size=16, num_classes=5),
    "skip-same-width": StudentGenome(stages=(StageGene(8), StageGene(8, depth=3, skip=True))),
    "pool-none": StudentGenome(stages=(StageGene(4, pool="none", kernel=5), StageGene(6, pool="none")),
                               head=HeadGene(kind="flatten"), input_size=7),
    "pools-past-1x1": StudentGenome(stages=tuple(StageGene(4, kernel=1) for _ in range(5)),
                                    head=HeadGene(kind="flatten"), input_size=5),
    "odd-size": StudentGenome(stages=(StageGene(4, kernel=7), StageGene(4, kernel=9, pool="avg")),
                              head=HeadGene(kind="flatten"), input_size=11, num_classes=2),
}


@pytest.mark.parametrize("name", list(GENOMES))
def test_output_shape(name: str) -> None:
    g = GENOMES[name]
    model = build(g)
    assert isinstance(model, Student) and model.genome == g
    x = torch.randn(3, g.in_channels, g.input_size, g.input_size)
    for mode in (True, False):
        model.train(mode)
        out = model(x)
        assert out.shape == (3, g.num_classes)
        assert torch.isfinite(out).all()


def test_structure_follows_genome() -> None:
    model = build(GENOMES["skip-width-change"])
    assert len(model.stages) == 2
    s0, s1 = model.stages
    assert isinstance(s0, ConvStage) and isinstance(s1, ConvStage)
    assert len(s0.blocks) == 1 and len(s1.blocks) == 2
    assert s0.blocks[0][0].weight.shape == (8, 2, 3, 3)
    assert s1.blocks[0][0].weight.shape == (16, 8, 3, 3)
    assert s1.blocks[1][0].weight.shape == (16, 16, 3, 3)
    assert isinstance(s0.shortcut, nn.Sequential)  # 2 -> 8 channels needs a projection
    assert s0.shortcut[0].weight.shape == (8, 2, 1, 1)
    assert isinstance(s1.shortcut, nn.Sequential) and s1.shortcut[0].weight.shape == (16, 8, 1, 1)
    assert isinstance(build(GENOMES["skip-same-width"]).stages[1].shortcut, nn.Identity)
    assert build(GENOMES["one-stage-gap"]).stages[0].shortcut is None


def test_head_layers() -> None:
    linears = [m for m in build(GENOMES["flatten-hidden-dropout"]).head if isinstance(m, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(8 * 5 * 5, 16), (16, 4)]
    head = build(GENOMES["flatten-hidden-dropout"]).head
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in head)
    linears = [m for m in build(GENOMES["gap-hidden"]).head if isinstance(m, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(8, 32), (32, 10)]
    # five 2x2 pools on a 5x5 map: 5 -> 2 -> 1, then skipped
    lin = [m for m in build(GENOMES["pools-past-1x1"]).head if isinstance(m, nn.Linear)]
    assert lin[0].in_features == 4
    assert sum(isinstance(s.pool, nn.MaxPool2d) for s in build(GENOMES["pools-past-1x1"]).stages) == 2


def test_pool_none_keeps_spatial_size() -> None:
    model = build(GENOMES["pool-none"])
    assert all(isinstance(s.pool, nn.Identity) for s in model.stages)
    assert model.stages(torch.randn(2, 1, 7, 7)).shape == (2, 6, 7, 7)


def test_build_accepts_chromosome() -> None:
    c = ChromosomeGenome.from_string("0110" "1001" "0100" "1010", input_size=16)
    model = build(c)
    assert model.genome == c.to_student()
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("head", ["gap", "flatten"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_model_backward(activation: str, head: str) -> None:
    g = StudentGenome(stages=(StageGene(4, activation=activation, skip=True),
                              StageGene(6, depth=2, kernel=5, activation=activation, pool="avg", skip=True)),
                      head=HeadGene(kind=head, hidden=8, dropout=0.1), in_channels=2, input_size=8,
                      num_classes=3)
    torch.manual_seed(0)
    model = build(g)
    x = torch.randn(4, 2, 8, 8)
    out = model(x)
    assert out.shape == (4, 3)
    model.zero_grad()
    y = torch.tensor([0, 1, 2, 0])
    nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
    assert len(list(model.parameters())) > 0
