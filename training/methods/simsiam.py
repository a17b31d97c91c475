"""SimSiam (Chen & He 2021), paper 5's baseline.

Two views pass through one encoder and projector; a predictor maps each projection to the other's,
and the loss is ½D(p1, z2) + ½D(p2, z1) with D the negative cosine and a stop-gradient on z. No
target network and no negatives: the stop-gradient alone prevents collapse. Paper 5 trains it with
SGD at lr 0.03 × batch/256 (``optim.base_lr: 0.03`` in the recipe).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from training.config import limited
from training.methods import Method, register
from training.methods.parts import mlp_head, negative_cosine, projection_mlp


@dataclass
class SimSiamConfig:
    projection_hidden: int = limited(2048, 1)
    projection_dim: int = limited(2048, 1)
    prediction_hidden: int = limited(512, 1)    # the bottleneck of the predictor


@register("simsiam")
class SimSiam(Method):
    Config = SimSiamConfig
    views = "two_augmentations"

    def __init__(self, encoder, feature_dim: int, config: SimSiamConfig = SimSiamConfig()):
        super().__init__(encoder, feature_dim, config)
        self.projector = projection_mlp(feature_dim, config.projection_hidden, config.projection_dim)
        self.predictor = mlp_head(config.projection_dim, config.prediction_hidden, config.projection_dim)

    def loss(self, batch: dict) -> torch.Tensor:
        view1, view2 = batch["views"]
        z = self.projector(self.encoder(torch.cat([view1, view2])))
        p = self.predictor(z)
        z1, z2 = z.chunk(2)
        p1, p2 = p.chunk(2)
        return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
