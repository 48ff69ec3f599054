"""Evaluation networks: ConvNet-3, ResNet-AP-10 and ResNet-18, all with instance norm.

Instance norm is ``nn.GroupNorm(C, C, affine=True)`` (one group per channel), as in the
DC / DSA / DM and IDC code, so that a network's output on an image never depends on the
other images of its batch.

Input sizes 28, 32, 64, 128 and 256 (any size from 28 up works); the choices per size are:

``convnet3`` (:class:`ConvNet`, as DC/DSA/DM ``networks.ConvNet``)
    depth 3, width 128, per block conv3x3 -> instance norm -> ReLU -> AvgPool2d(2), linear
    head on the flattened map. As in DC's code the first convolution of a *grayscale* network
    uses padding 3 (DC: ``padding=3 if channel == 1 and d == 0 else 1``), so 28x28
    Fashion-MNIST runs as 32x32: 28 -> 32 -> 16 -> 8 -> 4. Depth stays 3 at every size (DC
    and IDC, whose ``argument.py`` resets ConvNet depths above 4 to 3), so the head simply
    sees a bigger map: 4x4 at 32, 8x8 at 64, 16x16 at 128, 32x32 at 256. ``convnetN``
    builds depth N (e.g. ``convnet5``, the MTT choice for 128 px) for cross-checks.

``resnet_ap10`` (:class:`ResNetAP`, as IDC ``models/resnet_ap.py``, depth 10)
    basic blocks [1, 1, 1, 1], widths 64-128-256-512; every stride-2 step is a stride-1
    convolution followed by 2x2 average pooling, in the block and in its 1x1 shortcut. The
    stem follows IDC by size: <= 64 px a 3x3 conv (no pooling); 65-128 px a 3x3 conv then
    2x2 average pooling; > 128 px a 7x7 stride-1 conv then 4x4 average pooling. Global
    average pooling before the linear head.

``resnet18`` (:class:`ResNet`, as IDC ``models/resnet.py``, depth 18)
    basic blocks [2, 2, 2, 2] with strided convolutions. Stem by size, as IDC: <= 64 px a
    3x3 conv without max-pool; 65-128 px a 3x3 conv then max-pool(3, 2); > 128 px the
    ImageNet stem (7x7 stride-2 conv, max-pool(3, 2)).

Note that at 128 px both ResNets use IDC's "mid" stem (3x3 conv + one 2x downsampling), not
the full ImageNet stem, because that is what the reference protocol trains.
Both ResNets use IDC's initialisation (He-normal convolutions, norm weight 1 and bias 0).
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ConvNet", "ResNetAP", "ResNet", "build_model", "ARCHITECTURES"]

#: the names :func:`build_model` accepts (``convnetN`` for any depth N also works)
ARCHITECTURES = ("convnet3", "resnet_ap10", "resnet18")

_MIN_SIZE = 28


def _instance_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(channels, channels, affine=True)


def _stem_kind(im_size: int) -> str:
    """IDC's size classes: small (<= 64), mid (<= 128), large (> 128)."""
    if im_size <= 64:
        return "small"
    if im_size <= 128:
        return "mid"
    return "large"


