"""Magnitude regression (paper 2): the pretext is the survey's own catalogue.

Each cutout, as the encoder sees it at embedding time (no augmentation), goes through the backbone, a
1024-unit dense layer and an output per magnitude; the target is the catalogue's AUTO magnitudes divided by
35 ("slightly larger than the largest magnitude"). The loss is the mean squared error over the magnitudes a
source has (a band without a detection, NaN, is left out); paper 2 reports the MAE. The default targets
are S-PLUS's 12 bands (``mag_u`` ... ``mag_z``); a 5-band model regresses ``mag_u, mag_g, mag_r, mag_i,
mag_z`` (``magnitudes.columns`` in the recipe).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from explorer.core.surveys import SPLUS_BANDS
from training.config import limited
from training.methods import Method, register


@dataclass
class MagnitudesConfig:
    columns: tuple[str, ...] = field(default_factory=lambda: tuple(f"mag_{b}" for b in SPLUS_BANDS))
    scale: float = limited(35.0, 1.0)
    hidden: int = limited(1024, 1)


@register("magnitudes")
class MagnitudeRegression(Method):
    Config = MagnitudesConfig
    views = "single_image"

    def __init__(self, encoder, feature_dim: int, config: MagnitudesConfig = MagnitudesConfig()):
        super().__init__(encoder, feature_dim, config)
        self.head = nn.Sequential(nn.Linear(feature_dim, config.hidden), nn.ReLU(inplace=True),
                                  nn.Linear(config.hidden, len(config.columns)))

    @classmethod
    def target_columns(cls, config: MagnitudesConfig) -> tuple[str, ...]:
        return tuple(config.columns)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Magnitudes [N, len(columns)] (in magnitudes, not scaled)."""
        return self.head(self.encoder(images)) * self.config.scale

    def loss(self, batch: dict) -> torch.Tensor:
        images = batch["views"][0]
        target = torch.stack([batch["targets"][c] for c in self.config.columns], dim=1).float() / self.config.scale
        prediction = self.head(self.encoder(images)).float()
        known = torch.isfinite(target)
        return torch.mean((prediction[known] - target[known]) ** 2)
