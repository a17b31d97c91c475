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


SCALINGS = ("peak", "peak_all_bands", "calibrated", "calibrated_asinh", "asinh", "max", "uint8")


@dataclass(frozen=True)
class Preprocessing:
    """How survey pixels become encoder input; recorded in the manifest and used alike for training,
    embedding and queries. ``low``/``high``/``choices`` are checked when a training config loads.

    Scalings (after NaN -> 0; all but the calibrated ones, ``max`` and ``uint8`` first zero the pixels below the
    noise floor):

    - ``peak`` (paper 1, the default): each band divided by its own peak -> [0, 1];
    - ``peak_all_bands``: every band divided by the image's brightest pixel, so colours survive;
    - ``calibrated`` (paper 2, Eq. 3.2): x * 10^(5 - 0.4 zp) / ps^2 per band, with the bands' zero points
      (``zero_points``, or per source from ``zp_<band>`` catalogue columns) and ``pixel_scale_arcsec``;
      no other normalisation;
    - ``calibrated_asinh``: ``calibrated``, then asinh(x / a) with a = ``asinh_softening`` in those flux units
      (Lupton et al. 1999's asinh magnitudes, up to sign and scale): linear in the noise, logarithmic in bright
      sources, the same curve for every band and source, so noise levels and colours both survive;
    - ``asinh``: ``peak_all_bands``, then asinh(x / a) / asinh(1 / a) with a = ``asinh_softening``;
    - ``max`` (paper 5): each band divided by its maximum, with no noise floor (the noise stays, as in the
      paper's lens images);
    - ``uint8`` (paper 2's RGB input): 8-bit colour composites divided by 255, so every image keeps the one
      stretch it was made with.
    """
    clip_sigma: float = field(default=3.0, metadata={"low": 0.0, "high": 100.0})  # floor: median + clip_sigma * sigma
    crop_pixels: int = field(default=70, metadata={"low": 8, "high": 4096})      # centre crop the encoder sees (paper 1)
    input_pixels: int = field(default=70, metadata={"low": 8, "high": 4096})     # the crop is resampled to this size
    scaling: str = field(default="peak", metadata={"choices": SCALINGS})
    zero_points: tuple[float, ...] = ()        # calibrated: one per band, in channel order (mag)
    pixel_scale_arcsec: float = field(default=0.0, metadata={"low": 0.0, "high": 3600.0})  # calibrated: ps
    asinh_softening: float = field(default=0.05, metadata={"low": 1e-6, "high": 10.0})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        values = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "zero_points" in values:
            values["zero_points"] = tuple(values["zero_points"])
        return cls(**values)

    @property
    def calibrated(self) -> bool:
        """Scaled by zero points and pixel scale (which need ``zero_points`` and ``pixel_scale_arcsec``)."""
        return self.scaling in ("calibrated", "calibrated_asinh")

    def check(self, channels: int, where: str = "preprocessing") -> None:
        """Settings that depend on the data: calibrated scaling needs a zero point per band and the pixel scale."""
        from explorer.core.errors import InputError

        if self.calibrated:
            if len(self.zero_points) != channels:
                raise InputError(f"{where}: calibrated scaling needs {channels} zero point(s) (one per band), "
                                 f"got {len(self.zero_points)}")
            if self.pixel_scale_arcsec <= 0:
                raise InputError(f"{where}: calibrated scaling needs pixel_scale_arcsec (the data's pixel scale)")

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


def preprocess(images: np.ndarray, params: Preprocessing, *, margin_for_rotation: bool = False,
               zero_points: np.ndarray | None = None) -> np.ndarray:
    """NaN -> 0, zero pixels below the noise floor, scale (``params.scaling``), centre crop.

    Returns float32 [N, C, s, s] with s = ``params.crop_pixels``, or the larger
    ``params.rotation_safe_pixels`` when the caller will rotate before cropping
    (training). Resampling to ``input_pixels`` is :func:`encoder_input`'s job.
    ``zero_points`` [N, C] (calibrated scaling) are per-source zero points that replace the config's.
    """
    x = as_nchw(images).astype(np.float32, copy=True)
    np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if params.calibrated:
        zp = np.asarray(params.zero_points if zero_points is None else zero_points, dtype=np.float64)
        factor = 10 ** (5 - 0.4 * zp) / params.pixel_scale_arcsec ** 2
        x *= np.broadcast_to(factor, (len(x), x.shape[1]))[..., None, None].astype(np.float32)
        if params.scaling == "calibrated_asinh":
            x = np.arcsinh(x / params.asinh_softening).astype(np.float32)
    elif params.scaling == "uint8":
        np.clip(x / 255.0, 0.0, 1.0, out=x)
    elif params.scaling == "max":
        peak = x.max(axis=(-2, -1), keepdims=True)
        np.divide(x, peak, out=x, where=peak > 0)
    else:
        # Noise and peak come from the whole cutout, so the result does not depend on the crop kept.
        with warnings.catch_warnings():  # constant (e.g. all-zero) images give a zero sigma; that is fine
            warnings.simplefilter("ignore", RuntimeWarning)
            _, median, sigma = sigma_clipped_stats(x, sigma=3.0, maxiters=5, axis=(-2, -1))
        floor = np.nan_to_num(median + params.clip_sigma * sigma)[..., None, None]
        x[x < floor] = 0.0
        axes = (-2, -1) if params.scaling == "peak" else (-3, -2, -1)
        peak = x.max(axis=axes, keepdims=True)
        np.divide(x, peak, out=x, where=peak > 0)
        if params.scaling == "asinh":
            a = params.asinh_softening
            x = (np.arcsinh(x / a) / np.arcsinh(1 / a)).astype(np.float32)
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


