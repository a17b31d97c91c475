"""Batched image augmentations that run on the training device (paper 1, Table 1).

Order, as in the paper: rotation 0-360 deg (nearest neighbour) -> centre crop ->
random resized crop -> horizontal / vertical flips -> brightness/contrast jitter
(p=0.8) -> Gaussian blur (p=0.1). Inputs are preprocessed images in [0, 1] that
keep a rotation margin around the centre crop (``preprocess(margin_for_rotation=True)``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from explorer.core.preprocess import Preprocessing, crop_and_resize
from training.options import limited


@dataclass(frozen=True)
class AugmentConfig:
    """The random part of the views (the recipe's ``augmentation`` section); the crop and output sizes
    are the preprocessing's (``crop_pixels``, ``input_pixels``)."""
    rotation: bool = True                                          # uniform angle in [0, 360)
    crop_scale: tuple[float, float] = limited((0.8, 1.0), 0.01, 1.0)
    crop_ratio: tuple[float, float] = limited((3 / 4, 4 / 3), 0.1, 10.0)
    flip_p: float = limited(0.5, 0.0, 1.0)                          # each of horizontal and vertical
    jitter_p: float = limited(0.8, 0.0, 1.0)
    jitter_strength: float = limited(0.5, 0.0, 10.0)                # brightness and contrast in [1 - s, 1 + s]
    blur_p: float = limited(0.1, 0.0, 1.0)
    blur_sigma: tuple[float, float] = limited((0.1, 2.0), 0.01, 100.0)

    @classmethod
    def finetune(cls) -> "AugmentConfig":
        """Paper 1's fine-tune / linear-probe augmentations: rotation, centre crop, crop 0.9-1.0, flips."""
        return cls(crop_scale=(0.9, 1.0), jitter_p=0.0, blur_p=0.0)


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=device)


def rotate_and_crop(images: torch.Tensor, angles_deg: torch.Tensor, crop_pixels: int) -> torch.Tensor:
    """Rotate each image about its centre (nearest neighbour) and cut the centre crop."""
    size = images.shape[-1]
    a = torch.deg2rad(angles_deg)
    cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
    scale = crop_pixels / size  # the output grid covers only the central crop of the input
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1) * scale
    grid = F.affine_grid(theta, (len(images), images.shape[1], crop_pixels, crop_pixels), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def random_resized_boxes(n: int, size: int, scale: tuple[float, float], ratio: tuple[float, float],
                         g: torch.Generator, device) -> torch.Tensor:
    """[n, 4] boxes (x0, y0, x1, y1) covering a random area fraction and aspect ratio of a size^2 image."""
    area = _uniform(n, *scale, g, device) * size * size
    log_ratio = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), g, device)
    aspect = torch.exp(log_ratio)
    w = torch.sqrt(area * aspect).clamp(max=size)
    h = torch.sqrt(area / aspect).clamp(max=size)
    x0 = torch.rand(n, generator=g, device=device) * (size - w)
    y0 = torch.rand(n, generator=g, device=device) * (size - h)
    return torch.stack([x0, y0, x0 + w, y0 + h], 1)


def dihedral(images: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Square images [N, C, H, H] turned by 90 deg x (code % 4), then mirrored where code >= 4: the eight
    symmetries of the pixel grid, exact (no resampling), with ``codes`` [N] in 0-7."""
    turned = images
    for quarter in (1, 2, 3):
        turned = torch.where((codes % 4 == quarter)[:, None, None, None], images.rot90(quarter, (-2, -1)), turned)
    return torch.where((codes >= 4)[:, None, None, None], turned.flip(-1), turned)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image."""
    b, c, h, w = images.shape
    radius = max(1, int(0.05 * h))  # kernel ~10% of the image, as in BYOL
    t = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # one kernel per (image, channel)
    x = images.reshape(1, b * c, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None], groups=b * c)
    return x.reshape(b, c, h, w)


def augment(images: torch.Tensor, cfg: AugmentConfig, sizes: Preprocessing, g: torch.Generator, *,
            share: slice = slice(None), total: int | None = None) -> torch.Tensor:
    """One random view of each image, ``sizes.crop_pixels`` cut and ``sizes.input_pixels`` out; ``g`` lives on
    the images' device.

    ``images`` may be the rows ``share`` of a batch of ``total``: the random draws are those of the whole
    batch, so a process that holds only its share of a global batch makes exactly its share of the views.
    """
    device = images.device
    n = len(images) if total is None else total

    def draw(low: float, high: float) -> torch.Tensor:
        return _uniform(n, low, high, g, device)[share]

    def chosen(p: float) -> torch.Tensor:
        return (torch.rand(n, generator=g, device=device) < p)[share][:, None, None, None]

    angles = draw(0.0, 360.0) if cfg.rotation else torch.zeros(len(images), device=device)
    x = rotate_and_crop(images, angles, sizes.crop_pixels)

    boxes = random_resized_boxes(n, sizes.crop_pixels, cfg.crop_scale, cfg.crop_ratio, g, device)[share]
    x = crop_and_resize(x, boxes, sizes.input_pixels)

    x = torch.where(chosen(cfg.flip_p), x.flip(-1), x)
    x = torch.where(chosen(cfg.flip_p), x.flip(-2), x)

    if cfg.jitter_p > 0:
        s = cfg.jitter_strength
        brightness = draw(1 - s, 1 + s)[:, None, None, None]
        contrast = draw(1 - s, 1 + s)[:, None, None, None]
        jittered = x * brightness
        mean = jittered.mean(dim=(1, 2, 3), keepdim=True)
        jittered = ((jittered - mean) * contrast + mean).clamp(0, 1)
        x = torch.where(chosen(cfg.jitter_p), jittered, x)

    if cfg.blur_p > 0:
        sigma = draw(*cfg.blur_sigma)
        x = torch.where(chosen(cfg.blur_p), gaussian_blur(x, sigma), x)
    return x
