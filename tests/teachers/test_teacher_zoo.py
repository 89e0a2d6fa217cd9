from __future__ import annotations

import pytest
import torch

from evofusion.errors import TeacherError
from evofusion.teachers import TEACHERS, build_teacher, list_teachers


def test_registry_lists_zoo() -> None:
    assert {"small_cnn", "resnet18"} <= set(list_teachers())
    assert list_teachers() == TEACHERS.names()


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18"])
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_forward_backward_every_parameter(arch: str, channels: int, size: int) -> None:
    width = 0.25 if arch == "resnet18" else 1.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_teacher(arch, in_channels=channels, num_classes=10, input_size=size, width=width)
    x = torch.randn(3, channels, size, size, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_resnet18_full_width_forward() -> None:
    model = build_teacher("resnet18", in_channels=3, num_classes=10, input_size=32).eval()
    assert 11.0e6 < sum(p.numel() for p in model.parameters()) < 11.4e6
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_small_cnn_param_count() -> None:
    model = build_teacher("small_cnn", in_channels=1, num_classes=10, input_size=28)
    assert 130_000 <= sum(p.numel() for p in model.parameters()) <= 150_000


def test_width_scales_channels() -> None:
    small = build_teacher("small_cnn", 1, 10, 28, width=0.25)
    assert small.state_dict()["features.conv1.conv.weight"].shape[0] == 8
    assert small.state_dict()["classifier.weight"].shape == (10, 32)


def test_stable_names() -> None:
    keys = set(build_teacher("resnet18", 3, 10, 32, width=0.25).state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer2.0.downsample.0.weight", "layer4.1.conv2.weight",
            "fc.weight"} <= keys


def test_unknown_arch_and_bad_args() -> None:
    with pytest.raises(TeacherError, match="valid: .*small_cnn"):
        build_teacher("vgg99", 1, 10, 28)
    with pytest.raises(TeacherError, match="width"):
        build_teacher("small_cnn", 1, 10, 28, width=0.0)