def _he_init(model: nn.Module) -> None:
    """IDC's ResNet initialisation."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------
# ConvNet
# --------------------------------------------------------------------------------------
class ConvNet(nn.Module):
    """DC/DSA/DM ConvNet: ``depth`` x [conv3x3, instance norm, ReLU, avg-pool 2], linear head.

    Args:
        channels: input channels (1 or 3).
        num_classes: output classes.
        im_size: input height = width.
        width: channels of every convolution (128 in DC).
        depth: number of blocks (3 in DC).
    """

    def __init__(self, channels: int, num_classes: int, im_size: int, width: int = 128, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = im_size
        in_ch = channels
        for d in range(depth):
            pad = 3 if channels == 1 and d == 0 else 1
            layers += [nn.Conv2d(in_ch, width, kernel_size=3, padding=pad), _instance_norm(width),
                       nn.ReLU(inplace=True), nn.AvgPool2d(kernel_size=2, stride=2)]
            size = (size + 2 * pad - 2) // 2
            in_ch = width
        if size < 1:
            raise ValueError(f"ConvNet depth {depth} shrinks a {im_size}x{im_size} input to nothing")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


# --------------------------------------------------------------------------------------
# ResNet-AP (IDC)
# --------------------------------------------------------------------------------------
class _BasicBlockAP(nn.Module):
    """Basic block whose stride is a stride-1 conv followed by average pooling."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=False)
        self.bn1 = _instance_norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _instance_norm(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, bias=False),
                nn.AvgPool2d(kernel_size=stride, stride=stride),
                _instance_norm(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.stride != 1:
            out = F.avg_pool2d(out, kernel_size=self.stride, stride=self.stride)
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class _ResNetBase(nn.Module):
    """A stem, four stages of basic blocks (width doubling, stride 2 from the second stage),
    global average pooling and a linear head; the two ResNets differ in stem and block."""

    def __init__(self, stem: list[nn.Module], block: type[nn.Module], blocks: tuple[int, ...], width: int,
                 num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(*stem)
        stages = []
        in_planes = width
        for i, n in enumerate(blocks):
            planes = width * 2 ** i
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(n):
                stage.append(block(in_planes, planes, stride if j == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(in_planes, num_classes)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


class ResNetAP(_ResNetBase):
    """IDC's ResNet-AP (average-pool downsampling, instance norm); depth 10 = blocks [1,1,1,1].

    Args:
        channels: input channels.
        num_classes: output classes.
        im_size: input size; picks the stem (see the module docstring).
        blocks: basic blocks per stage.
        width: channels of the first stage (doubled at each later stage).
    """

    def __init__(self, channels: int, num_classes: int, im_size: int,
                 blocks: tuple[int, int, int, int] = (1, 1, 1, 1), width: int = 64) -> None:
        kind = _stem_kind(im_size)
        if kind == "large":
            stem: list[nn.Module] = [nn.Conv2d(channels, width, 7, padding=3, bias=False), _instance_norm(width),
                                     nn.ReLU(inplace=True), nn.AvgPool2d(4, 4)]
        else:
            stem = [nn.Conv2d(channels, width, 3, padding=1, bias=False), _instance_norm(width), nn.ReLU(inplace=True)]
            if kind == "mid":
                stem.append(nn.AvgPool2d(2, 2))
        super().__init__(stem, _BasicBlockAP, blocks, width, num_classes)


# --------------------------------------------------------------------------------------
# ResNet (IDC's torchvision-style ResNet with instance norm)
# --------------------------------------------------------------------------------------
class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _instance_norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _instance_norm(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            _instance_norm(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class ResNet(_ResNetBase):
    """ResNet with instance norm; ResNet-18 = blocks [2,2,2,2]. Stem by input size (module docstring)."""

    def __init__(self, channels: int, num_classes: int, im_size: int,
                 blocks: tuple[int, int, int, int] = (2, 2, 2, 2), width: int = 64) -> None:
        kind = _stem_kind(im_size)
        if kind == "large":
            stem: list[nn.Module] = [nn.Conv2d(channels, width, 7, stride=2, padding=3, bias=False),
                                     _instance_norm(width), nn.ReLU(inplace=True),
                                     nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]
        else:
            stem = [nn.Conv2d(channels, width, 3, padding=1, bias=False), _instance_norm(width), nn.ReLU(inplace=True)]
            if kind == "mid":
                stem.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        super().__init__(stem, _BasicBlock, blocks, width, num_classes)


# --------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------
def build_model(arch: str, num_classes: int, channels: int, im_size: int) -> nn.Module:
    """A freshly initialised evaluation network (uses the global torch RNG for its weights).

    Args:
        arch: ``"convnet3"``, ``"resnet_ap10"`` or ``"resnet18"`` (also ``"convnetN"``).
        num_classes: output classes.
        channels: input channels (1 for grayscale, 3 for RGB).
        im_size: input height = width, at least 28.

    Raises:
        ValueError: unknown architecture name, or invalid sizes.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if im_size < _MIN_SIZE:
        raise ValueError(f"im_size must be at least {_MIN_SIZE}, got {im_size}")
    key = arch.lower()
    m = re.fullmatch(r"convnet(\d+)", key)
    if m:
        if int(m.group(1)) < 1:
            raise ValueError(f"ConvNet depth must be at least 1, got {arch!r}")
        return ConvNet(channels, num_classes, im_size, width=128, depth=int(m.group(1)))
    if key == "resnet_ap10":
        return ResNetAP(channels, num_classes, im_size, blocks=(1, 1, 1, 1))
    if key == "resnet18":
        return ResNet(channels, num_classes, im_size, blocks=(2, 2, 2, 2))
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)} (or convnetN)")
