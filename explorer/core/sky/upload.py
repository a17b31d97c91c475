"""Check an uploaded FITS image before it is used as a query.

:func:`read_uploaded_fits` takes the bytes a user uploaded and returns an image and its
celestial WCS, or an :class:`~explorer.core.errors.InputError` saying exactly what is wrong:
too large (also after gzip decompression), not FITS, no image HDU (tables are refused),
no celestial WCS, only NaN pixels, or pixels far from the encoder's scale. In that last
case ``resample=True`` regrids the image to the encoder's scale (the same field of view,
or ``pixels`` across), centred on the image centre, through :func:`explorer.core.fitsio.cutout_with_wcs`.
"""
from __future__ import annotations

import zlib

import numpy as np
from astropy.wcs import WCS

from explorer.core.errors import InputError
from explorer.core.fitsio import cutout_with_wcs, read_image, wcs_pixel_scale_arcsec

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
SCALE_TOLERANCE = 0.10  # relative; beyond it the encoder would see structures at the wrong size
MAX_SCALE_RATIO = 20.0  # resampling further than this (either way) would invent or discard nearly everything
MAX_RESAMPLED_PIXELS = 2048  # side of the resampled grid; bounds memory before anything is allocated
GZIP_MAGIC = b"\x1f\x8b"


def read_uploaded_fits(data: bytes, name: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                       expected_pixel_scale_arcsec: float, resample: bool = False,
                       pixels: int | None = None) -> tuple[np.ndarray, WCS]:
    """(image float32 [H, W] or [C, H, W], celestial WCS) of an uploaded FITS file, at the expected scale."""
    name = name or "upload"
    image, wcs = read_uploaded_image(data, name, max_bytes=max_bytes)
    scale = float(np.mean(wcs_pixel_scale_arcsec(wcs)))
    mismatch = abs(scale / expected_pixel_scale_arcsec - 1)
    if not resample:
        if mismatch > SCALE_TOLERANCE:
            raise InputError(f"{name} has {scale:.3g}\" pixels but the encoder was trained on "
                             f"{expected_pixel_scale_arcsec:.3g}\" pixels; resample it to "
                             f"{expected_pixel_scale_arcsec:.3g}\"/px (the resample option) or upload another image")
        return image, wcs
    ratio = scale / expected_pixel_scale_arcsec
    if not np.isfinite(ratio) or not 1 / MAX_SCALE_RATIO <= ratio <= MAX_SCALE_RATIO:
        raise InputError(f"{name} has {scale:.3g}\" pixels, more than {MAX_SCALE_RATIO:g}x from the encoder's "
                         f"{expected_pixel_scale_arcsec:.3g}\"; resampling that far would not give a usable image")
    height, width = image.shape[-2:]
    pixels = pixels or max(8, round(min(height, width) * ratio))
    if pixels > MAX_RESAMPLED_PIXELS:
        raise InputError(f"{name} would resample to {pixels:,} x {pixels:,} pixels (limit {MAX_RESAMPLED_PIXELS:,}); "
                         "upload a smaller field around the source")
    centre = wcs.pixel_to_world((width - 1) / 2, (height - 1) / 2)
    return cutout_with_wcs(image, wcs, centre, pixels, expected_pixel_scale_arcsec)


def read_uploaded_image(data: bytes, name: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[np.ndarray, WCS]:
    """(image, celestial WCS) of an uploaded FITS file as it is: within the size limit, gzip or not."""
    name = name or "upload"
    if not data:
        raise InputError(f"{name} is empty")
    if len(data) > max_bytes:
        raise InputError(f"{name} is {_mb(len(data))}; the upload limit is {_mb(max_bytes)}")
    if data[:2] == GZIP_MAGIC:
        data = _gunzip(data, name, max_bytes)
    image, wcs, _ = read_image(data, name=name)
    return image, wcs


def _gunzip(data: bytes, name: str, max_bytes: int) -> bytes:
    """Decompress, refusing anything that grows past the limit (a decompression bomb stops there)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise InputError(f"{name}: not a readable gzip file ({e})") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise InputError(f"{name} decompresses to more than the upload limit of {_mb(max_bytes)}")
    if not inflater.eof:
        raise InputError(f"{name}: the gzip file is truncated (incomplete upload?)")
    return out


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} kB"
