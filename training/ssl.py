"""Self-supervised methods, lightly-style: heads, losses and the method that joins them.

BYOL (Grill et al. 2020) as used by paper 1: an online network (encoder ->
projector -> predictor) learns to predict an EMA target network's projection of
another view of the same image; the loss is the symmetrised normalised MSE.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


# --- heads -----------------------------------------------------------------------------------
def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Linear: BYOL's projector and predictor."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, out_dim))


# --- losses ----------------------------------------------------------------------------------
def normalised_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), averaged over the batch; no gradient through the target."""
    p = F.normalize(prediction.float(), dim=1)
    z = F.normalize(target.detach().float(), dim=1)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


# --- schedules -------------------------------------------------------------------------------
def cosine_momentum(step: int, total_steps: int, base: float = 0.996) -> float:
    """BYOL's target momentum: base at step 0, rising along a cosine to 1 at the end."""
    progress = min(step / max(total_steps, 1), 1.0)
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


# --- the method ------------------------------------------------------------------------------
class BYOL(nn.Module):
    def __init__(self, encoder: nn.Module, feature_dim: int, projection_hidden: int = 512,
                 projection_dim: int = 256, prediction_hidden: int = 512):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp_head(feature_dim, projection_hidden, projection_dim)
        self.predictor = mlp_head(projection_dim, prediction_hidden, projection_dim)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """The symmetrised BYOL loss for two batches of views of the same images."""
        views = torch.cat([view1, view2])  # one pass per network keeps BatchNorm statistics shared
        online = self.predictor(self.projector(self.encoder(views)))
        with torch.no_grad():
            target = self.target_projector(self.target_encoder(views))
        p1, p2 = online.chunk(2)
        z1, z2 = target.chunk(2)
        return normalised_mse(p1, z2) + normalised_mse(p2, z1)

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        for online, target in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.lerp_(po.detach(), 1 - momentum)
            for bo, bt in zip(online.buffers(), target.buffers()):
                bt.copy_(bo)
