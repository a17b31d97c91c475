"""Simulated galaxy-galaxy strong lenses (paper 5), rendered with lenstronomy.

Each lens is a mass model (elliptical power law + external shear: the 8 parameters θ_E, e1, e2, θ1,
θ2, γ, γ1, γ2) seen through a *rendering*: lens light (elliptical Sérsic, its centre and ellipticity
offset from the mass by a Gaussian of σ = 2.5 % of the range), a source (Sérsic or core-Sérsic, some
with star-forming knots, 10 % with a second, merging galaxy), one PSF of a fixed bank, and Gaussian
noise. LenSiam's positive pair is two renderings of one mass model.

The field is paper 5's 5.5″ (110 px at 0.05″/px). Images are drawn at that resolution and
area-averaged onto the output grid (``pixels`` over the same field: 55 px at 0.1″/px on the CPU),
noise is added per output pixel, and each image is divided by its maximum.

Every parameter of a rendering is a catalogue column, and a rendering is a pure function of its row
(:func:`render_row`: knots and noise come from the row's own seeds), so a catalogue reproduces its
images. Ranges and the differences from the paper are in ``docs/lenses.md``.

    python -m training.lenses --n 2000 --seed 0 --out lenses/     # a FITS catalogue directory
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before numpy is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("lenses")

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve
from scipy.special import j1
from tqdm.auto import tqdm

from explorer.core.errors import InputError, cli_entry

LENS_SIMULATOR_VERSION = 1
FIELD_ARCSEC = 5.5                 # paper 5: 110 x 110 px at 0.05"/px
NATIVE_PIXELS = 110
NATIVE_SCALE = FIELD_ARCSEC / NATIVE_PIXELS
CPU_PIXELS = 55                    # the CPU default: 0.1"/px over the same field
INSTRUMENTS = ("train", "shifted")  # the test lenses' instrument: another PSF family and noise level
CHUNK = 100                         # rows rendered per task; fixed, so results never depend on the workers
MASS = ("theta_e", "e1", "e2", "theta1", "theta2", "gamma", "gamma1", "gamma2")

# Uniform ranges (arcsec where angular); Shajib et al. 2021-like, as the issue suggests.
MASS_RANGES = {"theta_e": (0.5, 2.0), "gamma": (1.8, 2.2), "e1": (-0.14, 0.14), "e2": (-0.14, 0.14),
               "theta1": (-0.1, 0.1), "theta2": (-0.1, 0.1), "gamma1": (-0.035, 0.035), "gamma2": (-0.035, 0.035)}
OFFSET_FRACTION = 0.025            # lens light offset from the mass: sigma = 2.5 % of the parameter's range
LIGHT_RANGES = {"light_r": (0.4, 1.5), "light_n": (2.0, 5.0), "light_to_arc": (0.3, 3.0)}
SOURCE_RANGES = {"source_x": (-0.25, 0.25), "source_y": (-0.25, 0.25), "source_r": (0.05, 0.3),
                 "source_n": (0.5, 2.5), "source_e1": (-0.2, 0.2), "source_e2": (-0.2, 0.2)}
CORE_SERSIC_FRACTION, KNOTS_FRACTION, MERGER_FRACTION = 0.3, 0.5, 0.1
SNR_RANGES = {"train": (20.0, 80.0), "shifted": (10.0, 40.0)}   # image maximum / noise sigma
PSF_BANK_SIZE = 23

COLUMNS = {
    "theta_e": {"unit": "arcsec", "description": "Einstein radius of the power-law mass"},
    "e1": {"unit": "", "description": "mass ellipticity component e1"},
    "e2": {"unit": "", "description": "mass ellipticity component e2"},
    "theta1": {"unit": "arcsec", "description": "mass centre, x offset from the field centre"},
    "theta2": {"unit": "arcsec", "description": "mass centre, y offset from the field centre"},
    "gamma": {"unit": "", "description": "power-law slope of the mass (2 = isothermal)"},
    "gamma1": {"unit": "", "description": "external shear component gamma1"},
    "gamma2": {"unit": "", "description": "external shear component gamma2"},
    "light_x": {"unit": "arcsec", "description": "lens light centre, x"},
    "light_y": {"unit": "arcsec", "description": "lens light centre, y"},
    "light_e1": {"unit": "", "description": "lens light ellipticity e1"},
    "light_e2": {"unit": "", "description": "lens light ellipticity e2"},
    "light_r": {"unit": "arcsec", "description": "lens light Sersic half-light radius"},
    "light_n": {"unit": "", "description": "lens light Sersic index"},
    "light_to_arc": {"unit": "", "description": "peak of the lens light over the peak of the lensed source"},
    "source_profile": {"unit": "", "description": "sersic or core_sersic"},
    "source_x": {"unit": "arcsec", "description": "source centre in the source plane, x (from the mass centre)"},
    "source_y": {"unit": "arcsec", "description": "source centre in the source plane, y (from the mass centre)"},
    "source_r": {"unit": "arcsec", "description": "source half-light radius"},
    "source_n": {"unit": "", "description": "source Sersic index"},
    "source_e1": {"unit": "", "description": "source ellipticity e1"},
    "source_e2": {"unit": "", "description": "source ellipticity e2"},
    "knots": {"unit": "", "description": "star-forming knots on the source (positions from knot_seed)"},
    "merger": {"unit": "", "description": "1 when a second source galaxy merges with the first"},
    "knot_seed": {"unit": "", "description": "seed of the knots and the merging galaxy"},
    "psf": {"unit": "", "description": "PSF of the instrument's bank, instrument:index"},
    "psf_fwhm": {"unit": "arcsec", "description": "FWHM of the PSF"},
    "snr": {"unit": "", "description": "image maximum over the noise sigma, before normalising to 1"},
    "noise_seed": {"unit": "", "description": "seed of the Gaussian noise"},
    "instrument": {"unit": "", "description": "train, or shifted (the test lenses' PSF family and noise)"},
}
RENDERING = [c for c in COLUMNS if c not in MASS]   # what the two views of a pair do not share


# ----------------------------------------------------------------------------- the PSF banks
def _moffat(r, fwhm, beta):
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    return (1 + (r / alpha) ** 2) ** -beta


def _airy(r, fwhm):
    x = np.pi * 1.0290 * np.maximum(r, 1e-9) / fwhm      # an Airy disk with that FWHM (0.5145 lambda/D * 2)
    return (2 * j1(x) / x) ** 2


@lru_cache(maxsize=None)
def psf_bank(instrument: str) -> tuple[tuple[np.ndarray, float], ...]:
    """23 HST-like PSF kernels at the native pixel scale with their FWHMs (arcsec), fixed for every run.

    ``train``: Gaussian, Moffat and Airy-like (with a Gaussian jitter) of FWHM 0.07-0.12″ and axis
    ratios 0.85-1. ``shifted``: a core + halo family (two Gaussians) of FWHM 0.10-0.16″.
    """
    rng = np.random.default_rng(12345 if instrument == "train" else 54321)
    half = 15
    y, x = np.mgrid[-half:half + 1, -half:half + 1] * NATIVE_SCALE
    bank = []
    for i in range(PSF_BANK_SIZE):
        q, angle = rng.uniform(0.85, 1.0), rng.uniform(0, np.pi)
        xr = x * np.cos(angle) + y * np.sin(angle)
        yr = (-x * np.sin(angle) + y * np.cos(angle)) / q
        r = np.hypot(xr, yr)
        if instrument == "train":
            fwhm = rng.uniform(0.07, 0.12)
            family = i % 3
            if family == 0:
                kernel = np.exp(-0.5 * (r / (fwhm / 2.3548)) ** 2)
            elif family == 1:
                kernel = _moffat(r, fwhm, rng.uniform(2.5, 4.5))
            else:
                kernel = fftconvolve(_airy(r, fwhm), np.exp(-0.5 * (np.hypot(x, y) / 0.01) ** 2), mode="same")
        else:
            fwhm = rng.uniform(0.10, 0.16)
            kernel = np.exp(-0.5 * (r / (fwhm / 2.3548)) ** 2) + 0.1 * np.exp(-0.5 * (r / (3 * fwhm / 2.3548)) ** 2)
        kernel = np.clip(kernel, 0, None)
        bank.append((kernel / kernel.sum(), float(fwhm)))
    return tuple(bank)


# ----------------------------------------------------------------------------- drawing parameters
def draw_mass(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({k: rng.uniform(*MASS_RANGES[k], n) for k in MASS})


def draw_rendering(rng: np.random.Generator, mass: pd.DataFrame, instrument: str) -> pd.DataFrame:
    """Lens light, source, PSF and noise for each mass model: everything a pair's views do not share."""
    n = len(mass)
    offset = {k: OFFSET_FRACTION * (MASS_RANGES[m][1] - MASS_RANGES[m][0])
              for k, m in (("x", "theta1"), ("y", "theta2"), ("e1", "e1"), ("e2", "e2"))}
    table = {
        "light_x": mass["theta1"] + rng.normal(0, offset["x"], n),
        "light_y": mass["theta2"] + rng.normal(0, offset["y"], n),
        "light_e1": mass["e1"] + rng.normal(0, offset["e1"], n),
        "light_e2": mass["e2"] + rng.normal(0, offset["e2"], n),
        "light_r": rng.uniform(*LIGHT_RANGES["light_r"], n),
        "light_n": rng.uniform(*LIGHT_RANGES["light_n"], n),
        "light_to_arc": np.exp(rng.uniform(*np.log(LIGHT_RANGES["light_to_arc"]), n)),
        "source_profile": np.where(rng.random(n) < CORE_SERSIC_FRACTION, "core_sersic", "sersic"),
        **{k: rng.uniform(*SOURCE_RANGES[k], n) for k in SOURCE_RANGES},
        "knots": np.where(rng.random(n) < KNOTS_FRACTION, rng.integers(2, 6, n), 0),
        "merger": (rng.random(n) < MERGER_FRACTION).astype(int),
        "knot_seed": rng.integers(0, 2**31, n),
    }
    psf = rng.integers(0, PSF_BANK_SIZE, n)
    bank = psf_bank(instrument)
    table.update(psf=[f"{instrument}:{i}" for i in psf], psf_fwhm=[bank[i][1] for i in psf],
                 snr=rng.uniform(*SNR_RANGES[instrument], n), noise_seed=rng.integers(0, 2**31, n),
                 instrument=instrument)
    return pd.DataFrame(table, index=mass.index)


