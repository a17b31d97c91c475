"""A 12-band S-PLUS-like sky (paper 2): stars, galaxies and quasars rendered with GalSim, measured with sep.

- Sources: 44 % stars, 42 % galaxies, 14 % quasars (paper 2's labelled mix). r magnitudes follow rising
  counts, N(<r) ∝ 10^(0.3 r) for galaxies and quasars and 10^(0.2 r) for stars, between r = 14 and 21.
  Spectra (:mod:`training.seds`): stars from 3,200 to 15,000 K; galaxies of the four CWW types at a redshift
  that grows with r; quasars at z = 0.3-3. Magnitudes in the 12 bands (:mod:`training.bandpasses`) are the
  spectrum's AB magnitudes, scaled to the drawn r.
- Morphology: stars and quasars are points; ellipticals de Vaucouleurs profiles, spirals a de Vaucouleurs
  bulge plus an exponential disc (B/T 0.4 for Sbc, 0.15 for Scd), irregulars exponential discs, with
  half-light radii of ~2.5 kpc (E) or ~4 kpc (discs) at their redshift (Planck18) and random ellipticity.
  Bulge and disc share the spectrum.
- Fields of ``FIELD_SIZE`` sources share an observation: a seeing (r-band FWHM 1.0-1.6″, wider in the blue as
  λ^-0.2), a Moffat PSF (β = 4.765, Kolmogorov turbulence) per band, and a zero point per band drawn around the band's own
  (± 0.1 mag), as S-PLUS's zero points vary per band and per field. Pixels: 0.55″, ADU with
  m = zp - 2.5 log10(ADU); Gaussian sky noise set by each band's 5σ depth in a 3″ aperture.
- Measured magnitudes: SExtractor's AUTO through ``sep`` — the source's ellipse found on the stamp summed over
  bands, its Kron radius, then the flux inside 2.5 Kron radii in each band — with their errors; and a size,
  ``fwhm_arcsec``: twice the r-band half-light radius (the FWHM of a Gaussian of that half-light radius).
- Inputs (:func:`observe`, paper 2's three): ``12band``, ``5band`` (u, g, r, i, z) or ``rgb`` (the Trilogy-like
  composite of the calibrated 12 bands, uint8 values), each cut with paper 2's crop: the central 32 px, or
  3 x ``fwhm_arcsec`` resized to 32 px when larger.
- :func:`cached_sky` keeps each simulated sky under ``<EXPLORER_HOME>/cache/splus/``, so that training, embedding,
  evaluation and the explorer's fine-tuning render it once.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.cosmology import Planck18
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_directory
from explorer.core.config import cache_dir
from explorer.core.errors import InputError
from explorer.core.preprocess import fwhm_crop
from training import seds
from training.bandpasses import BANDS, ab_magnitudes

PIXEL_SCALE_ARCSEC = 0.55
STAMP_PIXELS = 64                        # 35″: room for 3 x FWHM crops of the largest galaxies
CLASS_MIX = {"star": 0.44, "galaxy": 0.42, "quasar": 0.14}
R_RANGE = (14.0, 21.0)
COUNT_SLOPES = {"star": 0.2, "galaxy": 0.3, "quasar": 0.3}
FIELD_SIZE = 100
SEEING_R_ARCSEC = (1.0, 1.6)
MOFFAT_BETA = 4.765                       # Kolmogorov seeing (Trujillo et al. 2001)
# Approximate S-PLUS DR1-like zero points (mag of 1 ADU) and 5-sigma depths in a 3" aperture, per band.
ZERO_POINTS = dict(zip(BANDS, (21.0, 20.6, 20.4, 20.8, 20.9, 23.3, 21.1, 23.5, 21.3, 23.2, 21.2, 22.6)))
DEPTHS_5SIGMA = dict(zip(BANDS, (21.0, 20.7, 20.6, 20.6, 20.7, 21.6, 20.9, 21.4, 21.0, 21.0, 20.4, 20.4)))
ZERO_POINT_SCATTER = 0.1
TEMPLATE_MIX = {"E": 0.3, "Sbc": 0.3, "Scd": 0.25, "Im": 0.15}
BULGE_FRACTION = {"E": 1.0, "Sbc": 0.4, "Scd": 0.15, "Im": 0.0}
RADIUS_KPC = {"bulge": 2.5, "disc": 4.0}
QUASAR_Z = (0.3, 3.0)
STAR_T = (3200.0, 15000.0)
STRIPE_82 = {"ra": (-50.0, 50.0), "dec": (-1.25, 1.25)}     # S-PLUS DR1's footprint
KRON_FACTOR, KRON_MINIMUM = 2.5, 3.5     # SExtractor's PHOT_AUTOPARAMS defaults
# RGB composites as S-PLUS's Trilogy images: every band summed into one of R, G, B (reddest to bluest).
RGB_GROUPS = {"R": ("r", "F660", "i", "F861", "z"), "G": ("g", "F515"), "B": ("u", "F378", "F395", "F410", "F430")}
RGB_SOFTENING = 1e-4       # calibrated units (Eq. 3.2) per pixel: ~3x the r-band sky rms
RGB_SATURATION = 0.05      # the peak of an r ~ 14.5 star at 1.3" seeing
INPUTS = {"12band": BANDS, "5band": ("u", "g", "r", "i", "z"), "rgb": tuple(RGB_GROUPS)}
PARALLEL_MIN_SOURCES = 500  # a process per core when each gets at least this many sources
SIMULATOR_VERSION = 1      # bump when the sky changes: cached skies are then rendered again


@dataclass
class Sky:
    images: np.ndarray          # float32 [N, 12, STAMP_PIXELS, STAMP_PIXELS], ADU
    catalog: pd.DataFrame


def check_r_max(r_max: float, where: str = "") -> None:
    """A brighter limit must lie inside the sky's r range; ``where`` names the spec in the message."""
    if not R_RANGE[0] < r_max <= R_RANGE[1]:
        raise InputError(f"r_max must be above {R_RANGE[0]:g} and at most {R_RANGE[1]:g}{where}, got {r_max:g}")


