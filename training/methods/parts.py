"""Parts shared by the methods, lightly-style: heads, losses, the momentum update and schedules."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# --- heads -----------------------------------------------------------------------------------
def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Linear: BYOL's projector and predictor, SimSiam's predictor."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, out_dim))


def projection_mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """SimSiam's projector: three linear layers, BatchNorm after each (the last without ReLU)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
                         nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim, bias=False),
                         nn.BatchNorm1d(out_dim, affine=False))


# --- losses ----------------------------------------------------------------------------------
def normalised_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), averaged over the batch; no gradient through the target."""
    p = F.normalize(prediction.float(), dim=1)
    z = F.normalize(target.detach().float(), dim=1)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """D(p, z) = -cos(p, stopgrad(z)), averaged over the batch (SimSiam)."""
    return -F.cosine_similarity(prediction.float(), target.detach().float(), dim=1).mean()


# --- the momentum update ---------------------------------------------------------------------
@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online; buffers (BatchNorm statistics) copied."""
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.lerp_(po.detach(), 1 - momentum)
    for bo, bt in zip(online.buffers(), target.buffers()):
        bt.copy_(bo)


# --- schedules -------------------------------------------------------------------------------
def cosine_momentum(step: int, total_steps: int, base: float = 0.996) -> float:
    """BYOL's target momentum: base at step 0, rising along a cosine to 1 at the end."""
    progress = min(step / max(total_steps, 1), 1.0)
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up to the peak, then cosine decay to zero."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