# ----------------------------------------------------------------------------- rendering
@lru_cache(maxsize=None)
def _image_model(profile: str):
    """A lenstronomy ImageModel on the native grid, without PSF (convolved here with the drawn kernel)."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.Util.simulation_util import data_configure_simple

    data = ImageData(**data_configure_simple(NATIVE_PIXELS, NATIVE_SCALE, 1.0, 1.0))
    main = "CORE_SERSIC" if profile == "core_sersic" else "SERSIC_ELLIPSE"
    source = LightModel([main, "SERSIC_ELLIPSE"] + ["GAUSSIAN"] * 5)   # the merger and up to 5 knots
    return ImageModel(data, PSF(psf_type="NONE"), lens_model_class=LensModel(["EPL", "SHEAR"]),
                      source_model_class=source, lens_light_model_class=LightModel(["SERSIC_ELLIPSE"]))


def lens_kwargs(row) -> list[dict]:
    return [{"theta_E": row["theta_e"], "gamma": row["gamma"], "e1": row["e1"], "e2": row["e2"],
             "center_x": row["theta1"], "center_y": row["theta2"]},
            {"gamma1": row["gamma1"], "gamma2": row["gamma2"], "ra_0": 0.0, "dec_0": 0.0}]


def source_kwargs(row) -> list[dict]:
    """The source's components: main galaxy, merging galaxy (amplitude 0 when absent), knots."""
    rng = np.random.default_rng(int(row["knot_seed"]))
    x0, y0 = row["theta1"] + row["source_x"], row["theta2"] + row["source_y"]
    r, shape = row["source_r"], {"e1": row["source_e1"], "e2": row["source_e2"]}
    main = {"amp": 1.0, "R_sersic": r, "n_sersic": row["source_n"], "center_x": x0, "center_y": y0, **shape}
    if row["source_profile"] == "core_sersic":
        main.update(Rb=0.3 * r, gamma=rng.uniform(0.0, 0.5))
    angle, separation = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.4)
    merger = {"amp": rng.uniform(0.3, 1.0) * row["merger"], "R_sersic": rng.uniform(0.05, 0.2),
              "n_sersic": rng.uniform(0.5, 2.0), "e1": rng.uniform(-0.2, 0.2), "e2": rng.uniform(-0.2, 0.2),
              "center_x": x0 + separation * np.cos(angle), "center_y": y0 + separation * np.sin(angle)}
    knots = []
    for k in range(5):
        radius, phi = rng.uniform(0.3, 1.5) * r, rng.uniform(0, 2 * np.pi)
        knots.append({"amp": rng.uniform(0.1, 0.3) * (k < row["knots"]) * 2 * np.pi * r ** 2,
                      "sigma": rng.uniform(0.015, 0.04),
                      "center_x": x0 + radius * np.cos(phi), "center_y": y0 + radius * np.sin(phi)})
    return [main, merger, *knots]


