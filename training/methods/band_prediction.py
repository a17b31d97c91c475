"""Band prediction (paper 4, OWG): "which band is this single-band image?", with no positive pairs.

Every band of every cutout is a sample on its own (``single_bands`` views), labelled with its band; the
shared extractor (a ``<architecture>-bandwise`` encoder: the backbone, a 1x1 convolution + BatchNorm + ReLU
and global average pooling) feeds FC-512, ReLU and a C-way output trained with cross-entropy. The
extractor then embeds a source as its bands' features side by side, the 512 x C map paper 4's richness head
reads. The classifier travels to the bundle (``band_classifier.safetensors``) for the explorer's occlusion
maps (paper 4's Fig. 2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from explorer.core.encoder import band_classifier
from explorer.core.errors import InputError
from training.config import limited
from training.methods import Method, register


@dataclass
class BandPredictionConfig:
    hidden: int = limited(512, 1)
    dihedral: bool = False   # random turns and mirrors of each one-band image (ours; paper 4 states none)


@register("band_prediction")
class BandPrediction(Method):
    Config = BandPredictionConfig
    views = "single_bands"
    exported_head = "classifier"

    def __init__(self, encoder, feature_dim: int, config: BandPredictionConfig = BandPredictionConfig()):
        super().__init__(encoder, feature_dim, config)
        if not hasattr(encoder, "band_features"):
            raise InputError("band_prediction needs a band-wise encoder: set encoder.architecture to e.g. "
                             "resnet18-bandwise (one shared extractor for every band)")
        self.classifier = band_classifier(encoder.band_dim, encoder.bands, config.hidden)

    def logits(self, single_band: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] one-band images -> [N, C] band logits."""
        return self.classifier(self.encoder.band_features(single_band))

    def loss(self, batch: dict) -> torch.Tensor:
        return F.cross_entropy(self.logits(batch["views"][0]).float(), batch["band_labels"])