def _counts(rng, m: int, slope: float, r_max: float) -> np.ndarray:
    low, high = (10 ** (slope * v) for v in (R_RANGE[0], r_max))
    return np.log10(rng.uniform(low, high, m)) / slope


def draw_sources(n: int, rng: np.random.Generator, r_max: float = R_RANGE[1]) -> pd.DataFrame:
    """The catalogue's truth: class, r, redshift, spectrum parameters, shape and the 12 true magnitudes.

    ``r_max`` below 21 draws the same counts laws to a brighter limit (paper 2's bright unlabelled set)."""
    classes = rng.choice(list(CLASS_MIX), size=n, p=list(CLASS_MIX.values()))
    r = np.empty(n)
    z = np.zeros(n)
    temperature = np.full(n, np.nan)
    template = np.full(n, "", dtype=object)
    spectra = np.empty((n, len(seds.WAVELENGTH_GRID)))
    for cls in CLASS_MIX:
        rows = np.flatnonzero(classes == cls)
        r[rows] = _counts(rng, len(rows), COUNT_SLOPES[cls], r_max)
        if cls == "star":
            temperature[rows] = np.exp(rng.uniform(*np.log(STAR_T), len(rows)))
            spectra[rows] = seds.star(temperature[rows])
        elif cls == "quasar":
            z[rows] = rng.uniform(*QUASAR_Z, len(rows))
            spectra[rows] = seds.quasar(z[rows])
        else:
            z[rows] = np.clip(10 ** rng.normal(np.log10(0.05 + 0.03 * (r[rows] - R_RANGE[0])), 0.15), 0.01, 0.8)
            template[rows] = rng.choice(list(TEMPLATE_MIX), size=len(rows), p=list(TEMPLATE_MIX.values()))
            for name in TEMPLATE_MIX:
                mine = rows[template[rows] == name]
                spectra[mine] = seds.galaxy(name, z[mine])
    colours = ab_magnitudes(spectra)
    mags = colours - colours[:, [BANDS.index("r")]] + r[:, None]
    scale = np.where(classes == "galaxy", (1 * u.kpc / Planck18.angular_diameter_distance(np.maximum(z, 0.01)))
                     .to_value(u.dimensionless_unscaled) * 206265.0, 0.0)      # arcsec per kpc
    bulge = np.array([BULGE_FRACTION.get(t, 0.0) for t in template])
    table = pd.DataFrame({"class": classes, "r_true": r, "z": np.round(z, 4), "temperature_k": np.round(temperature, 0),
                          "template": template, "bulge_fraction": bulge,
                          "bulge_radius_arcsec": RADIUS_KPC["bulge"] * scale * 10 ** rng.normal(0, 0.15, n),
                          "disc_radius_arcsec": RADIUS_KPC["disc"] * scale * 10 ** rng.normal(0, 0.15, n),
                          "e1": rng.normal(0, 0.2, n).clip(-0.6, 0.6), "e2": rng.normal(0, 0.2, n).clip(-0.6, 0.6)})
    for band, column in zip(BANDS, mags.T):
        table[f"mag_true_{band}"] = column
    return table