def light_kwargs(row) -> list[dict]:
    return [{"amp": 1.0, "R_sersic": row["light_r"], "n_sersic": row["light_n"], "e1": row["light_e1"],
             "e2": row["light_e2"], "center_x": row["light_x"], "center_y": row["light_y"]}]


@lru_cache(maxsize=8)
def rebin_matrix(pixels: int) -> np.ndarray:
    """[pixels, NATIVE_PIXELS] area overlaps: out = R @ image @ R.T averages the native pixels onto the grid."""
    edges_out = np.linspace(0, NATIVE_PIXELS, pixels + 1)
    lo = np.maximum(edges_out[:-1, None], np.arange(NATIVE_PIXELS)[None])
    hi = np.minimum(edges_out[1:, None], np.arange(1, NATIVE_PIXELS + 1)[None])
    overlap = np.clip(hi - lo, 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def render_row(row, pixels: int = CPU_PIXELS, *, noise: bool = True, lens_light: bool = True,
               psf: bool = True) -> np.ndarray:
    """One rendering [pixels, pixels], float32, maximum 1 (the switches serve the tests)."""
    model = _image_model(row["source_profile"])
    arcs = model.source_surface_brightness(source_kwargs(row), lens_kwargs(row), unconvolved=True)
    image = arcs / max(arcs.max(), 1e-30)
    if lens_light:
        light = model.lens_surface_brightness(light_kwargs(row), unconvolved=True)
        image = image + row["light_to_arc"] * light / light.max()
    if psf:
        kernel = psf_bank(row["instrument"])[int(str(row["psf"]).split(":")[1])][0]
        image = fftconvolve(image, kernel, mode="same")
    rebin = rebin_matrix(pixels)
    image = rebin @ image @ rebin.T
    image /= image.max()
    if noise:
        image = image + np.random.default_rng(int(row["noise_seed"])).normal(0, 1 / row["snr"], image.shape)
        image /= image.max()
    return image.astype(np.float32)


def _render_rows(args) -> np.ndarray:
    table, pixels = args
    with_threads(1)
    return np.stack([render_row(row, pixels) for _, row in table.iterrows()])


def with_threads(n: int) -> None:
    """One BLAS thread per worker process: the workers are the parallelism."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)


def render(table: pd.DataFrame, pixels: int, *, progress: bool = True, workers: int | None = None) -> np.ndarray:
    """Every row of ``table`` rendered, [N, pixels, pixels], in fixed chunks over worker processes."""
    chunks = [(table.iloc[i:i + CHUNK], pixels) for i in range(0, len(table), CHUNK)]
    workers = workers or min(len(os.sched_getaffinity(0)), len(chunks)) or 1
    bar = tqdm(total=len(table), desc="rendering lenses", unit="image", disable=not progress)
    out = []
    if workers == 1:
        for chunk in chunks:
            out.append(_render_rows(chunk))
            bar.update(len(chunk[0]))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for chunk, images in zip(chunks, pool.map(_render_rows, chunks)):
                out.append(images)
                bar.update(len(chunk[0]))
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, pixels, pixels), np.float32)


# ----------------------------------------------------------------------------- the lens set
def _sky_positions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions on the sky, so the catalogue has a WCS like a survey's (uniform on the sphere)."""
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))


