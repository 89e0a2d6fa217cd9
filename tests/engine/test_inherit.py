"""inherit_weights(child, parent_state): whole, partial (leading channels, centred kernel) and fresh."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from evofusion.engine.inherit import inherit_weights
from evofusion.genome.build import build
from evofusion.genome.spec import HeadGene, StageGene, StudentGenome

PARENT = StudentGenome(stages=(StageGene(8), StageGene(16, skip=True)), head=HeadGene(hidden=12),
                       input_size=12, num_classes=5)
CONV0 = "stages.0.blocks.0.0.weight"
BN0 = "stages.0.blocks.0.1"
CONV1 = "stages.1.blocks.0.0.weight"


def _trained_like(genome: StudentGenome, seed: int) -> nn.Module:
    """A built model whose every float tensor (BN statistics included) is random, as after training."""
    torch.manual_seed(seed)
    model = build(genome)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if "running_var" in name else torch.randn_like(t))
            else:
                t.fill_(7)
    return model.eval()


def _child(genome: StudentGenome, seed: int = 100) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    child = build(genome)
    return child, {k: v.clone() for k, v in child.state_dict().items()}


def _inherit(child: nn.Module, parent: nn.Module) -> dict[str, int]:
    parent_state = {k: v.clone() for k, v in parent.state_dict().items()}
    counts = inherit_weights(child, parent_state)
    for k, v in parent.state_dict().items():  # the parent's tensors are read, never written
        assert torch.equal(parent_state[k], v)
    assert sum(counts.values()) == len(child.state_dict())
    return counts


def test_identical_architecture_copies_everything_and_preserves_function() -> None:
    parent = _trained_like(PARENT, 0)
    child, _ = _child(PARENT)
    counts = _inherit(child, parent)
    assert counts == {"copied": len(parent.state_dict()), "partial": 0, "fresh": 0}
    for k, v in parent.state_dict().items():
        assert torch.equal(child.state_dict()[k], v), k
    child.eval()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(4, 1, 12, 12, generator=g)
        torch.testing.assert_close(child(x), parent(x))


def test_weights_from_a_safetensors_file(tmp_path) -> None:
    parent = _trained_like(PARENT, 1)
    save_file({k: v.contiguous() for k, v in parent.state_dict().items()}, tmp_path / "w.safetensors")
    child, _ = _child(PARENT)
    assert inherit_weights(child, load_file(tmp_path / "w.safetensors"))["copied"] == len(parent.state_dict())
    child.eval()
    x = torch.randn(3, 1, 12, 12)
    torch.testing.assert_close(child(x), parent(x))


@pytest.mark.parametrize("new_width", [12, 4])
def test_widened_or_narrowed_stage_copies_leading_channels(new_width: int) -> None:
    parent = _trained_like(PARENT, 2)
    child, fresh = _child(PARENT.with_stage(0, width=new_width))
    counts = _inherit(child, parent)
    # stage 0 conv + BN weight, bias, running mean, running var; stage 1 conv and its 1x1 shortcut
    # projection (input channels)
    assert counts == {"copied": len(fresh) - 7, "partial": 7, "fresh": 0}
    p, c = parent.state_dict(), child.state_dict()
    n = min(8, new_width)
    torch.testing.assert_close(c[CONV0][:n], p[CONV0][:n], rtol=0, atol=0)
    torch.testing.assert_close(c[CONV0][n:], fresh[CONV0][n:], rtol=0, atol=0)
    for part in ("weight", "bias", "running_mean", "running_var"):
        torch.testing.assert_close(c[f"{BN0}.{part}"][:n], p[f"{BN0}.{part}"][:n], rtol=0, atol=0)
        torch.testing.assert_close(c[f"{BN0}.{part}"][n:], fresh[f"{BN0}.{part}"][n:], rtol=0, atol=0)
    torch.testing.assert_close(c[CONV1][:, :n], p[CONV1][:, :n], rtol=0, atol=0)
    torch.testing.assert_close(c[CONV1][:, n:], fresh[CONV1][:, n:], rtol=0, atol=0)
    assert torch.equal(c["stages.1.shortcut.0.weight"][:, :n], p["stages.1.shortcut.0.weight"][:, :n])
    # the first block's leading output channels compute what the parent's did
    x = torch.randn(2, 1, 12, 12)
    child.eval()
    torch.testing.assert_close(child.stages[0].blocks[0](x)[:, :n], parent.stages[0].blocks[0](x)[:, :n])


def test_wider_last_stage_partially_copies_the_head() -> None:
    parent = _trained_like(PARENT, 3)
    child, fresh = _child(PARENT.with_stage(1, width=24))
    _inherit(child, parent)
    p, c = parent.state_dict(), child.state_dict()
    lin = next(k for k in p if k.startswith("head.") and k.endswith("weight"))
    assert c[lin].shape == (12, 24) and p[lin].shape == (12, 16)
    assert torch.equal(c[lin][:, :16], p[lin][:, :16]) and torch.equal(c[lin][:, 16:], fresh[lin][:, 16:])


def test_kernel_3_to_5_copies_the_centred_window() -> None:
    parent = _trained_like(PARENT, 4)
    child, fresh = _child(PARENT.with_stage(0, kernel=5))
    counts = _inherit(child, parent)
    assert counts == {"copied": len(fresh) - 1, "partial": 1, "fresh": 0}
    w, p = child.state_dict()[CONV0], parent.state_dict()[CONV0]
    assert w.shape == (8, 1, 5, 5) and p.shape == (8, 1, 3, 3)
    torch.testing.assert_close(w[:, :, 1:4, 1:4], p, rtol=0, atol=0)
    border = torch.ones(5, 5, dtype=torch.bool)
    border[1:4, 1:4] = False
    torch.testing.assert_close(w[:, :, border], fresh[CONV0][:, :, border], rtol=0, atol=0)


def test_kernel_5_to_3_takes_the_centre_of_the_parent() -> None:
    parent = _trained_like(PARENT.with_stage(0, kernel=5), 5)
    child, _ = _child(PARENT)
    assert _inherit(child, parent)["partial"] == 1
    torch.testing.assert_close(child.state_dict()[CONV0], parent.state_dict()[CONV0][:, :, 1:4, 1:4],
                               rtol=0, atol=0)


def test_kernel_3_to_7_with_zero_border_preserves_function() -> None:
    parent = _trained_like(PARENT, 6)
    child, _ = _child(PARENT.with_stage(1, kernel=7))
    _inherit(child, parent)
    with torch.no_grad():
        w = child.stages[1].blocks[0][0].weight
        centre = w[:, :, 2:5, 2:5].clone()
        w.zero_()
        w[:, :, 2:5, 2:5] = centre
    child.eval()
    for seed in range(3):
        x = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(child(x), parent(x))


def test_added_stage_is_fresh() -> None:
    parent = _trained_like(PARENT, 7)
    child, fresh = _child(StudentGenome(stages=PARENT.stages + (StageGene(16),), head=PARENT.head,
                                        input_size=12, num_classes=5))
    counts = _inherit(child, parent)
    new = [k for k in fresh if k.startswith("stages.2.")]
    assert len(new) == 6  # conv weight; BN weight, bias, running mean, running var, num_batches_tracked
    assert counts == {"copied": len(fresh) - 6, "partial": 0, "fresh": 6}
    for k in new:
        assert torch.equal(child.state_dict()[k], fresh[k]), k


def test_added_block_and_shortcut_are_fresh() -> None:
    parent = _trained_like(PARENT, 8)
    child, fresh = _child(PARENT.with_stage(0, depth=2, skip=True))
    counts = _inherit(child, parent)
    new = [k for k in fresh if k.startswith(("stages.0.blocks.1.", "stages.0.shortcut."))]
    assert len(new) == 12
    assert counts == {"copied": len(fresh) - 12, "partial": 0, "fresh": 12}
    for k in new:
        assert torch.equal(child.state_dict()[k], fresh[k]), k


def test_removed_stage_copies_what_remains() -> None:
    parent = _trained_like(PARENT, 9)
    child, fresh = _child(StudentGenome(stages=PARENT.stages[:1], head=PARENT.head, input_size=12,
                                        num_classes=5))
    counts = _inherit(child, parent)
    # the head's first Linear sees 8 instead of 16 features: one partial copy
    assert counts == {"copied": len(fresh) - 1, "partial": 1, "fresh": 0}


def test_mismatched_rank_or_dtype_is_fresh() -> None:
    parent = _trained_like(PARENT, 10)
    state = {k: v.clone() for k, v in parent.state_dict().items()}
    state[CONV0] = state[CONV0].flatten(1)
    state[f"{BN0}.weight"] = state[f"{BN0}.weight"].double()
    child, fresh = _child(PARENT)
    counts = inherit_weights(child, state)
    assert counts == {"copied": len(fresh) - 2, "partial": 0, "fresh": 2}
    assert torch.equal(child.state_dict()[CONV0], fresh[CONV0])
    assert torch.equal(child.state_dict()[f"{BN0}.weight"], fresh[f"{BN0}.weight"])


def test_empty_parent_leaves_child_untouched() -> None:
    child, fresh = _child(PARENT)
    assert inherit_weights(child, {}) == {"copied": 0, "partial": 0, "fresh": len(fresh)}
    for k, v in child.state_dict().items():
        assert torch.equal(v, fresh[k])
