"""A simulated FIRST-like radio sky: the built-in demo data.

Every source is a sky model made of circular Gaussian components (a core, jets,
plumes, lobes, hotspots, tails), each integrated analytically over the pixels so
positions and widths are exact below the pixel scale. The model is in Jy/pixel;
FFT convolution with the 5.4" FWHM beam (kernel peak 1) turns it into Jy/beam and
keeps the total flux: sum(image) / beam area in pixels = flux. Noise is white
Gaussian noise convolved with the same beam (correlated on the beam scale, as in
an interferometric image) and scaled to 0.15 mJy/beam rms.

The source model, parameters and catalogue columns are described in
``docs/simulated_sky.md``. Same seed -> identical bytes of images and catalogue.
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("simulate")

import gzip
import io
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.cosmology import Planck18
from astropy.io import fits
from astropy.wcs import WCS
from scipy.fft import irfft2, next_fast_len, rfft2
from scipy.signal import fftconvolve
from scipy.spatial.distance import pdist
from scipy.special import erf
from scipy.stats import truncnorm
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_directory, check_output_folder, save_figure
from explorer.core.errors import InputError
from training import cli
from explorer.core.surveys import FIRST

SIMULATOR_VERSION = 1          # bump when the model changes: cached catalogues are then rebuilt
PIXELS = FIRST.pixels
PIXEL_SCALE_ARCSEC = FIRST.pixel_scale_arcsec
BEAM_FWHM_ARCSEC = FIRST.beam_fwhm_arcsec
NOISE_JY_PER_BEAM = 0.15e-3
SPECTRAL_INDEX = 0.7           # S ~ nu^-alpha
LAS_LEVEL = 0.05               # las_arcsec: extent of the noise-free image above this fraction of its peak
CLASSES = ("compact", "FRI", "FRII", "bent-tail", "double-double")
BENT_TYPES = ("WAT", "NAT", "HT")
FOOTPRINT_RA = (120.0, 240.0)  # inside the FIRST footprint (north Galactic cap)
FOOTPRINT_DEC = (0.0, 60.0)
REDSHIFT_RANGE = (0.02, 1.0)
PEAK_SNR_RANGE = (5.0, 1000.0)
CHUNK = 250                    # sources rendered per batch; fixed, so the noise streams never depend on it

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
BEAM_SIGMA_PX = BEAM_FWHM_ARCSEC * _FWHM_TO_SIGMA / PIXEL_SCALE_ARCSEC
BEAM_AREA_PX = 2.0 * np.pi * BEAM_SIGMA_PX ** 2     # Jy/beam -> Jy: divide the pixel sum by this
_SIGMA_MIN_ARCSEC = 0.25 * PIXEL_SCALE_ARCSEC         # "point" components: a quarter pixel
_KERNEL_HALF = 10                                     # beam kernel half-size in pixels (7.9 sigma)
# The outermost 3-sigma edge of any component stays this far inside the stamp edge (beam tails included).
_MAX_RADIUS_ARCSEC = (PIXELS / 2 - 4 * BEAM_SIGMA_PX) * PIXEL_SCALE_ARCSEC

# Intrinsic size per class (arcsec): log-normal median, scatter (dex), truncation. Compact: the
# component FWHM; bent tails: the path length of one tail; the others: lobe tip to lobe tip.
_SIZE_PRIOR = {
    "compact": (2.5, 0.35, 0.5, 8.0),
    "FRI": (50.0, 0.25, 18.0, 180.0),
    "FRII": (70.0, 0.25, 25.0, 230.0),
    "bent-tail": (50.0, 0.2, 18.0, 115.0),
    "double-double": (100.0, 0.15, 50.0, 230.0),
}

COLUMNS: dict[str, dict[str, str]] = {
    "id": {"unit": "", "description": "source name from its J2000 position (SIM Jhhmmss.s+ddmmss)"},
    "ra": {"unit": "deg", "description": "right ascension of the core (ICRS); the image centre"},
    "dec": {"unit": "deg", "description": "declination of the core (ICRS); the image centre"},
    "morphology": {"unit": "", "description": "simulated class: compact, FRI, FRII, bent-tail or double-double"},
    "bent_type": {"unit": "", "description": "bent-tail subtype: WAT (wide-angle tail), NAT (narrow-angle tail) "
                                            "or HT (head-tail); empty for other classes"},
    "las_arcsec": {"unit": "arcsec", "description": "largest angular size: largest separation between pixel "
                                                    f"centres where the noise-free image is >= {LAS_LEVEL:g} of its peak"},
    "flux_mjy": {"unit": "mJy", "description": "total 1.4 GHz flux density (noise-free model)"},
    "peak_snr": {"unit": "", "description": "peak of the noisy image / 0.15 mJy/beam"},
    "z": {"unit": "", "description": "redshift"},
    "log_lum_1p4ghz": {"unit": "log10(W/Hz)", "description": "rest-frame 1.4 GHz luminosity from z and flux "
                                                             "(Planck18, k-correction with S ~ nu^-0.7)"},
    "position_angle_deg": {"unit": "deg", "description": "position angle of the source axis east of north, "
                                                         "[0, 180); bent tails: direction the tails trail, [0, 360)"},
    "bend_angle_deg": {"unit": "deg", "description": "180 deg minus the opening angle between the lines from the "
                                                     "core to the two tail ends; 0 for straight sources"},
    "lobe_flux_ratio": {"unit": "", "description": "flux of the brighter side over the fainter side (jets, "
                                                   "lobes or tails; core excluded); 1 for compact sources"},
}


# ----------------------------------------------------------------------------- geometry
def make_wcs(ra: float, dec: float, pixels: int = PIXELS, pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC) -> WCS:
    """A FIRST-like celestial WCS (RA---TAN/DEC--TAN, ICRS) with (ra, dec) at the image centre."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(ra), float(dec)]
    wcs.wcs.crpix = [(pixels + 1) / 2, (pixels + 1) / 2]   # FITS pixels are 1-based: the centre of the stamp
    wcs.wcs.cdelt = [-pixel_scale_arcsec / 3600.0, pixel_scale_arcsec / 3600.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    return wcs


def _truncated_lognormal(rng, median, dex, low, high, size) -> np.ndarray:
    a, b = (np.log10(low) - np.log10(median)) / dex, (np.log10(high) - np.log10(median)) / dex
    return 10 ** truncnorm.ppf(rng.random(size), a, b, loc=np.log10(median), scale=dex)


def _path(theta: np.ndarray, length: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Points at the centres of ``samples`` equal steps along a path of direction ``theta`` [m, fine]."""
    fine = theta.shape[1]
    step = (length / fine)[:, None]
    along = np.cumsum(np.cos(theta) * step, axis=1) - 0.5 * np.cos(theta) * step
    across = np.cumsum(np.sin(theta) * step, axis=1) - 0.5 * np.sin(theta) * step
    take = (np.arange(samples) * fine) // samples + fine // (2 * samples)
    return along[:, take], across[:, take]


def _sides(rng, m: int, lobe_ratio: np.ndarray):
    """Per source: flux share of each side (+1, -1), and a length ratio (the shorter side 0.75-1)."""
    brighter_plus = rng.random(m) < 0.5
    share_bright = lobe_ratio / (1.0 + lobe_ratio)
    share_plus = np.where(brighter_plus, share_bright, 1.0 - share_bright)
    shorter = np.where(rng.random(m) < 0.5, 1.0, -1.0)
    short_scale = rng.uniform(0.75, 1.0, m)
    for side, share in ((1.0, share_plus), (-1.0, 1.0 - share_plus)):
        yield side, share, np.where(shorter == side, short_scale, 1.0)


def _block(along, across, sigma, flux):
    """One group of components as [m, k, 4] from arrays [m, k] (or [m, 1], or scalars) that broadcast."""
    return np.stack(np.broadcast_arrays(along, across, sigma, flux), axis=-1).astype(float)


def _core(fraction):
    """An unresolved core carrying ``fraction`` [m] of the flux."""
    return _block(0.0, 0.0, _SIGMA_MIN_ARCSEC, fraction[:, None])


def _profile(weights: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Fluxes [m, k] along a chain of components with relative ``weights`` [k], summing to ``total`` [m]."""
    return total[:, None] * (weights / weights.sum())


# ----------------------------------------------------------------------------- morphologies
# Each builder returns components [m, k, 4] (along the source axis, across it, sigma, all in arcsec;
# flux, summing to 1 per source) and the bend angle it realised.

def _compact(rng, size, lobe_ratio):
    """A point or small Gaussian (FWHM = size), some barely resolved and elongated."""
    m = len(size)
    secondary = rng.uniform(0.0, 0.3, m)   # a faint offset component
    sigma = np.maximum(size * _FWHM_TO_SIGMA, _SIGMA_MIN_ARCSEC)
    comps = np.concatenate([_block(0.0, 0.0, sigma[:, None], (1 - secondary)[:, None]),
                            _block((0.5 * size)[:, None], 0.0, (0.7 * sigma)[:, None], secondary[:, None])], axis=1)
    return comps, np.zeros(m)


def _fri(rng, size, lobe_ratio, jet_points=10, plume_points=10):
    """Edge-darkened: bright core, jets fading outward, then broad diffuse plumes."""
    m = len(size)
    core = rng.uniform(0.08, 0.25, m)
    jet_end = rng.uniform(0.25, 0.45, m)[:, None]
    blocks = [_core(core)]
    for side, share, length in _sides(rng, m, lobe_ratio):
        radius = (size / 2 * length)[:, None]
        extended = share * (1 - core)
        t = (np.arange(jet_points) + 0.5) / jet_points
        r = radius * jet_end * t
        blocks.append(_block(side * r, 0.0, 0.5 + 0.08 * r, _profile(np.exp(-2.0 * t), 0.3 * extended)))
        t = (np.arange(plume_points) + 0.5) / plume_points
        r = radius * (jet_end + (0.85 - jet_end) * t)
        wiggle = rng.normal(0.0, 0.04, m)[:, None] * radius * t ** 2   # plumes drift a little off the axis
        blocks.append(_block(side * r, wiggle, radius * (0.08 + 0.12 * t),
                             _profile(np.exp(-0.8 * t), 0.7 * extended)))
    return np.concatenate(blocks, axis=1), np.zeros(m)


def _frii(rng, size, lobe_ratio, lobe_points=8):
    """Edge-brightened: faint core, lobes brightening outward to compact hotspots."""
    m = len(size)
    core = rng.uniform(0.0, 0.06, m)
    width = rng.uniform(0.1, 0.18, m)[:, None]
    blocks = [_core(core)]
    for side, share, length in _sides(rng, m, lobe_ratio):
        radius = (size / 2 * length)[:, None]
        extended = share * (1 - core)
        hotspot = rng.uniform(0.2, 0.4, m)
        offset = rng.normal(0.0, 0.02, m)[:, None] * radius
        blocks.append(_block(side * 0.96 * radius, offset, rng.uniform(0.5, 1.2, (m, 1)), (extended * hotspot)[:, None]))
        t = (np.arange(lobe_points) + 0.5) / lobe_points
        r = radius * (0.3 + 0.62 * t)
        blocks.append(_block(side * r, offset * t, radius * width * (0.6 + 0.4 * t),
                             _profile((0.25 + t) ** 2, extended * (1 - hotspot))))
    return np.concatenate(blocks, axis=1), np.zeros(m)


def _bent(rng, size, lobe_ratio, bent_type, points=16, fine=64):
    """Jets launched across the direction of motion, bent back into tails that trail along the axis."""
    m = len(size)
    kind = np.asarray(bent_type)
    # Per subtype: final tail direction (as a bend angle), straight jet length and bending scale (/ length).
    # The realised bend (from the tail ends) is smaller, as the jets start across the direction of motion.
    is_wat, is_nat = kind == "WAT", kind == "NAT"
    target_bend = np.select([is_wat, is_nat], [rng.uniform(65, 125, m), rng.uniform(150, 178, m)],
                            rng.uniform(174, 180, m))
    jet = np.select([is_wat, is_nat], [rng.uniform(0.15, 0.3, m), rng.uniform(0.02, 0.06, m)],
                    rng.uniform(0.0, 0.02, m))[:, None]
    turn = np.select([is_wat, is_nat], [rng.uniform(0.04, 0.1, m), rng.uniform(0.04, 0.1, m)],
                     rng.uniform(0.02, 0.05, m))[:, None]
    core = np.where(kind == "HT", rng.uniform(0.25, 0.45, m), rng.uniform(0.1, 0.3, m))
    blocks, ends = [_core(core)], []
    for side, share, length in _sides(rng, m, lobe_ratio):
        s = (np.arange(fine) + 0.5) / fine
        start, final = np.radians(side * 90.0), np.radians(side * (180.0 - target_bend) / 2)[:, None]
        theta = final + (start - final) * np.exp(-np.clip(s - jet, 0, None) / turn)
        path_length = size * length
        pu, pv = _path(theta, path_length, points)
        t = (np.arange(points) + 0.5) / points
        sigma = 0.5 + path_length[:, None] * (0.015 + 0.15 * t ** 1.5)   # collimated jets flaring into tails
        blocks.append(_block(pu, pv, sigma, _profile(np.exp(-1.2 * t), share * (1 - core))))
        ends.append(np.stack([pu[:, -1], pv[:, -1]], axis=1))
    cos_open = np.sum(ends[0] * ends[1], axis=1) / (np.linalg.norm(ends[0], axis=1) * np.linalg.norm(ends[1], axis=1))
    bend = 180.0 - np.degrees(np.arccos(np.clip(cos_open, -1, 1)))
    return np.concatenate(blocks, axis=1), bend


def _double_double(rng, size, lobe_ratio, lobe_points=6):
    """Two aligned pairs: compact inner lobes and older, more diffuse outer lobes, with a gap between."""
    m = len(size)
    core = rng.uniform(0.0, 0.04, m)
    inner = rng.uniform(0.3, 0.6, m)
    inner_radius = rng.uniform(0.18, 0.38, m)[:, None]
    width = rng.uniform(0.07, 0.11, m)[:, None]
    misalign = np.radians(rng.normal(0.0, 3.0, m))[:, None]   # the two pairs are aligned to a few degrees
    blocks = [_core(core)]
    for side, share, length in _sides(rng, m, lobe_ratio):
        radius = (size / 2 * length)[:, None]
        outer = share * (1 - core) * (1 - inner)
        hotspot = rng.uniform(0.1, 0.3, m)
        blocks.append(_block(side * 0.96 * radius, 0.0, rng.uniform(0.8, 1.5, (m, 1)), (outer * hotspot)[:, None]))
        t = (np.arange(lobe_points) + 0.5) / lobe_points
        r = radius * (0.66 + 0.27 * t)
        blocks.append(_block(side * r, 0.0, radius * width * (0.7 + 0.3 * t),
                             _profile(0.3 + t, outer * (1 - hotspot))))
        r_in = side * inner_radius * radius * np.array([1.0, 0.8])
        inner_flux = (share * (1 - core) * inner)[:, None] * np.array([0.6, 0.4])
        sigma_in = np.concatenate([rng.uniform(0.5, 1.2, (m, 1)), rng.uniform(1.5, 3.0, (m, 1))], axis=1)
        blocks.append(_block(r_in * np.cos(misalign), r_in * np.sin(misalign), sigma_in, inner_flux))
    return np.concatenate(blocks, axis=1), np.zeros(m)


# ----------------------------------------------------------------------------- parameters
def draw_sources(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-source parameters and their sky-model components [n, K, 4] (pixel x, pixel y, sigma px, flux)."""
    morphology = np.asarray(CLASSES)[rng.permutation(np.arange(n) % len(CLASSES))]
    ra = rng.uniform(*FOOTPRINT_RA, n)
    sin_dec = rng.uniform(*np.sin(np.radians(FOOTPRINT_DEC)), n)           # uniform on the sphere
    dec = np.degrees(np.arcsin(sin_dec))
    position_angle = rng.uniform(0.0, 360.0, n)
    lobe_ratio = np.minimum(10 ** np.abs(rng.normal(0.0, 0.15, n)), 5.0)
    z = _truncated_lognormal(rng, 0.2, 0.3, *REDSHIFT_RANGE, n)
    target_snr = _truncated_lognormal(rng, 40.0, 0.5, *PEAK_SNR_RANGE, n)
    bent_type = np.where(morphology == "bent-tail", np.asarray(BENT_TYPES)[rng.integers(0, 3, n)], "")
    bend = np.zeros(n)

    builders = {"compact": _compact, "FRI": _fri, "FRII": _frii, "bent-tail": _bent, "double-double": _double_double}
    groups = {}
    for cls in CLASSES:
        rows = np.flatnonzero(morphology == cls)
        size = _truncated_lognormal(rng, *_SIZE_PRIOR[cls], len(rows))
        subtype = {"bent_type": bent_type[rows]} if cls == "bent-tail" else {}
        groups[cls] = rows, *builders[cls](rng, size, lobe_ratio[rows], **subtype)
        bend[rows] = groups[cls][2]
    components = np.zeros((n, max(g[1].shape[1] for g in groups.values()), 4))
    for rows, comps, _ in groups.values():
        components[rows, :comps.shape[1]] = comps

    components = _shrink_to_fit(components)
    x, y = _sky_to_pixels(components[..., 0], components[..., 1], position_angle[:, None])
    components = np.stack([x, y, components[..., 2] / PIXEL_SCALE_ARCSEC, components[..., 3]], axis=-1)

    two_sided = morphology != "bent-tail"
    params = pd.DataFrame({
        "ra": np.round(ra, 6), "dec": np.round(dec, 6), "morphology": morphology, "bent_type": bent_type, "z": z,
        "position_angle_deg": np.where(two_sided, position_angle % 180.0, position_angle),
        "bend_angle_deg": bend,
        "lobe_flux_ratio": np.where(morphology == "compact", 1.0, lobe_ratio),
        "target_snr": target_snr,
    })
    return params, components


def _shrink_to_fit(components: np.ndarray) -> np.ndarray:
    """Scale down (about the core) any source whose 3-sigma footprint would leave the stamp."""
    along, across, sigma, flux = np.moveaxis(components, -1, 0)
    reach = np.where(flux > 0, np.hypot(along, across) + 3 * np.maximum(sigma, _SIGMA_MIN_ARCSEC), 0.0).max(axis=1)
    scale = np.minimum(1.0, _MAX_RADIUS_ARCSEC / reach)[:, None]
    return np.stack([along * scale, across * scale, np.maximum(sigma * scale, _SIGMA_MIN_ARCSEC), flux], axis=-1)


def _sky_to_pixels(along, across, position_angle_deg):
    """Source frame (arcsec along the position angle, and across it) -> 0-based pixels; north up, east left."""
    pa = np.radians(position_angle_deg)
    east = along * np.sin(pa) + across * np.cos(pa)
    north = along * np.cos(pa) - across * np.sin(pa)
    centre = (PIXELS - 1) / 2
    return centre - east / PIXEL_SCALE_ARCSEC, centre + north / PIXEL_SCALE_ARCSEC


# ----------------------------------------------------------------------------- rendering
def beam_profile() -> np.ndarray:
    """The beam along one axis, peak 1; the 2-D beam is its outer product (a circular Gaussian is separable)."""
    r = np.arange(-_KERNEL_HALF, _KERNEL_HALF + 1)
    return np.exp(-0.5 * (r / BEAM_SIGMA_PX) ** 2)


def beam_kernel() -> np.ndarray:
    """The restoring beam on the pixel grid, peak 1 (Jy/pixel -> Jy/beam); it sums to BEAM_AREA_PX."""
    return np.outer(beam_profile(), beam_profile())


# Noise is convolved on a periodic field this much larger than the stamp: every stamp pixel then
# sees only true neighbours (no wrap-around), so the noise is beam-correlated right up to the edges.
_FIELD = next_fast_len(PIXELS + 2 * _KERNEL_HALF, real=True)
_MARGIN = (_FIELD - PIXELS) // 2


@lru_cache(maxsize=1)
def _beam_transform() -> np.ndarray:
    kernel = np.zeros((_FIELD, _FIELD))
    kernel[:2 * _KERNEL_HALF + 1, :2 * _KERNEL_HALF + 1] = beam_kernel()
    return rfft2(np.roll(kernel, (-_KERNEL_HALF, -_KERNEL_HALF), axis=(0, 1))).astype(np.complex64)


def beam_convolve(fields: np.ndarray) -> np.ndarray:
    """2-D FFT convolution of fields [m, F, F] (F = _FIELD) with the beam; returns the central [m, 150, 150]."""
    convolved = irfft2(rfft2(np.asarray(fields, np.float32)) * _beam_transform(), s=fields.shape[1:])
    return convolved[:, _MARGIN:_MARGIN + PIXELS, _MARGIN:_MARGIN + PIXELS]


def _pixel_profiles(centre: np.ndarray, sigma: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Gaussians [m, K] integrated exactly between consecutive ``edges`` (erf) -> [m, K, len(edges) - 1]."""
    return 0.5 * np.diff(erf((edges - centre[..., None]) / (np.sqrt(2.0) * sigma[..., None])), axis=-1)


def render_model(components: np.ndarray, pixels: int = PIXELS, *, beam: bool = False) -> np.ndarray:
    """Image float32 [m, pixels, pixels] of components [m, K, 4] (x px, y px, sigma px, flux Jy).

    ``beam=False``: the sky model in Jy/pixel. ``beam=True``: convolved with the beam, in Jy/beam.
    A circular Gaussian component is separable into an x and a y profile, so a source is one matrix
    product, sum_k f_k gy_k(y) gx_k(x); and so is the beam, so the convolution is an FFT convolution
    of each 1-D profile with the 1-D beam (the same as the 2-D convolution, but far cheaper).
    """
    x, y, sigma, flux = np.moveaxis(components, -1, 0)
    edges = np.arange(pixels + 1) - 0.5                  # pixel i spans i +- 0.5
    gx = _pixel_profiles(x, sigma, edges)
    gy = flux[..., None] * _pixel_profiles(y, sigma, edges)
    if beam:
        gx, gy = (fftconvolve(g, beam_profile()[None, None], mode="same", axes=-1) for g in (gx, gy))
    return np.matmul(np.ascontiguousarray(np.swapaxes(gy, 1, 2), np.float32), gx.astype(np.float32))


def model_flux(components: np.ndarray, pixels: int = PIXELS) -> np.ndarray:
    """Total flux [m] of the sky model inside the stamp: the sum of ``render_model``'s pixels, exactly."""
    x, y, sigma, flux = np.moveaxis(components, -1, 0)
    inside = [_pixel_profiles(c, sigma, np.array([-0.5, pixels - 0.5]))[..., 0] for c in (x, y)]
    return np.sum(flux * inside[0] * inside[1], axis=1)


def largest_angular_size(noise_free: np.ndarray, level: float = LAS_LEVEL,
                         pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC) -> np.ndarray:
    """Largest separation (arcsec) between pixel centres at >= ``level`` x peak, per image [m, H, W].

    Only the first and last such pixel of each row can be vertices of the convex hull, so the
    diameter is found among at most 2 H candidates per image.
    """
    images = np.asarray(noise_free)
    mask = images >= level * images.max(axis=(1, 2), keepdims=True)
    width = mask.shape[2]
    first = mask.argmax(axis=2)
    last = width - 1 - mask[:, :, ::-1].argmax(axis=2)
    rows = mask.any(axis=2)
    sizes = np.zeros(len(images))
    for i in range(len(images)):
        y = np.flatnonzero(rows[i])
        points = np.concatenate([np.stack([first[i, y], y], 1), np.stack([last[i, y], y], 1)])
        sizes[i] = pdist(points).max() if len(points) > 1 else 0.0
    return sizes * pixel_scale_arcsec


def _render_chunk(components: np.ndarray, target_snr: np.ndarray, noise_rng: np.random.Generator):
    """Noise-free and noisy images (Jy/beam) and the total flux (Jy) of one batch of sources."""
    m = len(components)
    unit = render_model(components, beam=True)                    # a source of unit flux, in Jy/beam
    scale = target_snr * NOISE_JY_PER_BEAM / unit.max(axis=(1, 2))
    noise_free = unit * scale[:, None, None].astype(np.float32)
    return noise_free, noise_free + beam_noise(m, noise_rng), model_flux(components) * scale


def beam_noise(m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` stamps [m, 150, 150] of beam-correlated Gaussian noise, NOISE_JY_PER_BEAM rms (Jy/beam)."""
    white = rng.standard_normal((m, _FIELD, _FIELD), dtype=np.float32)
    return beam_convolve(white) * np.float32(NOISE_JY_PER_BEAM / np.sqrt(np.sum(beam_kernel() ** 2)))


def _source_names(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    coords = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    names = pd.Series(["SIM J" + r + d for r, d in zip(
        coords.ra.to_string(unit=u.hour, sep="", precision=1, pad=True),
        coords.dec.to_string(unit=u.deg, sep="", precision=0, pad=True, alwayssign=True))])
    repeat = names.groupby(names).cumcount()          # two sources in one naming cell get a suffix
    return np.where(repeat > 0, names + "-" + (repeat + 1).astype(str), names)


def luminosity_1p4ghz(flux_mjy, z, spectral_index: float = SPECTRAL_INDEX) -> np.ndarray:
    """log10 rest-frame 1.4 GHz luminosity (W/Hz): 4 pi D_L^2 S (1+z)^(alpha-1), S ~ nu^-alpha."""
    z = np.asarray(z, float)
    distance = Planck18.luminosity_distance(z)
    lum = 4 * np.pi * distance ** 2 * (np.asarray(flux_mjy) * u.mJy) * (1 + z) ** (spectral_index - 1)
    return np.log10(lum.to_value(u.W / u.Hz))


def simulate_sources(n: int = 5000, seed: int = 0, *, noise: bool = True,
                     progress: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """Images float32 [n, 150, 150] in Jy/beam and their catalogue (id, ra, dec, properties).

    ``noise=False`` returns the same sources without noise (the catalogue is identical: its
    ``peak_snr`` is always measured on the noisy image).
    """
    if n < 1:
        raise InputError(f"the number of simulated sources must be at least 1, got {n}")
    if seed < 0:
        raise InputError(f"the simulation seed must be zero or positive, got {seed}")
    params, components = draw_sources(n, np.random.default_rng(seed))
    images = np.empty((n, PIXELS, PIXELS), np.float32)
    flux, peak, las = np.empty(n), np.empty(n), np.empty(n)
    target_snr = params["target_snr"].to_numpy()

    def render(chunk: int) -> None:
        rows = slice(chunk * CHUNK, min((chunk + 1) * CHUNK, n))
        noise_rng = np.random.default_rng([seed, chunk])     # one stream per batch: any order, same bytes
        noise_free, noisy, flux[rows] = _render_chunk(components[rows], target_snr[rows], noise_rng)
        peak[rows] = noisy.max(axis=(1, 2))
        las[rows] = largest_angular_size(noise_free)
        images[rows] = noisy if noise else noise_free

    # Batches run in threads (numpy, BLAS and FFT release the GIL), each with a single BLAS thread:
    # OpenBLAS's own threads fighting over many small matrix products are several times slower.
    chunks = range(-(-n // CHUNK))
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(min(len(chunks), os.cpu_count() or 1)) as pool:
        for _ in tqdm(pool.map(render, chunks), total=len(chunks), desc="simulating radio sky", unit="batch",
                      disable=not progress):
            pass

    flux_mjy = np.round(flux * 1e3, 4)
    z = np.round(params["z"].to_numpy(), 4)
    catalogue = pd.DataFrame({
        "id": _source_names(params["ra"].to_numpy(), params["dec"].to_numpy()),
        "ra": params["ra"], "dec": params["dec"],
        "morphology": params["morphology"], "bent_type": params["bent_type"],
        "las_arcsec": np.round(las, 2),
        "flux_mjy": flux_mjy,
        "peak_snr": np.round(peak / NOISE_JY_PER_BEAM, 2),
        "z": z,
        "log_lum_1p4ghz": np.round(luminosity_1p4ghz(flux_mjy, z), 4),
        "position_angle_deg": np.round(params["position_angle_deg"], 2),
        "bend_angle_deg": np.round(params["bend_angle_deg"], 2),
        "lobe_flux_ratio": np.round(params["lobe_flux_ratio"], 3),
    })
    return images, catalogue


# ----------------------------------------------------------------------------- FITS catalogue
def _safe_name(source_id: str) -> str:
    return "".join(c if c.isalnum() or c in ".+-_" else "_" for c in str(source_id))


def fits_header(pixels: int = PIXELS, pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC) -> fits.Header:
    """A FIRST-like image header: celestial WCS (centre set per source), Jy/beam, restoring beam."""
    header = make_wcs(0.0, 0.0, pixels, pixel_scale_arcsec).to_header()
    header["BUNIT"] = ("Jy/beam", "pixel unit")
    header["BMAJ"] = (BEAM_FWHM_ARCSEC / 3600.0, "[deg] restoring beam FWHM, major axis")
    header["BMIN"] = (BEAM_FWHM_ARCSEC / 3600.0, "[deg] restoring beam FWHM, minor axis")
    header["BPA"] = (0.0, "[deg] restoring beam position angle")
    header["TELESCOP"] = ("SIMULATED", "FIRST-like 1.4 GHz sky from training.simulate")
    return header


def write_fits_catalogue(out_dir, images, catalogue: pd.DataFrame, *, pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC,
                         columns: dict | None = None, provenance: dict | None = None, compress: bool = False,
                         header: fits.Header | None = None, tables: dict[str, pd.DataFrame] | None = None,
                         extensions: dict[str, tuple[np.ndarray, fits.Header]] | None = None,
                         progress: bool = True) -> Path:
    """Write a FITS catalogue directory (the layout of ``../shared/data/mirabest``), atomically.

    ``fits/<id>.fits`` (float32 Jy/beam, FIRST-like header, WCS centred on the row's ra/dec),
    ``catalog.csv`` (``file`` first), ``columns.yaml`` (unit and description of every column) and,
    when given, ``provenance.json``. ``compress`` writes ``.fits.gz`` (gzip level 1, zero timestamp:
    same input, same bytes); noisy float32 pixels barely compress, so it is off by default. ``header`` replaces
    the FIRST-like header (another simulator's units and instrument); its WCS centre is set per source.
    ``tables`` are further CSV files written beside ``catalog.csv`` (e.g. the sources of simulated fields).
    ``extensions`` are further images of each row, ``{EXTNAME: (images [N, H, W], header)}``, written as
    image extensions of the same file (e.g. the W1 image of a radio field), their WCS centred alike.
    """
    out_dir = Path(out_dir)
    images = np.asarray(images)
    if images.ndim != 3 or len(images) != len(catalogue):
        raise ValueError(f"expected images [N, H, W] for {len(catalogue)} catalogue rows, got {images.shape}")
    if not {"id", "ra", "dec"} <= set(catalogue.columns):
        raise ValueError("the catalogue needs id, ra and dec columns")
    suffix = ".fits.gz" if compress else ".fits"
    files = [f"fits/{_safe_name(i)}{suffix}" for i in catalogue["id"]]
    if len(set(files)) != len(files):
        raise ValueError("source ids must be unique (after making them safe as file names)")
    columns = COLUMNS if columns is None else columns

    # One HDU reused for every file: building and verifying a header per file costs 4x the writing.
    if header is None:
        header = fits_header(images.shape[-1], pixel_scale_arcsec)
    hdu = fits.PrimaryHDU(np.zeros(images.shape[1:], np.float32), header)
    extra = {name: (planes, fits.ImageHDU(np.zeros(planes.shape[1:], np.float32), head, name=name))
             for name, (planes, head) in (extensions or {}).items()}
    with atomic_directory(out_dir) as tmp:
        (tmp / "fits").mkdir()
        rows = zip(files, catalogue["id"], catalogue["ra"], catalogue["dec"])
        for k, (image, (file, source_id, ra, dec)) in enumerate(zip(tqdm(images, desc="writing FITS", unit="file",
                                                                         disable=not progress), rows)):
            hdus = [(hdu, image)] + [(ext, planes[k]) for planes, ext in extra.values()]
            for h, pixels in hdus:
                h.data = np.asarray(pixels, np.float32)
                h.header["CRVAL1"], h.header["CRVAL2"] = float(ra), float(dec)
                h.header["OBJECT"] = str(source_id)
            buffer = io.BytesIO()
            fits.HDUList([h for h, _ in hdus]).writeto(buffer, output_verify="ignore")
            data = buffer.getvalue()
            (tmp / file).write_bytes(gzip.compress(data, compresslevel=1, mtime=0) if compress else data)
        table = catalogue.copy()
        table.insert(0, "file", files)
        table.to_csv(tmp / "catalog.csv", index=False)
        for name, extra in (tables or {}).items():
            extra.to_csv(tmp / name, index=False)
        described = {c: dict(columns.get(c, {"unit": "", "description": ""})) for c in catalogue.columns}
        (tmp / "columns.yaml").write_text(yaml.safe_dump(described, sort_keys=False, allow_unicode=True))
        if provenance is not None:
            (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return out_dir


def _provenance(n: int, seed: int) -> dict:
    return {"generator": "training.simulate", "version": SIMULATOR_VERSION, "n": int(n), "seed": int(seed)}


def simulate_to_directory(out_dir, n: int = 5000, seed: int = 0, *, progress: bool = True) -> Path:
    """Simulate and write a FITS catalogue directory; a complete one with the same n and seed is kept."""
    out_dir = Path(out_dir)
    wanted = _provenance(n, seed)
    stamp = out_dir / "provenance.json"
    try:
        if json.loads(stamp.read_text()) == wanted:
            return out_dir
    except (OSError, ValueError):  # no stamp, or a damaged one
        pass
    # Another simulation is ours to replace; anything else is refused.
    check_output_folder(out_dir, "simulated catalogue", lambda p: (p / "provenance.json").exists(), overwrite=True)
    images, catalogue = simulate_sources(n, seed, progress=progress)
    return write_fits_catalogue(out_dir, images, catalogue, provenance=wanted, progress=progress)


# ----------------------------------------------------------------------------- examples figure
def _pick_examples(catalogue: pd.DataFrame, per_class: int) -> dict[str, list[int]]:
    """Per class, well-detected sources spread over the size range (bent tails: each subtype)."""
    bright = catalogue[catalogue["peak_snr"] >= 50]
    picks = {}
    for cls in CLASSES:
        pool = bright[bright["morphology"] == cls]
        groups = [pool[pool["bent_type"] == b] for b in BENT_TYPES] if cls == "bent-tail" else [pool]
        chosen = []
        for g, group in enumerate(groups):
            k = per_class // len(groups) + (g < per_class % len(groups))
            ordered = group.sort_values("las_arcsec")
            chosen += list(ordered.index[(np.linspace(0.1, 0.9, k) * (len(ordered) - 1)).round().astype(int)])
        picks[cls] = chosen
    return picks


def render_examples(path, *, per_class: int = 6, n: int = 600, seed: int = 0) -> Path:
    """Save a grid of example cutouts (rows = classes) with the explorer's asinh stretch and colour map.

    Each panel is zoomed to its source (a 30" bar gives the scale); titles give the largest angular size.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from explorer.core.preprocess import COLORMAP, asinh_stretch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)       # fail on an unusable path before the work
    images, catalogue = simulate_sources(n, seed, progress=False)
    picks = _pick_examples(catalogue, per_class)
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(1.6 * per_class, 1.75 * len(CLASSES)))
    centre = PIXELS // 2
    for row, cls in zip(axes, CLASSES):
        for ax, index in zip(row, picks[cls]):
            source = catalogue.loc[index]
            half = int(np.clip(0.75 * source["las_arcsec"] / PIXEL_SCALE_ARCSEC, 20, centre))
            cutout = images[index, centre - half:centre + half, centre - half:centre + half]
            ax.imshow(asinh_stretch(cutout / cutout.max()), origin="lower", cmap=COLORMAP)
            bar = 30.0 / PIXEL_SCALE_ARCSEC
            ax.plot([0.06 * 2 * half, 0.06 * 2 * half + bar], [0.07 * 2 * half] * 2, color="white", lw=1.5)
            ax.text(0.06 * 2 * half + bar / 2, 0.1 * 2 * half, '30"', color="white", fontsize=6, ha="center")
            label = source["bent_type"] if cls == "bent-tail" else cls
            detail = f"bend {source['bend_angle_deg']:.0f}°" if cls == "bent-tail" else f"S/N {source['peak_snr']:.0f}"
            ax.set_title(f'{label}  {source["las_arcsec"]:.0f}"  {detail}', fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(cls, fontsize=9)
    fig.suptitle(f'Simulated FIRST-like sources ({PIXEL_SCALE_ARCSEC}"/px, {BEAM_FWHM_ARCSEC}" beam, '
                 f"{NOISE_JY_PER_BEAM * 1e3:g} mJy/beam rms); titles: largest angular size", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.975), h_pad=1.2, w_pad=0.3)
    save_figure(fig, path, dpi=100)
    return path


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("simulate")
    args = parser.parse_args(argv)
    if not (args.out or args.examples):
        parser.error("give --out DIR and/or --examples PNG")
    try:
        if args.out:
            print(simulate_to_directory(args.out, args.n, args.seed))
        if args.examples:
            print(render_examples(args.examples, seed=args.seed))
    except (InputError, OSError) as error:   # OSError: an output path that cannot be written
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
