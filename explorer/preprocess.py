"""Image preprocessing: the one path from survey pixels to encoder input.

Training, bundle embedding and out-of-sample queries all call :func:`preprocess`
with the parameters stored in the bundle manifest, so a query cutout is treated
exactly like the images the encoder was trained on (paper 1's app: NaN -> 0,
clip below a noise floor, rescale, centre crop 70 px).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

from typing import TYPE_CHECKING

import numpy as np
from astropy.stats import sigma_clipped_stats

if TYPE_CHECKING:  # torch is imported where it is used: the map pages start faster without it
    import torch


@dataclass(frozen=True)
class Preprocessing:
    # ``low``/``high`` are checked when a training config is loaded (training.config)
    clip_sigma: float = field(default=3.0, metadata={"low": 0.0, "high": 100.0})  # zero pixels below median + clip_sigma * sigma
    crop_pixels: int = field(default=70, metadata={"low": 8, "high": 4096})      # centre crop the encoder sees (paper 1)
    input_pixels: int = field(default=70, metadata={"low": 8, "high": 4096})     # the crop is resampled to this size
    scaling: str = "peak"     # divide by the image peak after clipping -> [0, 1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def rotation_safe_pixels(self) -> int:
        """Crop size whose rotation by any angle still covers the centre crop."""
        n = math.ceil(self.crop_pixels * math.sqrt(2))
        return n + (n - self.crop_pixels) % 2  # keep the same parity so centres coincide


def as_nchw(images: np.ndarray) -> np.ndarray:
    """[H,W] -> [1,1,H,W]; [N,H,W] -> [N,1,H,W]; [N,C,H,W] unchanged."""
    images = np.asarray(images)
    if images.ndim == 2:
        return images[None, None]
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4:
        return images
    raise ValueError(f"expected an image array with 2-4 dimensions, got shape {images.shape}")


def centre_crop(images: np.ndarray, pixels: int) -> np.ndarray:
    h, w = images.shape[-2:]
    if pixels > min(h, w):
        raise ValueError(f"cannot crop {pixels} px from a {h}x{w} image")
    top, left = (h - pixels) // 2, (w - pixels) // 2
    return images[..., top:top + pixels, left:left + pixels]


def preprocess(images: np.ndarray, params: Preprocessing, *, margin_for_rotation: bool = False) -> np.ndarray:
    """NaN -> 0, zero pixels below the noise floor, scale to [0, 1] by the peak, centre crop.

    Returns float32 [N, C, s, s] with s = ``params.crop_pixels``, or the larger
    ``params.rotation_safe_pixels`` when the caller will rotate before cropping
    (training). Resampling to ``input_pixels`` is :func:`encoder_input`'s job.
    """
    x = as_nchw(images).astype(np.float32, copy=True)
    np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    # Noise and peak come from the whole cutout, so the result does not depend on the crop kept.
    with warnings.catch_warnings():  # constant (e.g. all-zero) images give a zero sigma; that is fine
        warnings.simplefilter("ignore", RuntimeWarning)
        _, median, sigma = sigma_clipped_stats(x, sigma=3.0, maxiters=5, axis=(-2, -1))
    floor = np.nan_to_num(median + params.clip_sigma * sigma)[..., None, None]
    x[x < floor] = 0.0
    peak = x.max(axis=(-2, -1), keepdims=True)
    np.divide(x, peak, out=x, where=peak > 0)
    crop = params.rotation_safe_pixels if margin_for_rotation else params.crop_pixels
    return np.ascontiguousarray(centre_crop(x, min(crop, *x.shape[-2:])))


def crop_and_resize(images: torch.Tensor, boxes: torch.Tensor, out_pixels: int) -> torch.Tensor:
    """Resample one box per image ([x0, y0, x1, y1] in pixels) to out_pixels^2.

    roi_align averages several samples per output pixel, so shrinking a crop is
    anti-aliased; a box covering the whole image at the same size is the identity.
    """
    import torch
    from torchvision.ops import roi_align

    index = torch.arange(len(images), device=images.device, dtype=images.dtype)[:, None]
    rois = torch.cat([index, boxes.to(images.dtype)], dim=1)
    return roi_align(images, rois, output_size=out_pixels, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def encoder_input(preprocessed: np.ndarray | torch.Tensor, params: Preprocessing) -> torch.Tensor:
    """Centre crop the preprocessed images and resample them to ``input_pixels``."""
    import torch

    x = torch.as_tensor(np.asarray(preprocessed) if not torch.is_tensor(preprocessed) else preprocessed)
    size = x.shape[-1]
    offset = (size - params.crop_pixels) / 2
    box = torch.tensor([offset, offset, offset + params.crop_pixels, offset + params.crop_pixels])
    return crop_and_resize(x.float(), box.expand(len(x), 4), params.input_pixels)


# Thumbnails: one fixed asinh stretch for every image, so a gallery compares like with like.
ASINH_SOFTENING = 0.05
COLORMAP = "inferno"


def asinh_stretch(x: np.ndarray, softening: float = ASINH_SOFTENING) -> np.ndarray:
    return np.arcsinh(np.clip(x, 0, 1) / softening) / np.arcsinh(1 / softening)


def to_thumbnails(preprocessed: np.ndarray) -> np.ndarray:
    """uint8 previews: [N, H, W] for one or two channels (first shown), [N, H, W, 3] for three or more."""
    x = asinh_stretch(as_nchw(preprocessed))
    if x.shape[1] >= 3:
        x = np.moveaxis(x[:, :3], 1, -1)
    else:
        x = x[:, 0]
    return np.round(x * 255).astype(np.uint8)