@dataclass
class LensSet:
    images: np.ndarray                        # [N, pixels, pixels], the first rendering of each lens
    catalog: pd.DataFrame                     # id, ra, dec, the mass and the first rendering's parameters
    partners: np.ndarray | None = None        # the second rendering (pairs=True)
    partner_catalog: pd.DataFrame | None = None   # the mass and the second rendering's parameters


def simulate_lenses(n: int, seed: int = 0, *, instrument: str = "train", pixels: int = CPU_PIXELS,
                    pairs: bool = False, progress: bool = True) -> LensSet:
    """``n`` lenses; ``pairs`` adds a second rendering of every mass model (LenSiam's positive pairs)."""
    if instrument not in INSTRUMENTS:
        raise InputError(f"unknown instrument {instrument!r}; choose one of {', '.join(INSTRUMENTS)}")
    rng = np.random.default_rng([seed, 5])
    mass = draw_mass(rng, n)
    first = draw_rendering(rng, mass, instrument)
    second = draw_rendering(rng, mass, instrument)   # drawn either way: a set's first views never depend on pairs
    ra, dec = _sky_positions(rng, n)
    ids = [f"LENS-{seed}-{instrument}-{i:06d}" for i in range(n)]
    catalog = pd.concat([pd.DataFrame({"id": ids, "ra": ra, "dec": dec}), mass, first], axis=1)
    lenses = LensSet(render(catalog, pixels, progress=progress), catalog)
    if pairs:
        lenses.partner_catalog = pd.concat([mass, second], axis=1)
        lenses.partners = render(lenses.partner_catalog, pixels, progress=progress)
    return lenses


