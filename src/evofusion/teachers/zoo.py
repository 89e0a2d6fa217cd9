"""The teacher zoo: architectures a teacher can be trained from or rebuilt for loading weights.

Every factory has the signature ``(in_channels, num_classes, input_size, width=1.0) -> nn.Module``
and returns an un-trained model with logits of shape ``(N, num_classes)`` for inputs of shape
``(N, in_channels, input_size, input_size)``. Submodule names are part of the contract: saved teacher
weights are loaded by name, so renaming a submodule breaks every saved teacher of that architecture.

``resnet18`` follows He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), with the
usual small-image stem (3x3 conv, stride 1, no max-pool) and torchvision's parameter names.
``simple_cnn`` is the KD + GA pruning seed's SimpleCNN; ``googlenet`` follows Szegedy et al.,
"Going Deeper with Convolutions" (CVPR 2015) with Inception blocks, for 28x28 / 32x32 inputs.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
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
    if ":" in arch:  # a user's network by import path ("pkg.mod:factory"), e.g. a pruning genome's arch
        return build_user_module(arch, width)
    if arch not in TEACHERS:
        raise TeacherError(f"unknown teacher architecture '{arch}'; valid: {', '.join(list_teachers())} "
                           "(or a user network by import path, pkg.mod:factory)")
    _check_args(in_channels, num_classes, input_size, width)
    return TEACHERS.get(arch)(in_channels=in_channels, num_classes=num_classes, input_size=input_size, width=width)


def build_user_module(path: str, width: float = 1.0) -> nn.Module:
    """``factory()`` at ``path`` ("pkg.mod:factory", an ``nn.Module`` class or a function returning
    one): a user's architecture, which fixes its own shape (``width`` must stay 1)."""
    from evofusion.registry import import_object

    if width != 1.0:
        raise TeacherError(f"teacher width: a user network ({path}) has its own width; got {width}")
    factory = import_object(path, "teacher.module")
    try:
        model = factory() if callable(factory) else factory
    except Exception as e:  # the user's factory failed
        raise TeacherError(f"teacher.module: {path}() raised {type(e).__name__}: {e}") from None
    if not isinstance(model, nn.Module):
        raise TeacherError(f"teacher.module: {path} gave {type(model).__name__}, not an nn.Module")
    return model


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


class SimpleCNN(nn.Module):
    """The KD + GA pruning seed's SimpleCNN: two 5x5 conv-ReLU-max-pool layers (32, 64 filters times
    width) and a two-layer classifier (128 hidden neurons times width); filters and hidden neurons are
    both prunable. About 0.4M parameters at width 1 on 1-channel 28x28 inputs."""

    def __init__(self, in_channels: int, num_classes: int, input_size: int, width: float = 1.0):
        super().__init__()
        c1, c2, hidden = (_scaled(c, width) for c in (32, 64, 128))
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, c1, 5, padding=2)),
            ("relu1", nn.ReLU(inplace=True)),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(c1, c2, 5, padding=2)),
            ("relu2", nn.ReLU(inplace=True)),
            ("pool2", nn.MaxPool2d(2)),
        ]))
        side = input_size // 4
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(c2 * side * side, hidden)),
            ("relu3", nn.ReLU(inplace=True)),
            ("fc2", nn.Linear(hidden, num_classes)),
        ]))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class Inception(nn.Module):
    """GoogLeNet Inception block (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015): four
    branches (1x1; 1x1-3x3; 1x1-3x3-3x3 standing in for 5x5; 3x3 max-pool-1x1) concatenated on channels."""

    def __init__(self, c_in: int, n1: int, n3r: int, n3: int, n5r: int, n5: int, pool_proj: int):
        super().__init__()
        self.b1 = ConvBNReLU1(c_in, n1, 1)
        self.b2 = nn.Sequential(ConvBNReLU1(c_in, n3r, 1), ConvBNReLU1(n3r, n3, 3))
        self.b3 = nn.Sequential(ConvBNReLU1(c_in, n5r, 1), ConvBNReLU1(n5r, n5, 3), ConvBNReLU1(n5, n5, 3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU1(c_in, pool_proj, 1))
        self.out_channels = n1 + n3 + n5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class ConvBNReLU1(nn.Sequential):
    """k x k convolution (no bias, 'same' padding), batch norm, ReLU; parameters named ``conv``, ``bn``."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__(OrderedDict([
            ("conv", nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)),
            ("bn", nn.BatchNorm2d(c_out)),
            ("act", nn.ReLU(inplace=True)),
        ]))


# (n1, n3r, n3, n5r, n5, pool_proj) of the nine Inception blocks (GoogLeNet table 1)
_INCEPTION = {
    "a3": (64, 96, 128, 16, 32, 32), "b3": (128, 128, 192, 32, 96, 64),
    "a4": (192, 96, 208, 16, 48, 64), "b4": (160, 112, 224, 24, 64, 64), "c4": (128, 128, 256, 24, 64, 64),
    "d4": (112, 144, 288, 32, 64, 64), "e4": (256, 160, 320, 32, 128, 128),
    "a5": (256, 160, 320, 32, 128, 128), "b5": (384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """GoogLeNet for small images: 3x3 stem (192 x width channels, stride 1), Inception 3a-3b, max-pool,
    4a-4e, max-pool, 5a-5b, global average pool, linear ``fc``; every branch width times ``width``.
    No auxiliary classifiers. About 6.2M parameters at width 1 (0.4M at width 0.25)."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0):
        super().__init__()
        self.stem = ConvBNReLU1(in_channels, _scaled(192, width), 3)
        c = _scaled(192, width)
        blocks: list[tuple[str, nn.Module]] = []
        for name, spec in _INCEPTION.items():
            if name in ("a4", "a5"):
                blocks.append((f"pool{name[1]}", nn.MaxPool2d(3, stride=2, padding=1)))
            block = Inception(c, *(_scaled(v, width) for v in spec))
            blocks.append((name, block))
            c = block.out_channels
        self.blocks = nn.Sequential(OrderedDict(blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.blocks(self.stem(x))).flatten(1))


@TEACHERS.register("simple_cnn")
def simple_cnn(in_channels: int, num_classes: int, input_size: int, width: float = 1.0) -> nn.Module:
    """The pruning seed's SimpleCNN (see :class:`SimpleCNN`); ``input_size`` >= 4."""
    return SimpleCNN(in_channels, num_classes, input_size, width)


@TEACHERS.register("googlenet")
def googlenet(in_channels: int, num_classes: int, input_size: int, width: float = 1.0) -> nn.Module:
    """GoogLeNet with Inception blocks for 28x28 / 32x32 inputs (see :class:`GoogLeNet`)."""
    return GoogLeNet(in_channels, num_classes, width)
