"""The encoder: a backbone (:mod:`explorer.core.backbones`), embedding, devices.

Training builds it, the bundle stores its weights (``encoder.safetensors``), and
the explorer rebuilds it to embed out-of-sample queries and to fine-tune heads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from explorer.core.backbones import build_backbone
from explorer.core.preprocess import Preprocessing, encoder_input


def build_encoder(architecture: str = "resnet18", in_channels: int = 1) -> tuple[nn.Module, int]:
    """A backbone mapping [B, C, H, W] -> [B, D]; returns (module, D)."""
    model = build_backbone(architecture, in_channels)
    return model, model.dim


def band_classifier(band_dim: int, bands: int, hidden: int = 512) -> nn.Sequential:
    """Paper 4's pretext output on one band's features: FC-hidden, ReLU, one logit per band (training's
    ``band_prediction`` method trains it; a bundle carries it for occlusion maps)."""
    return nn.Sequential(nn.Linear(band_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, bands))


def resolve_device(device: str = "auto") -> torch.device:
    from explorer.core.errors import InputError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


@torch.no_grad()
def embed(model: nn.Module, preprocessed: np.ndarray, params: Preprocessing, *, batch_size: int = 256,
          device: torch.device | str = "cpu", progress: bool = True, desc: str = "embedding") -> np.ndarray:
    """L2-normalised float32 [N, D] representations of preprocessed images."""
    device = torch.device(device)
    model = model.to(device).eval()
    out = []
    for start in tqdm(range(0, len(preprocessed), batch_size), desc=desc, disable=not progress, unit="batch"):
        x = encoder_input(preprocessed[start:start + batch_size], params).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            z = model(x)
        out.append(nn.functional.normalize(z.float(), dim=1).cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)