def draw_fields(m: int, rng: np.random.Generator) -> pd.DataFrame:
    """Per field: the r-band seeing, each band's PSF FWHM and zero point."""
    from training.bandpasses import splus_bands

    seeing = rng.uniform(*SEEING_R_ARCSEC, m)
    fields = {"seeing_r_arcsec": seeing}
    for band in splus_bands():
        fields[f"fwhm_{band.name}"] = seeing * (band.centre_angstrom / 6250.0) ** -0.2
        fields[f"zp_{band.name}"] = ZERO_POINTS[band.name] + rng.normal(0, ZERO_POINT_SCATTER, m)
    return pd.DataFrame(fields)


def noise_adu(depth_mag: float, zero_point: float, fwhm_arcsec: float) -> float:
    """Per-pixel sky rms that makes a point source of ``depth_mag`` a 5σ detection in a 3″-diameter aperture."""
    aperture_pixels = np.pi * (1.5 / PIXEL_SCALE_ARCSEC) ** 2
    flux = 10 ** (-0.4 * (depth_mag - zero_point))
    return float(flux / 5 / np.sqrt(aperture_pixels))


def _profile(source: pd.Series, flux: float):
    import galsim

    if source["class"] != "galaxy":
        return galsim.DeltaFunction(flux=flux)
    parts = []
    if source["bulge_fraction"] > 0:
        parts.append(galsim.DeVaucouleurs(half_light_radius=max(source["bulge_radius_arcsec"], 0.05),
                                          flux=flux * source["bulge_fraction"]))
    if source["bulge_fraction"] < 1:
        parts.append(galsim.Exponential(half_light_radius=max(source["disc_radius_arcsec"], 0.05),
                                        flux=flux * (1 - source["bulge_fraction"])))
    return galsim.Add(parts).shear(e1=source["e1"], e2=source["e2"])


def render(source: pd.Series, field: pd.Series, rng: np.random.Generator, *, noise: bool = True) -> np.ndarray:
    """One source's 12-band stamp float32 [12, STAMP_PIXELS, STAMP_PIXELS] in ADU."""
    import galsim

    stamp = np.empty((len(BANDS), STAMP_PIXELS, STAMP_PIXELS), np.float32)
    for b, band in enumerate(BANDS):
        zp = field[f"zp_{band}"]
        flux = 10 ** (-0.4 * (source[f"mag_true_{band}"] - zp))
        psf = galsim.Moffat(beta=MOFFAT_BETA, fwhm=field[f"fwhm_{band}"])
        image = galsim.Convolve(_profile(source, flux), psf).drawImage(nx=STAMP_PIXELS, ny=STAMP_PIXELS,
                                                                        scale=PIXEL_SCALE_ARCSEC)
        stamp[b] = image.array
        if noise:
            stamp[b] += rng.normal(0, noise_adu(DEPTHS_5SIGMA[band], zp, field[f"fwhm_{band}"]),
                                   stamp[b].shape).astype(np.float32)
    return stamp


