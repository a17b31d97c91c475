"""An SDSS-like sky of galaxy clusters in u, g, r, i, z (paper 4, OWG: richness from cluster images).

Paper 4 used 24,596 SDSS DR12 images of redMaPPer clusters, each covering "1 Mpc around the centre", with
redMaPPer's richness λ as the label. This module renders such images with their truth.

- Clusters: redshift uniform in ``Z_RANGE`` (0.08-0.5); richness λ, an integer, from dN/dλ ∝ λ^-2.5 between 20
  and 150. R_λ = 1.0 (λ/100)^0.2 h⁻¹ Mpc (redMaPPer's radius, physical, h of Planck18), 1.07-1.60 Mpc.
  Positions uniform on the sphere within a box standing for SDSS's northern Galactic cap.
- Members: λ galaxies projected inside R_λ, **the BCG counted** (redMaPPer's λ sums the membership probabilities
  of every member, the central galaxy's included): the BCG at the centre, 3-5 L*, and λ - 1 satellites with a
  projected NFW profile (concentration 4 relative to R_λ, sampled by its inverse CDF) at uniform position
  angles, luminosities from a Schechter function (α = -1) brighter than 0.2 L* (redMaPPer's member limit).
  L* is M*_r = -21.5, an absolute magnitude in the rest-frame SDSS r band (AB, Planck18, no h). Every member has
  the CWW "E" spectrum redshifted to the cluster: apparent magnitudes are synthetic photometry of the redshifted
  template through SDSS's curves at the luminosity distance (a real k-correction, tabulated on a redshift grid
  and interpolated), each band with its own 0.05 mag Gaussian scatter (the red sequence's width; colours
  scatter by 0.05 √2).
- Field galaxies: counts N(<r) ∝ 10^(0.35 r), 10^4 per deg² to r < 22.5, drawn from r = 14 to 24 (fainter than
  0.2 L* at z = 0.5, r ≈ 23.7, so interlopers are complete at every redshift; below the noise they add a faint
  background); redshift log-normal (0.2 dex) around a median 0.1 x 10^(0.11 (r - 17)), within 0.01-1.5 (SDSS's
  main sample at r < 17.8 has z ~ 0.1; the whole n(z) peaks near 0.35, median 0.44); CWW templates mixed
  from 40/30/20/10 % E/Sbc/Scd/Im at r = 17 to 15/25/35/25 % at 22.5 (bluer when fainter).
- Stars: blackbodies with Balmer lines (:mod:`training.seds`) of 3,500-8,000 K, points, counts N(<r) ∝ 10^(0.2 r)
  from r = 14 to 22 at 0.3-1 per arcmin² (drawn per cluster, standing for its Galactic latitude).
- Field galaxies and stars cover the square of half-side R_λ, so that interlopers (field galaxies inside R_λ
  brighter in r than the member limit, whatever their colour) count over the whole circle; the image's sky area,
  and so the field count, grows to low redshift (0.13 deg² at z = 0.08, 0.008 deg² at 0.5).
- Sizes: half-light radii of 15 kpc (BCG), 3 kpc (E) or 4 kpc (discs), ± 0.15 dex, at the object's redshift.
- Observation, per cluster: r-band seeing FWHM uniform 1.0-1.6″, other bands scaled by (λ_centre / 6200 Å)^-0.2;
  zero points (magnitude of 1 ADU) around u 24.0, g 25.1, r 24.8, i 24.4, z 22.9 with 0.05 mag scatter;
  Gaussian sky noise from SDSS's 5σ point-source depths (u 22.0, g 22.2, r 22.2, i 21.3, z 20.5) defined on the
  native 0.396″ pixels under 1.3″ seeing (SDSS's median): σ_native = F_depth / (5 √(4π σ_psf²)), the
  noise-equivalent area of a Gaussian PSF.
- Images: the square of half-side 1 physical Mpc at the cluster's redshift (paper 4's "1 Mpc around the centre";
  R_λ reaches beyond it, so the image shows the cluster's inner part, as paper 4's did), rendered directly on a
  ``pixels`` x ``pixels`` grid: the pixel scale, 2 Mpc in arcsec / pixels, varies per cluster (64 px: 20″ at
  z = 0.08, 5″ at 0.5; 224 px, the paper's scale: 5.8″ to 1.4″) and is the ``pixel_scale_arcsec`` column. A
  resampled pixel sums (s / 0.396″)² native pixels, so its noise is σ_native · s / 0.396″.
- Renderer, vectorised (the issue asks for GalSim "or equivalent"; at these scales this is): every object is a
  circular Gaussian of σ² = σ_psf² + (r_half / 1.1774)² (the PSF a Gaussian of the band's FWHM; a Gaussian of
  that σ has the object's half-light radius), integrated over each pixel exactly with erf differences,
  separably, so a band's image is Gyᵀ · diag(flux) · Gx: one matrix product over all objects. Galaxies (≲ 2″,
  the BCG ≲ 10″) and the PSF are at or below a pixel here, so profile shapes (de Vaucouleurs wings,
  ellipticity, discs) and the PSF's Moffat wings change a pixel's flux little, and the flux is conserved. It
  stops being adequate on grids fine enough to resolve galaxies (pixels of ~1″ or less: the BCG's wings,
  low-redshift spirals, PSF wings around bright stars), where GalSim profiles are needed. Objects farther than
  6σ outside the grid are skipped (they would add < 1e-9 of their flux).
- :func:`cached_clusters` keeps each simulation under ``<EXPLORER_HOME>/cache/clusters/``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.cosmology import Planck18
from scipy.special import erf
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_directory
from explorer.core.config import cache_dir
from explorer.core.errors import InputError
from training import seds
from training.bandpasses import ab_magnitudes, splus_bands

BANDS = ("u", "g", "r", "i", "z")
NATIVE_PIXEL_ARCSEC = 0.396
HALF_SIDE_MPC = 1.0
PIXELS = 64
PIXELS_RANGE = (16, 512)
Z_RANGE = (0.08, 0.5)
RICHNESS_RANGE = (20, 150)
RICHNESS_SLOPE = 2.5                      # dN/dλ ∝ λ^-2.5
R_LAMBDA_H_MPC = 1.0                      # R_λ = 1.0 (λ/100)^0.2 h⁻¹ Mpc (Rykoff et al. 2014)
CONCENTRATION = 4.0                       # NFW scale radius R_λ / 4
M_STAR_R = -21.5                          # L*, rest-frame SDSS r, AB
SCHECHTER_ALPHA = -1.0
MEMBER_LIMIT_LSTAR = 0.2
BCG_LSTAR = (3.0, 5.0)
MEMBER_SCATTER_MAG = 0.05                 # per band: the red sequence's width
RADIUS_KPC = {"bcg": 15.0, "E": 3.0, "Sbc": 4.0, "Scd": 4.0, "Im": 4.0}
RADIUS_SCATTER_DEX = 0.15
FIELD_DENSITY_DEG2 = 1e4                  # galaxies to r < FIELD_DENSITY_R
FIELD_DENSITY_R = 22.5
FIELD_SLOPE = 0.35                        # N(<r) ∝ 10^(0.35 r)
FIELD_R_RANGE = (14.0, 24.0)
FIELD_Z_LIMITS = (0.01, 1.5)
FIELD_Z_PER_MAG = 0.11                    # median z = 0.1 x 10^(0.11 (r - 17))
FIELD_Z_SCATTER_DEX = 0.2
# Template mix of field galaxies at r = 17 and at r = 22.5, interpolated in r between them.
FIELD_TEMPLATES = {"E": (0.40, 0.15), "Sbc": (0.30, 0.25), "Scd": (0.20, 0.35), "Im": (0.10, 0.25)}
FIELD_TEMPLATE_R = (17.0, 22.5)
STAR_DENSITY_ARCMIN2 = (0.3, 1.0)         # to STAR_R_RANGE's faint end
STAR_SLOPE = 0.2
STAR_R_RANGE = (14.0, 22.0)
STAR_T = (3500.0, 8000.0)
SEEING_R_ARCSEC = (1.0, 1.6)
SEEING_REFERENCE_ANGSTROM = 6200.0
ZERO_POINTS = {"u": 24.0, "g": 25.1, "r": 24.8, "i": 24.4, "z": 22.9}
ZERO_POINT_SCATTER = 0.05
DEPTHS_5SIGMA = {"u": 22.0, "g": 22.2, "r": 22.2, "i": 21.3, "z": 20.5}
DEPTH_SEEING_ARCSEC = 1.3
FOOTPRINT = {"ra": (120.0, 250.0), "dec": (0.0, 60.0)}     # SDSS's northern Galactic cap, roughly
KINDS = ("bcg", "member", "field", "star")
FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))
HALF_LIGHT_PER_SIGMA = np.sqrt(2 * np.log(2))
Z_GRID = np.linspace(0.0, 1.6, 321)       # redshift tables: 0.005 steps, interpolated
SIMULATOR_VERSION = 1                     # bump when the sky changes: cached skies are then rendered again


@dataclass
class ClusterSky:
    images: np.ndarray          # float32 [N, 5, pixels, pixels], ADU
    catalog: pd.DataFrame       # one row per cluster
    objects: pd.DataFrame       # one row per object, some beyond the image: cluster (row), kind, x_mpc, ..., mag_<band>


def _bands():
    return [b for b in splus_bands() if b.name in BANDS]


@lru_cache(maxsize=None)
def _template_mags(template: str) -> np.ndarray:
    """AB magnitudes [Z_GRID, 5] of a CWW template at each redshift, minus its rest-frame r magnitude."""
    mags = ab_magnitudes(seds.galaxy(template, Z_GRID), bands=_bands())
    return mags - mags[0, BANDS.index("r")]


@lru_cache(maxsize=1)
def _distances() -> tuple[np.ndarray, np.ndarray]:
    """Distance modulus and arcsec per kpc on Z_GRID (from its second point: z = 0 has neither)."""
    z = Z_GRID[1:]
    arcsec_per_kpc = (1 * u.kpc / Planck18.angular_diameter_distance(z)).to_value(u.dimensionless_unscaled) * 206264.806
    return Planck18.distmod(z).to_value(u.mag), arcsec_per_kpc


def arcsec_per_kpc(z) -> np.ndarray:
    return np.interp(z, Z_GRID[1:], _distances()[1])


def red_sequence(z, luminosity_lstar=1.0) -> np.ndarray:
    """Apparent magnitudes [n, 5] of red-sequence (CWW E) galaxies of ``luminosity_lstar`` L* at redshifts ``z``."""
    z = np.atleast_1d(np.asarray(z, float))
    colours = np.stack([np.interp(z, Z_GRID, column) for column in _template_mags("E").T], axis=1)
    distance_modulus = np.interp(z, Z_GRID[1:], _distances()[0])
    return M_STAR_R + distance_modulus[:, None] + colours - 2.5 * np.log10(np.reshape(luminosity_lstar, (-1, 1)))


def _field_colours(template: str, z: np.ndarray) -> np.ndarray:
    """Magnitudes [n, 5] minus the r magnitude of a template at ``z``."""
    mags = np.stack([np.interp(z, Z_GRID, column) for column in _template_mags(template).T], axis=1)
    return mags - mags[:, [BANDS.index("r")]]


@lru_cache(maxsize=1)
def _star_colours() -> tuple[np.ndarray, np.ndarray]:
    temperature = np.linspace(*STAR_T, 91)
    mags = ab_magnitudes(seds.star(temperature), bands=_bands())
    return temperature, mags - mags[:, [BANDS.index("r")]]


@lru_cache(maxsize=1)
def _nfw_radius_cdf() -> tuple[np.ndarray, np.ndarray]:
    """R / R_λ and the fraction of members inside it: a projected NFW halo (Bartelmann 1996) cut at R_λ."""
    x = np.linspace(0.0, CONCENTRATION, 2049)[1:]              # R / r_s
    f = np.ones_like(x)                                         # F(1) = 1
    inner, outer = x < 1, x > 1
    f[inner] = np.arccosh(1 / x[inner]) / np.sqrt(1 - x[inner] ** 2)
    f[outer] = np.arccos(1 / x[outer]) / np.sqrt(x[outer] ** 2 - 1)
    enclosed = np.log(x / 2) + f                                # projected mass inside x, up to a constant
    return np.r_[0.0, x / CONCENTRATION], np.r_[0.0, enclosed / enclosed[-1]]


@lru_cache(maxsize=1)
def _schechter_cdf() -> tuple[np.ndarray, np.ndarray]:
    """L / L* and the fraction of members fainter: x^α e^-x above the member limit."""
    x = np.geomspace(MEMBER_LIMIT_LSTAR, 30.0, 4096)
    pdf = x ** SCHECHTER_ALPHA * np.exp(-x)
    cdf = np.r_[0.0, np.cumsum(np.diff(x) * (pdf[1:] + pdf[:-1]) / 2)]
    return x, cdf / cdf[-1]


def _inverse(rng: np.random.Generator, table: tuple[np.ndarray, np.ndarray], n: int) -> np.ndarray:
    values, cdf = table
    return np.interp(rng.uniform(0, 1, n), cdf, values)


def _counts(rng: np.random.Generator, n: int, slope: float, limits: tuple[float, float]) -> np.ndarray:
    """``n`` magnitudes from N(<m) ∝ 10^(slope m) within ``limits``."""
    low, high = (10 ** (slope * m) for m in limits)
    return np.log10(rng.uniform(low, high, n)) / slope


def _richness(rng: np.random.Generator) -> int:
    """An integer λ with P(λ) ∝ λ^-2.5 within RICHNESS_RANGE."""
    values = np.arange(RICHNESS_RANGE[0], RICHNESS_RANGE[1] + 1)
    weights = values ** -RICHNESS_SLOPE
    return int(rng.choice(values, p=weights / weights.sum()))


def _objects(kind: str, x, y, z, radius_kpc, mags, rng) -> dict:
    n = len(x)
    size = radius_kpc * 10 ** rng.normal(0, RADIUS_SCATTER_DEX, n) * arcsec_per_kpc(z) if radius_kpc else np.zeros(n)
    return {"kind": np.full(n, kind), "x_mpc": x, "y_mpc": y, "z": np.broadcast_to(z, (n,)).astype(float),
            "r_half_arcsec": size, "mags": mags}


def _members(rng: np.random.Generator, z: float, r_lambda: float, richness: int) -> list[dict]:
    radius = _inverse(rng, _nfw_radius_cdf(), richness - 1) * r_lambda
    angle = rng.uniform(0, 2 * np.pi, richness - 1)
    luminosity = np.r_[rng.uniform(*BCG_LSTAR), _inverse(rng, _schechter_cdf(), richness - 1)]
    mags = red_sequence(np.full(richness, z), luminosity) + rng.normal(0, MEMBER_SCATTER_MAG, (richness, len(BANDS)))
    return [_objects("bcg", np.zeros(1), np.zeros(1), z, RADIUS_KPC["bcg"], mags[:1], rng),
            _objects("member", radius * np.cos(angle), radius * np.sin(angle), z, RADIUS_KPC["E"], mags[1:], rng)]


def _field(rng: np.random.Generator, half_side_arcmin: float, mpc_per_arcmin: float) -> list[dict]:
    """Field galaxies (one dict per template) and stars over the square of this half-side."""
    area_arcmin2 = (2 * half_side_arcmin) ** 2
    faint, bright = (10 ** (FIELD_SLOPE * (m - FIELD_DENSITY_R)) for m in FIELD_R_RANGE[::-1])
    n = rng.poisson(FIELD_DENSITY_DEG2 / 3600 * area_arcmin2 * (faint - bright))
    r = _counts(rng, n, FIELD_SLOPE, FIELD_R_RANGE)
    z = np.clip(0.1 * 10 ** rng.normal(FIELD_Z_PER_MAG * (r - 17), FIELD_Z_SCATTER_DEX), *FIELD_Z_LIMITS)
    w = np.clip((r - FIELD_TEMPLATE_R[0]) / np.diff(FIELD_TEMPLATE_R), 0, 1)[:, None]
    mix = np.array(list(FIELD_TEMPLATES.values()))                       # [template, (bright, faint)]
    p = (1 - w) * mix[:, 0] + w * mix[:, 1]
    template = (rng.uniform(0, 1, (n, 1)) > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)
    xy = rng.uniform(-1, 1, (n, 2)) * half_side_arcmin * mpc_per_arcmin
    parts = []
    for k, name in enumerate(FIELD_TEMPLATES):
        mine = template == k
        mags = r[mine, None] + _field_colours(name, z[mine])
        parts.append(_objects("field", xy[mine, 0], xy[mine, 1], z[mine], RADIUS_KPC[name], mags, rng))
    density = rng.uniform(*STAR_DENSITY_ARCMIN2)
    stars = rng.poisson(density * area_arcmin2)
    temperature, colours = _star_colours()
    t = rng.uniform(*STAR_T, stars)
    mags = _counts(rng, stars, STAR_SLOPE, STAR_R_RANGE)[:, None] + \
        np.stack([np.interp(t, temperature, c) for c in colours.T], axis=1)
    xy = rng.uniform(-1, 1, (stars, 2)) * half_side_arcmin * mpc_per_arcmin
    parts.append(_objects("star", xy[:, 0], xy[:, 1], np.zeros(stars), 0.0, mags, rng))
    return parts


def draw_cluster(rng: np.random.Generator, pixels: int) -> tuple[dict, pd.DataFrame]:
    """One cluster's catalogue row (truth and observation) and its objects."""
    z = rng.uniform(*Z_RANGE)
    richness = _richness(rng)
    r_lambda = R_LAMBDA_H_MPC * (richness / 100) ** 0.2 / Planck18.h
    arcsec_per_mpc = float(arcsec_per_kpc(z)) * 1000
    ra = rng.uniform(*FOOTPRINT["ra"])
    dec = np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians(FOOTPRINT["dec"])))))
    seeing = rng.uniform(*SEEING_R_ARCSEC)
    row = {"ra": ra, "dec": dec, "z": z, "richness": richness, "ln_richness": np.log(richness),
           "r_lambda_mpc": r_lambda, "pixel_scale_arcsec": 2 * HALF_SIDE_MPC * arcsec_per_mpc / pixels,
           "seeing_r_arcsec": seeing}
    for band in _bands():
        row[f"fwhm_{band.name}"] = seeing * (band.centre_angstrom / SEEING_REFERENCE_ANGSTROM) ** -0.2
        row[f"zp_{band.name}"] = ZERO_POINTS[band.name] + rng.normal(0, ZERO_POINT_SCATTER)
    parts = _members(rng, z, r_lambda, richness) + _field(rng, r_lambda * arcsec_per_mpc / 60, 60 / arcsec_per_mpc)
    mags = np.concatenate([p.pop("mags") for p in parts])
    objects = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    objects.insert(3, "radius_mpc", np.hypot(objects["x_mpc"], objects["y_mpc"]))
    for b, band in enumerate(BANDS):
        objects[f"mag_{band}"] = mags[:, b]
    inside = (objects[["x_mpc", "y_mpc"]].abs() < HALF_SIDE_MPC).all(axis=1)
    field = objects["kind"] == "field"
    member_limit = red_sequence(z, MEMBER_LIMIT_LSTAR)[0, BANDS.index("r")]
    row["interlopers"] = int((field & (objects["radius_mpc"] < r_lambda) & (objects["mag_r"] < member_limit)).sum())
    row |= {f"bcg_mag_{band}": objects[f"mag_{band}"].iloc[0] for band in BANDS}
    row |= {"n_field": int((field & inside).sum()), "n_stars": int(((objects["kind"] == "star") & inside).sum())}
    return row, objects


