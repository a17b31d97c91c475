"""BYOL (Grill et al. 2020), as paper 1 uses it.

An online network (encoder -> projector -> predictor) learns to predict an EMA target network's
projection of another view of the same image; the loss is the symmetrised normalised MSE, and the
target's momentum rises from ``base_momentum`` to 1 along a cosine.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from training.config import limited
from training.methods import Method, register
from training.methods.parts import cosine_momentum, mlp_head, momentum_update, normalised_mse


@dataclass
class BYOLConfig:
    projection_hidden: int = limited(512, 1)
    projection_dim: int = limited(256, 1)         # paper 1's public code: 512 -> 256
    prediction_hidden: int = limited(512, 1)
    base_momentum: float = limited(0.996, 0.0, 1.0)


@register("byol")
class BYOL(Method):
    Config = BYOLConfig
    views = "two_augmentations"

    def __init__(self, encoder, feature_dim: int, config: BYOLConfig = BYOLConfig()):
        super().__init__(encoder, feature_dim, config)
        self.projector = mlp_head(feature_dim, config.projection_hidden, config.projection_dim)
        self.predictor = mlp_head(config.projection_dim, config.prediction_hidden, config.projection_dim)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def loss(self, batch: dict) -> torch.Tensor:
        view1, view2 = batch["views"]
        views = torch.cat([view1, view2])  # one pass per network keeps BatchNorm statistics shared
        online = self.predictor(self.projector(self.encoder(views)))
        with torch.no_grad():
            target = self.target_projector(self.target_encoder(views))
        p1, p2 = online.chunk(2)
        z1, z2 = target.chunk(2)
        return normalised_mse(p1, z2) + normalised_mse(p2, z1)

    def on_step_end(self, step: int, total_steps: int) -> None:
        self.update_target(cosine_momentum(step, total_steps, self.config.base_momentum))

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        momentum_update(self.encoder, self.target_encoder, momentum)
        momentum_update(self.projector, self.target_projector, momentum)
