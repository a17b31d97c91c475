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

``<architecture>-bandwise`` (paper 4's shared extractor) runs one single-band backbone on every band
separately, each followed by a 1x1 convolution + BatchNorm + ReLU and global average pooling; the
embedding is the bands' features side by side, [B, C * D] in band order (``band_features`` gives one
band's [B, D]).
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
BANDWISE = "-bandwise"
IMAGE_ARCHITECTURES = (*RESNETS, *VGGS)          # one network over all bands (detectors use these)
ARCHITECTURES = (*IMAGE_ARCHITECTURES, *(f"{a}{BANDWISE}" for a in IMAGE_ARCHITECTURES))


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


class BandwiseBackbone(nn.Module):
    """Every band through one shared single-band extractor (paper 4): [B, C, H, W] -> [B, C * D]."""

    def __init__(self, architecture: str, in_channels: int):
        super().__init__()
        self.trunk = build_backbone(architecture, 1)
        self.band_dim = self.trunk.dim
        self.neck = nn.Sequential(nn.Conv2d(self.band_dim, self.band_dim, 1, bias=False),
                                  nn.BatchNorm2d(self.band_dim), nn.ReLU(inplace=True))
        self.bands = in_channels
        self.dim = self.band_dim * in_channels

    def stages(self) -> "OrderedDict[str, nn.Module]":
        return OrderedDict([*self.trunk.stages().items(), ("neck", self.neck)])

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output for each band on its own: [B * C, ...] in band order within each source."""
        maps = []
        x = x.reshape(-1, 1, *x.shape[-2:])
        for stage in self.stages().values():
            x = stage(x)
            maps.append(x)
        return maps

    def band_features(self, single_band: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] single-band images -> [N, D]."""
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.feature_maps(single_band)[-1], 1), 1)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.band_features(x.reshape(-1, 1, *x.shape[-2:])).reshape(len(x), self.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(x)


def build_backbone(architecture: str = "resnet18", in_channels: int = 1) -> nn.Module:
    """A randomly initialised backbone (see the module doc)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if architecture.endswith(BANDWISE):
        return BandwiseBackbone(architecture.removesuffix(BANDWISE), in_channels)
    if architecture in RESNETS:
        return ResNetBackbone(architecture, in_channels)
    return VGGBackbone(architecture, in_channels)

