"""The elastic supernet: subnets are ordinary genomes, extraction is exact, BN recalibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evofusion.errors import ConfigError
from evofusion.genome import StudentGenome
from evofusion.objectives.metrics import count_params
from evofusion.supernet import Supernet, SupernetSpec, recalibrate_bn

SPECS = {
    "gap": SupernetSpec(max_widths=(8, 12, 16), widths=(2, 4, 6, 8, 12, 16), max_depth=3, kernels=(1, 3, 5)),
    "flatten_hidden": SupernetSpec(max_widths=(6, 10), widths=(3, 6, 10), min_depth=1, max_depth=2, kernels=(3, 5),
                                   activation="silu", pool="avg", head_kind="flatten", head_hidden=12,
                                   in_channels=3, input_size=12, num_classes=5),
}


def _net(spec: SupernetSpec, seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    net = Supernet(spec)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters, so slicing them matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_an_extracted_subnet_gives_the_supernets_logits(name: str, mode: str) -> None:
    spec = SPECS[name]
    net = _net(spec)
    rng = np.random.default_rng(1)
    x = torch.randn(6, spec.in_channels, spec.input_size, spec.input_size)
    for g in [spec.largest(), spec.smallest(), *(spec.sample(rng) for _ in range(12))]:
        net.train(mode == "train")
        with torch.no_grad():
            a = net(x, g)
        m = net.extract(g)
        m.train(mode == "train")
        with torch.no_grad():
            b = m(x)
        assert a.shape == (6, spec.num_classes)
        assert torch.allclose(a, b, atol=1e-5, rtol=0), (g, float((a - b).abs().max()))


def test_extraction_copies_and_slices_leading_channels_and_centre_kernels() -> None:
    spec = SPECS["gap"]
    net = _net(spec)
    g = spec.genome((4, 6, 8), (2, 1, 3), (3, 1, 5))
    m = net.extract(g)
    w_super = net.stages[0][1]["conv"].weight  # stage 0, block 1: 8 x 8 x 5 x 5
    w_sub = m.stages[0].blocks[1][0].weight  # 4 x 4 x 3 x 3
    assert torch.equal(w_sub, w_super[:4, :4, 1:4, 1:4].detach())
    assert torch.equal(m.stages[1].blocks[0][0].weight, net.stages[1][0]["conv"].weight[:6, :4, 2:3, 2:3].detach())
    assert m.stages[1].blocks[0][0].weight.data_ptr() != net.stages[1][0]["conv"].weight.data_ptr()  # a copy
    assert count_params(m) < count_params(net.extract(spec.largest()))


def test_every_subnet_is_a_genome_of_the_space_and_sampling_is_seeded() -> None:
    spec = SPECS["gap"]
    a = [spec.sample(np.random.default_rng(5)) for _ in range(3)]
    b = [spec.sample(np.random.default_rng(5)) for _ in range(3)]
    assert a == b and all(spec.contains(g) for g in a)
    small = SupernetSpec(max_widths=(4, 8), widths=(4, 8), max_depth=1, kernels=(3,))
    listed = list(small.subnets())
    assert len(listed) == 1 * 2 and all(small.contains(g) for g in listed)  # stage 0 takes only width 4


def test_non_subnets_are_named() -> None:
    spec = SPECS["gap"]
    g = spec.largest()
    assert "the supernet has 3" in spec.why_not(StudentGenome(stages=g.stages[:2]))
    assert "width 24" in spec.why_not(g.with_stage(0, width=24))
    assert "kernel 7" in spec.why_not(g.with_stage(1, kernel=7))
    assert "depth 4" in spec.why_not(g.with_stage(2, depth=4))
    assert "activation relu" in spec.why_not(g.with_stage(2, activation="gelu"))
    assert "skip" in spec.why_not(g.with_stage(2, skip=True))
    with pytest.raises(ConfigError, match="subnet.*width 24"):
        Supernet(spec)(torch.randn(1, 1, 28, 28), g.with_stage(0, width=24))


@pytest.mark.parametrize("bad, field", [
    ({"max_widths": ()}, "supernet.max_widths"),
    ({"max_widths": (2,), "widths": (4, 8)}, "supernet.max_widths"),
    ({"kernels": (4,)}, "supernet.kernels"),
    ({"min_depth": 3, "max_depth": 2}, "supernet.max_depth"),
    ({"activation": "swish"}, "supernet.activation"),
    ({"head_kind": "attention"}, "supernet.head_kind"),
])
def test_bad_specs_name_the_field(bad: dict, field: str) -> None:
    kw = {"max_widths": (8, 16), "widths": (4, 8, 16), **bad}
    with pytest.raises(ConfigError, match=field):
        SupernetSpec(**kw)


def test_recalibrate_bn_sets_the_exact_batch_statistics() -> None:
    spec = SPECS["gap"]
    net = _net(spec)
    g = spec.genome((4, 4, 4), (1, 1, 1), (3, 3, 3))
    m = net.extract(g)
    batches = [torch.randn(16, 1, 28, 28) * 2 + 1 for _ in range(3)]
    recalibrate_bn(m, batches)
    assert not m.training
    bn = m.stages[0].blocks[0][1]
    with torch.no_grad():
        z = torch.cat([m.stages[0].blocks[0][0](b) for b in batches])
    assert torch.allclose(bn.running_mean, z.mean((0, 2, 3)), atol=1e-5)
    # momentum None: the average of the per-batch (unbiased) variances, restored momentum afterwards
    per = torch.stack([m.stages[0].blocks[0][0](b).detach().var((0, 2, 3), unbiased=True) for b in batches])
    assert torch.allclose(bn.running_var, per.mean(0), atol=1e-4)
    assert bn.momentum == 0.1


def test_an_extracted_subnet_exports_to_onnx_with_parity(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from evofusion.export.onnx_export import export_onnx

    spec = SPECS["gap"]
    net = _net(spec)
    g = spec.sample(np.random.default_rng(3))
    m = recalibrate_bn(net.extract(g), [torch.randn(8, 1, 28, 28)])
    info = export_onnx(m, (1, 28, 28), tmp_path / "sub.onnx")
    assert info["max_abs_error"] <= info["atol"]
