"""The genome fields growth added (StageGene.blend, StageGene.skip_gate) and the blocks behind them."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from evofusion.errors import GenomeError
from evofusion.genome.build import build
from evofusion.genome.space import SearchSpace
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome
from evofusion.layers.blocks import BlendActivation, ConvStage

G = StudentGenome(stages=(StageGene(8, depth=2, kernel=5, activation="gelu", skip=True), StageGene(16, pool="avg")),
                  head=HeadGene("gap", hidden=32, dropout=0.1))


def test_existing_genomes_keep_their_dict_and_hash() -> None:
    # the dict and hash a genome had before the growth fields existed
    old = {"stages": [{"width": 8, "depth": 2, "kernel": 5, "activation": "gelu", "pool": "max", "skip": True},
                      {"width": 16, "depth": 1, "kernel": 3, "activation": "relu", "pool": "avg", "skip": False}],
           "head": {"kind": "gap", "hidden": 32, "dropout": 0.1}, "in_channels": 1, "input_size": 28,
           "num_classes": 10, "kind": "student"}
    assert G.to_dict() == old
    text = json.dumps(old, sort_keys=True, separators=(",", ":"))
    assert G.hash == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_growth_fields_round_trip_and_change_the_hash() -> None:
    g = G.with_stage(0, blend="silu", skip_gate=True)
    d = g.to_dict()
    assert d["stages"][0]["blend"] == "silu" and d["stages"][0]["skip_gate"] is True
    assert "blend" not in d["stages"][1] and "skip_gate" not in d["stages"][1]
    assert StudentGenome.from_json(g.to_json()) == g
    assert g.hash != G.hash


def test_invalid_growth_fields_name_the_field() -> None:
    with pytest.raises(GenomeError, match=r"stages\[0\]\.blend"):
        G.with_stage(0, blend="swish2")
    with pytest.raises(GenomeError, match=r"stages\[1\]\.skip_gate"):
        G.with_stage(1, skip_gate=True)  # stage 1 has no skip


def test_space_contains_checks_the_blend() -> None:
    space = SearchSpace(widths=(8, 16), activations=("relu", "gelu", "silu"), head_hidden=(32,), max_depth=2)
    assert space.contains(G.with_stage(0, blend="silu"))
    assert not space.contains(G.with_stage(0, blend="tanh"))


def test_blend_starts_at_the_old_activation_and_learns() -> None:
    act = BlendActivation("relu", "gelu")
    x = torch.randn(64)
    torch.testing.assert_close(act(x), torch.relu(x), atol=0, rtol=0)
    act(x).sum().backward()
    assert act.mix.grad is not None and float(act.mix.grad) != 0.0
    with torch.no_grad():
        act.mix.fill_(1.0)
    torch.testing.assert_close(act(x), torch.nn.functional.gelu(x))


def test_gated_skip_starts_closed_and_every_parameter_gets_a_gradient() -> None:
    st = ConvStage(4, 8, 2, 3, "relu", "none", skip=True, blend="silu", skip_gate=True)
    plain = ConvStage(4, 8, 2, 3, "relu", "none", skip=False, blend="silu")
    plain.blocks.load_state_dict(st.blocks.state_dict())
    x = torch.randn(2, 4, 6, 6)
    st.eval(), plain.eval()
    torch.testing.assert_close(st(x), plain(x))  # gate 0: the skip adds nothing yet
    st.train()
    st(x).pow(2).sum().backward()
    for name, p in st.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert float(st.gate.grad.abs()) > 0


def test_build_uses_the_fields() -> None:
    m = build(G.with_stage(0, blend="silu", skip_gate=True))
    assert isinstance(m.stages[0].blocks[0][2], BlendActivation)
    assert m.stages[0].gate is not None and m.stages[1].gate is None