def _pixel_integrals(centre: np.ndarray, sigma: np.ndarray, pixels: int) -> np.ndarray:
    """[n, pixels]: the fraction of each 1-D Gaussian falling in each pixel (edges at 0, 1, ..., pixels)."""
    edges = np.arange(pixels + 1.0)
    cumulative = 0.5 * erf((edges[None] - centre[:, None]) / (np.sqrt(2) * sigma[:, None]))
    return np.diff(cumulative, axis=1)


def render(objects: pd.DataFrame, cluster, pixels: int) -> np.ndarray:
    """Noiseless image float32 [5, pixels, pixels] (ADU; [band, y, x]) of ``objects`` seen as ``cluster`` (its
    pixel_scale_arcsec, fwhm_<band> and zp_<band>)."""
    to_pixels = pixels / (2 * HALF_SIDE_MPC)
    x = (objects["x_mpc"].to_numpy(float) + HALF_SIDE_MPC) * to_pixels
    y = (objects["y_mpc"].to_numpy(float) + HALF_SIDE_MPC) * to_pixels
    intrinsic = objects["r_half_arcsec"].to_numpy(float) / HALF_LIGHT_PER_SIGMA
    widest_psf = max(cluster[f"fwhm_{b}"] for b in BANDS) / FWHM_PER_SIGMA
    reach = 6 * np.hypot(widest_psf, intrinsic) / cluster["pixel_scale_arcsec"]
    near = (np.minimum(x, pixels - x) > -reach) & (np.minimum(y, pixels - y) > -reach)
    objects, x, y, intrinsic = objects[near], x[near], y[near], intrinsic[near]     # the rest send < 1e-9 in
    image = np.empty((len(BANDS), pixels, pixels), np.float32)
    for b, band in enumerate(BANDS):
        sigma = np.hypot(cluster[f"fwhm_{band}"] / FWHM_PER_SIGMA, intrinsic) / cluster["pixel_scale_arcsec"]
        flux = 10 ** (-0.4 * (objects[f"mag_{band}"].to_numpy(float) - cluster[f"zp_{band}"]))
        image[b] = (_pixel_integrals(y, sigma, pixels).T * flux) @ _pixel_integrals(x, sigma, pixels)
    return image