def measure(stamp: np.ndarray, zero_points, noise_rms) -> tuple[np.ndarray, np.ndarray, float]:
    """AUTO-like magnitudes [12] and their errors [12] of the source at the stamp's centre, and its r-band size (″).

    The ellipse comes from sep's extraction on the band sum (the object nearest the centre); its Kron
    radius sets the aperture, 2.5 Kron radii (at least 1.75, SExtractor's minimum), summed in each band.
    """
    import sep

    summed = np.ascontiguousarray(stamp.sum(axis=0), dtype=np.float64)
    rms_sum = float(np.sqrt(np.sum(np.square(noise_rms)))) or 1e-12
    centre = (STAMP_PIXELS - 1) / 2
    objects = sep.extract(summed, 1.5, err=rms_sum, minarea=5)
    if len(objects) == 0:
        return np.full(len(BANDS), np.nan), np.full(len(BANDS), np.nan), float("nan")
    k = int(np.argmin(np.hypot(objects["x"] - centre, objects["y"] - centre)))
    obj = objects[k:k + 1]
    x, y, a, b, theta = obj["x"], obj["y"], obj["a"], obj["b"], obj["theta"]
    kron, _ = sep.kron_radius(summed, x, y, a, b, theta, 6.0)
    radius = np.maximum(KRON_FACTOR * kron, KRON_MINIMUM)
    mags, errors = [], []
    for plane, zp, rms in zip(stamp, zero_points, noise_rms):
        flux, error, _ = sep.sum_ellipse(np.ascontiguousarray(plane, dtype=np.float64), x, y, a, b, theta, radius,
                                         err=float(rms), subpix=5)
        detected = flux[0] > 0
        mags.append(float(zp - 2.5 * np.log10(flux[0])) if detected else np.nan)
        errors.append(float(2.5 / np.log(10) * error[0] / flux[0]) if detected else np.nan)
    return np.array(mags), np.array(errors), half_light_fwhm(stamp[BANDS.index("r")], x[0], y[0])


def half_light_fwhm(plane: np.ndarray, x: float, y: float) -> float:
    """Size (″) as the FWHM of the Gaussian with the same half-light radius: 2 r_50 (noise-robust; for the
    Moffat PSF of β = 4.765 it is 1.14 x the PSF's FWHM)."""
    import sep

    half, _ = sep.flux_radius(np.ascontiguousarray(plane, dtype=np.float64), np.array([x]), np.array([y]),
                              np.array([STAMP_PIXELS / 2 - 1.0]), 0.5, subpix=5)
    return float(2 * half[0] * PIXEL_SCALE_ARCSEC)


def calibrate(images: np.ndarray, zero_points: np.ndarray) -> np.ndarray:
    """Paper 2's Eq. 3.2, x 10^(5 - 0.4 zp) / ps², per source and band (``zero_points`` [N, 12])."""
    factor = 10 ** (5 - 0.4 * np.asarray(zero_points, np.float64)) / PIXEL_SCALE_ARCSEC ** 2
    return (np.asarray(images, np.float64) * factor[..., None, None]).astype(np.float32)


def rgb_composite(calibrated: np.ndarray) -> np.ndarray:
    """Trilogy-like colour images uint8 [N, 3, H, W] of calibrated 12-band stamps [N, 12, H, W]: each group of
    bands summed, then one asinh stretch with fixed levels for every source (so colours and brightness compare)."""
    channels = [calibrated[:, [BANDS.index(b) for b in group]].sum(axis=1) for group in RGB_GROUPS.values()]
    stacked = np.stack(channels, axis=1)
    stretched = np.arcsinh(np.clip(stacked, 0, None) / RGB_SOFTENING) / np.arcsinh(RGB_SATURATION / RGB_SOFTENING)
    return np.round(np.clip(stretched, 0, 1) * 255).astype(np.uint8)


