"""ConvBlock / ConvStage: forward shapes, residual path, and every parameter gets a finite gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evofusion.layers.blocks import ACTIVATIONS, POOLS, ConvBlock, ConvStage, make_activation


def _backward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    module.train()
    x = x.clone().requires_grad_(True)
    out = module(x)
    assert torch.isfinite(out).all()
    # a fixed random projection, not a sum: after BatchNorm a plain sum has zero gradient
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
    return out


def test_tables() -> None:
    assert POOLS == ("max", "avg", "none")
    assert set(ACTIVATIONS) >= {"relu", "gelu", "silu", "hardswish", "elu", "leaky_relu"}
    for name, cls in ACTIVATIONS.items():
        assert isinstance(make_activation(name), cls)
    with pytest.raises(KeyError):
        make_activation("swish")


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_conv_block_forward_backward(activation: str, kernel: int) -> None:
    torch.manual_seed(0)
    block = ConvBlock(3, 5, kernel, activation)
    conv, bn, act = block
    assert isinstance(conv, nn.Conv2d) and conv.bias is None and conv.padding == (kernel // 2,) * 2
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, ACTIVATIONS[activation])
    out = _backward(block, torch.randn(4, 3, 6, 6))
    assert out.shape == (4, 5, 6, 6)


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize(("c_in", "width", "skip"), [(3, 3, True), (3, 6, True), (3, 6, False)])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_conv_stage_forward_backward(activation: str, c_in: int, width: int, skip: bool, pool: str) -> None:
    torch.manual_seed(0)
    stage = ConvStage(c_in, width, 2, 3, activation, pool, skip)
    out = _backward(stage, torch.randn(4, c_in, 8, 8))
    side = 8 if pool == "none" else 4
    assert out.shape == (4, width, side, side)


def test_residual_adds_the_input() -> None:
    torch.manual_seed(0)
    with_skip = ConvStage(4, 4, 1, 3, "relu", "none", True).eval()
    without = ConvStage(4, 4, 1, 3, "relu", "none", False).eval()
    without.load_state_dict(with_skip.state_dict())
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(with_skip(x), without(x) + x)


def test_projection_shortcut_when_widths_differ() -> None:
    torch.manual_seed(0)
    stage = ConvStage(2, 6, 1, 3, "relu", "avg", True).eval()
    x = torch.randn(2, 2, 6, 6)
    expected = nn.functional.avg_pool2d(stage.blocks(x) + stage.shortcut(x), 2)
    torch.testing.assert_close(stage(x), expected)
    assert stage.shortcut[0].weight.shape == (6, 2, 1, 1)