def fwhm_crop(images: np.ndarray, fwhm_arcsec, pixel_scale_arcsec: float, pixels: int = 32,
              factor: float = 3.0) -> np.ndarray:
    """Paper 2's crop, per source: the central ``pixels``, or the central ``factor`` x FWHM resized to ``pixels``
    when that is larger (bounded by the image). float32 [N, C, pixels, pixels]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(as_nchw(images), dtype=np.float32))
    height, width = x.shape[-2:]
    if pixels > min(height, width):
        raise ValueError(f"cannot crop {pixels} px from a {height}x{width} image")
    side = np.clip(factor * np.asarray(fwhm_arcsec, np.float64).reshape(-1) / pixel_scale_arcsec, pixels,
                   min(height, width))
    side = np.broadcast_to(side, (len(x),))
    boxes = np.stack([width / 2 - side / 2, height / 2 - side / 2, width / 2 + side / 2, height / 2 + side / 2], axis=1)
    return crop_and_resize(x, torch.from_numpy(boxes.astype(np.float32)), pixels).numpy()


def encoder_input(preprocessed: np.ndarray | torch.Tensor, params: Preprocessing) -> torch.Tensor:
    """Centre crop the preprocessed images and resample them to ``input_pixels``."""
    import torch

    # a copy of array input: it may be a read-only memory map (the cutout cache)
    x = preprocessed if torch.is_tensor(preprocessed) else torch.from_numpy(np.array(preprocessed, dtype=np.float32))
    size = x.shape[-1]
    offset = (size - params.crop_pixels) / 2
    box = torch.tensor([offset, offset, offset + params.crop_pixels, offset + params.crop_pixels])
    return crop_and_resize(x.float(), box.expand(len(x), 4), params.input_pixels)


# Thumbnails: one fixed asinh stretch for every image, so a gallery compares like with like.
ASINH_SOFTENING = 0.05
COLORMAP = "inferno"


LUPTON_BANDS = ("i", "r", "g")        # red, green, blue
LUPTON_STRETCH, LUPTON_Q = 0.05, 8.0


def asinh_stretch(x: np.ndarray, softening: float = ASINH_SOFTENING) -> np.ndarray:
    return np.arcsinh(np.clip(x, 0, 1) / softening) / np.arcsinh(1 / softening)


def band_thumbnails(preprocessed: np.ndarray) -> np.ndarray:
    """uint8 [N, C, H, W]: every band of every image on its own, divided by its peak and stretched like a
    single-band thumbnail (the source panel's band switcher: what the source looks like in each filter)."""
    x = np.clip(as_nchw(preprocessed).astype(np.float32), 0, None)
    peak = x.max(axis=(-2, -1), keepdims=True)
    x = np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)
    return np.round(asinh_stretch(x) * 255).astype(np.uint8)


def to_thumbnails(preprocessed: np.ndarray, bands=None) -> np.ndarray:
    """uint8 previews: [N, H, W] for one or two channels (first shown), [N, H, W, 3] for three or more.

    With band names that include g, r and i, the colour image is Lupton et al.'s (2004) asinh composite of
    (i, r, g) as red, green, blue (``astropy.visualization.make_lupton_rgb``), scaled by each image's brightest
    of the three so that its colours are kept; other multi-band data show their first three channels.
    """
    x = as_nchw(preprocessed)
    if bands is not None and set(LUPTON_BANDS) <= set(bands):
        from astropy.visualization import make_lupton_rgb

        planes = np.stack([x[:, list(bands).index(b)] for b in LUPTON_BANDS], axis=1).astype(np.float64)
        peak = np.clip(planes, 0, None).max(axis=(1, 2, 3), keepdims=True)
        planes = np.divide(planes, peak, out=np.zeros_like(planes), where=peak > 0)
        return np.stack([make_lupton_rgb(*image, minimum=0.0, stretch=LUPTON_STRETCH, Q=LUPTON_Q) for image in planes])
    x = asinh_stretch(x)
    if x.shape[1] >= 3:
        x = np.moveaxis(x[:, :3], 1, -1)
    else:
        x = x[:, 0]
    return np.round(x * 255).astype(np.uint8)