def noise_rms(cluster) -> np.ndarray:
    """Sky noise [5] (ADU per pixel) of ``cluster``'s grid: each band's 5σ depth on native pixels, summed."""
    native_psf_pixels = DEPTH_SEEING_ARCSEC / FWHM_PER_SIGMA / NATIVE_PIXEL_ARCSEC
    depth_flux = np.array([10 ** (-0.4 * (DEPTHS_5SIGMA[b] - cluster[f"zp_{b}"])) for b in BANDS])
    native = depth_flux / (5 * np.sqrt(4 * np.pi * native_psf_pixels ** 2))
    return native * cluster["pixel_scale_arcsec"] / NATIVE_PIXEL_ARCSEC


def simulate_clusters(n: int, seed: int = 0, *, pixels: int = PIXELS, noise: bool = True,
                      progress: bool = True) -> ClusterSky:
    """``n`` clusters: 5-band images, a catalogue and the objects. Cluster ``i`` uses its own generator, so the
    first clusters of a larger ``n`` are the same."""
    if n < 1:
        raise InputError(f"the number of simulated clusters must be at least 1, got {n}")
    if not PIXELS_RANGE[0] <= pixels <= PIXELS_RANGE[1]:
        raise InputError(f"cluster images are {PIXELS_RANGE[0]} to {PIXELS_RANGE[1]} px a side (data.pixels), "
                         f"got {pixels}")
    images = np.empty((n, len(BANDS), pixels, pixels), np.float32)
    rows, tables = [], []
    for i in tqdm(range(n), desc="rendering clusters", unit="cluster", disable=not progress):
        rng = np.random.default_rng([seed, 1, i])
        row, objects = draw_cluster(rng, pixels)
        images[i] = render(objects, row, pixels)
        if noise:                   # drawn last: the noiseless image is the same objects
            images[i] += rng.normal(0, noise_rms(row)[:, None, None], images[i].shape).astype(np.float32)
        rows.append(row)
        tables.append(objects.assign(cluster=np.int32(i)))
    catalog = pd.DataFrame(rows)
    catalog.insert(0, "id", [f"CL{seed:03d}-{i:06d}" for i in range(n)])
    catalog = catalog[list(columns())]
    catalog.attrs["bands"] = list(BANDS)
    objects = pd.concat(tables, ignore_index=True)
    stored = {"kind": pd.CategoricalDtype(KINDS)} | {c: np.float32 for c in objects.columns[1:-1]}   # halves the table
    objects = objects[["cluster", *objects.columns[:-1]]].astype(stored)
    return ClusterSky(images, catalog, objects)


