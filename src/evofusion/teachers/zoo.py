"""The teacher zoo: architectures a teacher can be trained from or rebuilt for loading weights.

Every factory has the signature ``(in_channels, num_classes, input_size, width=1.0) -> nn.Module``
and returns an un-trained model with logits of shape ``(N, num_classes)`` for inputs of shape
``(N, in_channels, input_size, input_size)``. Submodule names are part of the contract: saved teacher
weights are loaded by name, so renaming a submodule breaks every saved teacher of that architecture.

``resnet18`` follows He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), with the
usual small-image stem (3x3 conv, stride 1, no max-pool) and torchvision's parameter names.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from evofusion.errors import TeacherError
from evofusion.registry import Registry

TEACHERS: Registry[nn.Module] = Registry("teachers")


def list_teachers() -> list[str]:
    """Names of every registered teacher architecture, sorted."""
    return TEACHERS.names()


def build_teacher(arch: str, in_channels: int, num_classes: int, input_size: int, width: float = 1.0) -> nn.Module:
    """Build the zoo architecture ``arch`` (randomly initialized from the global torch RNG).

    Raises:
        TeacherError: ``arch`` is not registered (the message lists the valid names) or an argument
            is out of range.
    """
    if arch not in TEACHERS:
        raise TeacherError(f"unknown teacher architecture '{arch}'; valid: {', '.join(list_teachers())}")
    _check_args(in_channels, num_classes, input_size, width)
    return TEACHERS.get(arch)(in_channels=in_channels, num_classes=num_classes, input_size=input_size, width=width)


def _check_args(in_channels: int, num_classes: int, input_size: int, width: float) -> None:
    checks = [
        ("in_channels", in_channels, in_channels >= 1, ">= 1"),
        ("num_classes", num_classes, num_classes >= 1, ">= 1"),
        ("input_size", input_size, input_size >= 4, ">= 4 pixels"),
        ("width", width, 0 < width <= 16, "(0, 16]"),
    ]
    for name, value, ok, allowed in checks:
        if not ok:
            raise TeacherError(f"teacher {name} must be {allowed}, got {value!r}")


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias), batch norm, ReLU; parameters named ``conv``, ``bn``."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(OrderedDict([
            ("conv", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)),
            ("bn", nn.BatchNorm2d(c_out)),
            ("act", nn.ReLU(inplace=True)),
        ]))


class SmallCNN(nn.Module):
    """Five ConvBNReLU layers (32-32-64-64-128 times width), max-pool after layers 2 and 4, global
    average pool, linear classifier. About 140k parameters at width 1 on 1-channel inputs."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (_scaled(c, width) for c in (32, 64, 128))
        self.features = nn.Sequential(OrderedDict([
            ("conv1", ConvBNReLU(in_channels, c1)),
            ("conv2", ConvBNReLU(c1, c1)),
            ("pool1", nn.MaxPool2d(2)),
            ("conv3", ConvBNReLU(c1, c2)),
            ("conv4", ConvBNReLU(c2, c2)),
            ("pool2", nn.MaxPool2d(2)),
            ("conv5", ConvBNReLU(c2, c3)),
        ]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c3, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN pairs plus an identity (or 1x1 conv-BN) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 for small images: 3x3 stride-1 stem, no max-pool, stages [2, 2, 2, 2] of widths
    64-128-256-512 times width, adaptive average pool, linear ``fc``."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0):
        super().__init__()
        widths = [_scaled(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        c_in = widths[0]
        for i, c in enumerate(widths):
            stride = 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", nn.Sequential(BasicBlock(c_in, c, stride), BasicBlock(c, c)))
            c_in = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@TEACHERS.register("small_cnn")
def small_cnn(in_channels: int, num_classes: int, input_size: int, width: float = 1.0) -> nn.Module:
    """The measured small teacher recipe (see :class:`SmallCNN`); ``input_size`` >= 4."""
    return SmallCNN(in_channels, num_classes, width)


@TEACHERS.register("resnet18")
def resnet18(in_channels: int, num_classes: int, input_size: int, width: float = 1.0) -> nn.Module:
    """ResNet-18 adapted to 28x28 / 32x32 inputs (see :class:`ResNet18`)."""
    return ResNet18(in_channels, num_classes, width)