def einstein_ring_radius(image: np.ndarray, pixel_scale: float, level: float = 0.3) -> float:
    """Radius (arcsec) of the ring or arcs about the image centre: the flux-weighted mean distance of the pixels
    brighter than ``level`` of the maximum (an SIE's images of a centred source straddle θ_E along its axes)."""
    n = image.shape[-1]
    y, x = np.indices(image.shape) - (n - 1) / 2
    bright = image > level * image.max()
    return float(np.average(np.hypot(x, y)[bright], weights=image[bright]) * pixel_scale)


@cli_entry
def main(argv=None):
    from training import cli
    from training.simulate import make_wcs, write_fits_catalogue

    args = cli.parser("lenses").parse_args(argv)
    lenses = simulate_lenses(args.n, args.seed, instrument=args.instrument, pixels=args.pixels)
    scale = FIELD_ARCSEC / args.pixels
    header = make_wcs(0.0, 0.0, args.pixels, scale).to_header()
    header["BUNIT"] = ("", "normalised to a maximum of 1")
    header["TELESCOP"] = ("SIMULATED", f"HST-like strong lens, {args.instrument} PSF bank (training.lenses)")
    write_fits_catalogue(args.out, lenses.images, lenses.catalog, pixel_scale_arcsec=scale, columns=COLUMNS,
                         header=header,
                         provenance={"generator": "training.lenses", "version": LENS_SIMULATOR_VERSION,
                                     "n": args.n, "seed": args.seed, "instrument": args.instrument})
    print(f"{args.n} lenses: {args.out}")


if __name__ == "__main__":
    main()