def cached_clusters(n: int, seed: int = 0, *, pixels: int = PIXELS, progress: bool = True,
                    root: Path | None = None) -> ClusterSky:
    """:func:`simulate_clusters`, rendered once and then read from ``<root>/clusters/`` (default: the explorer's
    cache); a damaged copy is rendered again."""
    folder = Path(root or cache_dir()) / "clusters" / f"v{SIMULATOR_VERSION}-n{n}-seed{seed}-px{pixels}"
    try:
        catalog = pd.read_parquet(folder / "catalog.parquet")
        objects = pd.read_parquet(folder / "objects.parquet")
        images = np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False)
        if images.shape != (n, len(BANDS), pixels, pixels) or len(catalog) != n:
            raise ValueError(f"images {images.shape} for {len(catalog)} rows")
        catalog.attrs["bands"] = json.loads((folder / "bands.json").read_text())
        return ClusterSky(images, catalog, objects)
    except (OSError, ValueError) as e:
        if folder.exists() and progress:
            print(f"the simulated clusters {folder.name} are damaged ({e}); rendering them again")
    sky = simulate_clusters(n, seed, pixels=pixels, progress=progress)
    with atomic_directory(folder) as tmp:
        np.save(tmp / "images.npy", sky.images)
        sky.catalog.to_parquet(tmp / "catalog.parquet", index=False)
        sky.objects.to_parquet(tmp / "objects.parquet", index=False)
        (tmp / "bands.json").write_text(json.dumps(sky.catalog.attrs["bands"]))
    return sky