def _observe_field(sources: pd.DataFrame, field: pd.Series, seed: int, start: int, noise: bool
                   ) -> tuple[np.ndarray, list[dict]]:
    """The stamps and sep measurements of one field's sources (rows ``start``... of the sky)."""
    zps = field[[f"zp_{b}" for b in BANDS]].to_numpy(float)
    rms = [noise_adu(DEPTHS_5SIGMA[b], field[f"zp_{b}"], field[f"fwhm_{b}"]) for b in BANDS] if noise else [0.0] * 12
    images = np.empty((len(sources), len(BANDS), STAMP_PIXELS, STAMP_PIXELS), np.float32)
    measured = []
    for j in range(len(sources)):
        images[j] = render(sources.iloc[j], field, np.random.default_rng([seed, 1, start + j]), noise=noise)
        mags, errors, fwhm = measure(images[j], zps, rms)
        measured.append({"fwhm_arcsec": fwhm, **{f"mag_{b}": m for b, m in zip(BANDS, mags)},
                         **{f"mag_err_{b}": e for b, e in zip(BANDS, errors)}})
    return images, measured


def simulate_sky(n: int, seed: int = 0, *, r_max: float = R_RANGE[1], noise: bool = True,
                 progress: bool = True) -> Sky:
    """``n`` sources with r from 14 to ``r_max``: their 12-band stamps and a catalogue of truth, observation and
    sep measurements."""
    if n < 1:
        raise InputError(f"the number of simulated sources must be at least 1, got {n}")
    check_r_max(r_max)
    rng = np.random.default_rng(seed)
    sources = draw_sources(n, rng, r_max)
    fields = draw_fields(-(-n // FIELD_SIZE), rng)
    starts = range(0, n, FIELD_SIZE)
    jobs = [(sources.iloc[a:a + FIELD_SIZE], fields.iloc[k], seed, a, noise) for k, a in enumerate(starts)]
    workers = min(os.cpu_count() or 1, n // PARALLEL_MIN_SOURCES)
    bar = tqdm(total=n, desc="rendering 12-band stamps", unit="source", disable=not progress)
    done = []
    if workers > 1:  # sources are independent (each its own generator), so the result is the same in parallel
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for out in pool.map(_observe_field, *zip(*jobs)):
                done.append(out)
                bar.update(len(out[1]))
    else:
        for job in jobs:
            done.append(_observe_field(*job))
            bar.update(len(done[-1][1]))
    bar.close()
    images = np.concatenate([d[0] for d in done])
    measured = [row for d in done for row in d[1]]
    ra = rng.uniform(*STRIPE_82["ra"], n) % 360
    dec = np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians(STRIPE_82["dec"])), n)))
    positions = pd.DataFrame({"id": [f"SPLUS{seed:03d}-{i:06d}" for i in range(n)], "ra": np.round(ra, 6),
                              "dec": np.round(dec, 6)})
    catalog = pd.concat([positions, sources, pd.DataFrame(measured),
                         fields.iloc[np.arange(n) // FIELD_SIZE].reset_index(drop=True)
                         .assign(field=np.arange(n) // FIELD_SIZE)], axis=1)
    catalog.attrs["bands"] = list(BANDS)
    return Sky(images, catalog)


def cached_sky(n: int, seed: int = 0, *, r_max: float = R_RANGE[1], progress: bool = True,
               root: Path | None = None) -> Sky:
    """:func:`simulate_sky`, rendered once and then read from ``<root>/splus/`` (default: the explorer's cache)."""
    limit = "" if r_max == R_RANGE[1] else f"-rmax{r_max:g}"
    folder = Path(root or cache_dir()) / "splus" / f"v{SIMULATOR_VERSION}-n{n}-seed{seed}{limit}"
    try:
        catalog = pd.read_parquet(folder / "catalog.parquet")
        images = np.load(folder / "stamps.npy", mmap_mode="r", allow_pickle=False)
        if images.shape != (n, len(BANDS), STAMP_PIXELS, STAMP_PIXELS) or len(catalog) != n:
            raise ValueError(f"stamps {images.shape} for {len(catalog)} rows")
        catalog.attrs["bands"] = json.loads((folder / "bands.json").read_text())
        return Sky(images, catalog)
    except (OSError, ValueError) as e:
        if folder.exists() and progress:
            print(f"the simulated sky {folder.name} is damaged ({e}); rendering it again")
    sky = simulate_sky(n, seed, r_max=r_max, progress=progress)
    with atomic_directory(folder) as tmp:
        np.save(tmp / "stamps.npy", sky.images)
        sky.catalog.to_parquet(tmp / "catalog.parquet", index=False)
        (tmp / "bands.json").write_text(json.dumps(sky.catalog.attrs["bands"]))
    return sky


def well_measured(sky: Sky, max_mag_err: float) -> Sky:
    """The sources measured in every band with a magnitude error of at most ``max_mag_err`` (an undetected band
    fails), as paper 2 cut its unlabelled set at 0.05 mag. Ids are kept, so a source stays traceable."""
    if np.isinf(max_mag_err):
        return sky
    errors = sky.catalog[[f"mag_err_{b}" for b in BANDS]].to_numpy(np.float64)
    keep = np.flatnonzero(np.nan_to_num(errors, nan=np.inf).max(axis=1) <= max_mag_err)
    catalog = sky.catalog.iloc[keep].reset_index(drop=True)
    catalog.attrs = dict(sky.catalog.attrs)
    return Sky(np.asarray(sky.images[keep]), catalog)


def observe(sky: Sky, inputs: str = "12band", pixels: int = 32) -> tuple[np.ndarray, list[str]]:
    """Paper 2's input ``inputs`` (:data:`INPUTS`) of every source, with its crop: float32 [N, C, pixels, pixels]
    and the channel names. The RGB composite is made from the calibrated 12 bands before the crop, as S-PLUS's
    pipeline made its colour images from whole fields."""
    if inputs not in INPUTS:
        raise InputError(f"input must be one of {', '.join(INPUTS)}, got {inputs!r}")
    catalog = sky.catalog
    if inputs == "rgb":
        zero_points = catalog[[f"zp_{b}" for b in BANDS]].to_numpy(np.float64)
        images = rgb_composite(calibrate(sky.images, zero_points)).astype(np.float32)
    else:
        images = np.asarray(sky.images[:, [BANDS.index(b) for b in INPUTS[inputs]]])
    fwhm = np.nan_to_num(catalog["fwhm_arcsec"].to_numpy(np.float64), nan=0.0)  # no size measured: the 32 px
    return fwhm_crop(images, fwhm, PIXEL_SCALE_ARCSEC, pixels), list(INPUTS[inputs])


def columns() -> dict:
    """Unit and description of every catalogue column."""
    described = {
        "id": ("", "source identifier"), "ra": ("deg", "right ascension (ICRS)"), "dec": ("deg", "declination (ICRS)"),
        "class": ("", "star, galaxy or quasar"), "r_true": ("mag", "true r magnitude (AB)"),
        "z": ("", "redshift (0 for stars)"), "temperature_k": ("K", "stellar temperature"),
        "template": ("", "galaxy spectrum (Coleman, Wu & Weedman 1980)"), "bulge_fraction": ("", "bulge-to-total flux"),
        "bulge_radius_arcsec": ("arcsec", "bulge half-light radius"), "disc_radius_arcsec": ("arcsec", "disc half-light radius"),
        "e1": ("", "ellipticity e1 (galaxies)"), "e2": ("", "ellipticity e2 (galaxies)"),
        "fwhm_arcsec": ("arcsec", "size: twice the measured r-band half-light radius"),
        "field": ("", "observation the source belongs to"), "seeing_r_arcsec": ("arcsec", "r-band seeing FWHM of the field"),
    }
    for band in BANDS:
        described |= {f"mag_true_{band}": ("mag", f"true {band} magnitude (AB)"),
                      f"mag_{band}": ("mag", f"{band} AUTO magnitude measured by sep (AB)"),
                      f"mag_err_{band}": ("mag", f"{band} AUTO magnitude error"),
                      f"fwhm_{band}": ("arcsec", f"{band} PSF FWHM of the field"),
                      f"zp_{band}": ("mag", f"{band} zero point of the field (magnitude of 1 ADU)")}
    return {c: {"unit": unit, "description": text} for c, (unit, text) in described.items()}
