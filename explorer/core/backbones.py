"""Backbones: the one list of encoder architectures, each with any number of input channels.

Every backbone is an ``nn.Module`` whose ``forward`` is :meth:`pooled` and which also offers:

- ``pooled(x)``: [B, C, H, W] -> [B, D] embeddings (global average pooling of the last stage);
- ``feature_maps(x)``: every stage's output, for detectors and band-wise heads;
- ``stages()``: the stages in forward order (stem first), for freezing and layer-wise lr decay;
- ``dim``: D.

ResNets (paper 1: resnet18; paper 5: resnet101) are torchvision's own modules with the first
convolution widened to ``in_channels`` and the classifier dropped, so their weight names are
torchvision's and every checkpoint written before this module existed still loads. VGG16 (papers 2
and 3) is torchvision's convolutional part without its 4096-unit dense layers (``vgg16_bn`` adds
BatchNorm after every convolution, which self-supervised training needs to be stable).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.vgg import cfgs, make_layers

RESNETS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
           "resnet50": (Bottleneck, [3, 4, 6, 3]), "resnet101": (Bottleneck, [3, 4, 23, 3])}
VGGS = {"vgg16": False, "vgg16_bn": True}
ARCHITECTURES = (*RESNETS, *VGGS)


class Staged:
    """``feature_maps`` from ``stages``: shared by every backbone."""

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in self.stages().values():
            x = stage(x)
            maps.append(x)
        return maps


class ResNetBackbone(Staged, ResNet):
    def __init__(self, architecture: str, in_channels: int):
        block, layers = RESNETS[architecture]
        super().__init__(block, layers)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.dim = self.fc.in_features
        self.fc = nn.Identity()

    def stages(self) -> "OrderedDict[str, nn.Module]":
        stem = nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)
        return OrderedDict([("stem", stem), *((f"layer{i}", getattr(self, f"layer{i}")) for i in range(1, 5))])

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


class VGGBackbone(Staged, nn.Module):
    def __init__(self, architecture: str, in_channels: int):
        super().__init__()
        batch_norm = VGGS[architecture]
        layers = make_layers(cfgs["D"], batch_norm=batch_norm)
        layers[0] = nn.Conv2d(in_channels, 64, kernel_size=3, padding=1)
        self.features = layers
        self.dim = 512
        for m in self.modules():  # torchvision's VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self) -> "OrderedDict[str, nn.Module]":
        """Five convolutional blocks, each ending in its max-pool."""
        blocks, current = OrderedDict(), []
        for layer in self.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                blocks[f"block{len(blocks) + 1}"] = nn.Sequential(*current)
                current = []
        return blocks

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(x)


def build_backbone(architecture: str = "resnet18", in_channels: int = 1) -> nn.Module:
    """A randomly initialised backbone (see the module doc)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if architecture in RESNETS:
        return ResNetBackbone(architecture, in_channels)
    return VGGBackbone(architecture, in_channels)