def columns() -> dict:
    """Unit and description of every catalogue column, in the catalogue's order."""
    described = {
        "id": ("", "cluster identifier"), "ra": ("deg", "right ascension of the centre (ICRS)"),
        "dec": ("deg", "declination of the centre (ICRS)"), "z": ("", "cluster redshift"),
        "richness": ("", "richness λ: members inside R_λ brighter than 0.2 L*, the BCG included"),
        "ln_richness": ("", "natural log of the richness"),
        "r_lambda_mpc": ("Mpc", "R_λ = 1.0 (λ/100)^0.2 h⁻¹ Mpc, physical"),
        "interlopers": ("", "field galaxies projected inside R_λ brighter (in r) than 0.2 L* at the cluster's z, "
                                "whatever their colour"),
        **{f"bcg_mag_{b}": ("mag", f"BCG {b} magnitude (AB)") for b in BANDS},
        "pixel_scale_arcsec": ("arcsec", "pixel scale of the image: 2 Mpc at the cluster's z over the grid"),
        "seeing_r_arcsec": ("arcsec", "r-band seeing FWHM"),
        **{f"fwhm_{b}": ("arcsec", f"{b} PSF FWHM") for b in BANDS},
        **{f"zp_{b}": ("mag", f"{b} zero point (magnitude of 1 ADU)") for b in BANDS},
        "n_field": ("", f"field galaxies in the image (r < {FIELD_R_RANGE[1]})"),
        "n_stars": ("", f"stars in the image (r < {STAR_R_RANGE[1]})"),
    }
    return {c: {"unit": unit, "description": text} for c, (unit, text) in described.items()}
