"""Data specs: where training and embedding get their images.

``<DATA>`` is either a FITS catalogue directory (``catalog.csv`` + FITS images, the
layout of ``../shared/data/mirabest``) or a simulation spec (``sim:radio?n=5000&seed=0``, the FIRST-like sky of :mod:`training.simulate`;
``sim:lens?n=2000&seed=0&instrument=train&pairs=1``, the strong lenses of :mod:`training.lenses`,
``pairs=1`` adding a second rendering of each lens for LenSiam; ``sim:splus?n=5000&seed=0&input=12band``, the
12-band sky of :mod:`training.splus` at 0.55″ with paper 2's FWHM crop, as 12 bands, ``5band`` or ``rgb``
(``r_max=18`` draws it to a brighter limit and ``max_mag_err=0.05`` keeps the sources measured that well in every
band: paper 2's unlabelled set);
``sim:clusters?n=2000&seed=0``, the u, g, r, i, z galaxy clusters of :mod:`training.clusters`: a square of
half-side 1 Mpc around each centre on a ``data.pixels`` grid, so each cluster has its own pixel scale), or several
of them joined by `` + `` (``"../shared/data/mirabest + sim:radio?n=10000&seed=1"``): their sources in
one set, in that order, with a ``dataset`` column saying where each came from. The mixing ratio is
the ratio of their sizes (the simulator's ``n``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import numpy as np
import pandas as pd

from explorer.core.errors import InputError
from explorer.core.surveys import FIRST

MAX_SIMULATED = 200_000  # sources held in memory at 150 x 150 float32: 18 GB
SPEC_HELP = ("expected a FITS catalogue directory (catalog.csv + FITS files), sim:radio?n=5000&seed=0, "
             "sim:lens?n=2000&seed=0, sim:splus?n=5000&seed=0 or sim:clusters?n=2000&seed=0, "
             "or several joined by ' + '")
SIMULATIONS = {"radio": {"n": 5000, "seed": 0},                                    # training.simulate
               "lens": {"n": 2000, "seed": 0, "instrument": "train", "pairs": 0},  # training.lenses
               "splus": {"n": 5000, "seed": 0, "input": "12band", "r_max": 21.0,  # training.splus
                         "max_mag_err": float("inf")},
               "clusters": {"n": 2000, "seed": 0}}                                # training.clusters
MIX = " + "


@dataclass
class SourceSet:
    images: np.ndarray            # float32 [N, C, H, W], survey units (Jy/beam for radio)
    catalog: pd.DataFrame         # id, ra, dec, then properties; row-aligned with images
    columns: dict                 # column -> {"unit", "description"}
    spec: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) of unreadable images
    partners: np.ndarray | None = None  # a second rendering of each source (a simulator's positive pairs)


def parse_sim_spec(spec: str, simulations: dict = SIMULATIONS) -> dict:
    """``sim:radio?n=5000&seed=0`` -> {"kind": "radio", "n": 5000, "seed": 0} (defaults filled in).

    ``simulations``: the kinds allowed and their defaults (cutouts by default; the detector's fields
    are ``{"fields": ...}`` of :mod:`training.radio_fields`).
    """
    parsed = urlparse(spec)
    kind = parsed.path
    if kind not in simulations:
        examples = ", ".join(f"sim:{k}?" + "&".join(f"{p}={v}" for p, v in d.items()) for k, d in simulations.items())
        raise InputError(f"unknown simulation {kind!r} in {spec!r}; available: {examples}")
    params = dict(simulations[kind])
    for key, value in parse_qsl(parsed.query, keep_blank_values=True):
        if key not in params:
            raise InputError(f"unknown parameter {key!r} in {spec!r}; use {', '.join(params)}")
        if isinstance(params[key], str):
            params[key] = value
            continue
        if isinstance(params[key], float):
            try:
                params[key] = float(value)
            except ValueError:
                raise InputError(f"{key} must be a number in {spec!r}, got {value!r}") from None
            continue
        try:
            params[key] = int(value)
        except ValueError:
            raise InputError(f"{key} must be a whole number in {spec!r}, got {value!r}") from None
    if kind == "lens":
        from training.lenses import INSTRUMENTS

        if params["instrument"] not in INSTRUMENTS:
            raise InputError(f"instrument must be one of {', '.join(INSTRUMENTS)} in {spec!r}, "
                             f"got {params['instrument']!r}")
        if params["pairs"] not in (0, 1):
            raise InputError(f"pairs must be 0 or 1 in {spec!r}, got {params['pairs']}")
    if kind == "splus":
        from training.splus import INPUTS, check_r_max

        if params["input"] not in INPUTS:
            raise InputError(f"input must be one of {', '.join(INPUTS)} in {spec!r}, got {params['input']!r}")
        check_r_max(params["r_max"], f" in {spec!r}")
        if not params["max_mag_err"] > 0:
            raise InputError(f"max_mag_err must be a positive number of magnitudes in {spec!r}, "
                             f"got {params['max_mag_err']:g}")
    if not 0 <= params["seed"] < 2**32:
        raise InputError(f"seed must be within 0 to 2**32 - 1 in {spec!r}")
    if not 1 <= params["n"] <= MAX_SIMULATED:
        raise InputError(f"n must be within 1 to {MAX_SIMULATED:,} in {spec!r} (the simulation is held in memory)")
    return {"kind": kind, **params}


def data_folder(spec: str) -> Path:
    """The FITS catalogue directory a non-simulation spec names (every other spec is an InputError)."""
    path = Path(str(spec)).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise InputError(f"data {spec!r} is a file, not a folder; {SPEC_HELP}")
    raise InputError(f"unknown data spec {spec!r}: {SPEC_HELP}")


def mixed_parts(spec: str) -> list[str]:
    """The specs a (possibly mixed) data spec joins."""
    parts = [p.strip() for p in str(spec).split(MIX)]
    if len(parts) > 1 and not all(parts):
        raise InputError(f"data {spec!r} joins an empty spec; write A + B with a spec on each side")
    return parts


def dataset_name(spec: str) -> str:
    return spec.split("?")[0] if spec.startswith("sim:") else Path(spec).name


def load_data(spec: str, *, pixels: int = FIRST.pixels, pixel_scale_arcsec: float = FIRST.pixel_scale_arcsec,
              progress: bool = True, on_progress=None) -> SourceSet:
    spec = str(spec)
    parts = mixed_parts(spec)
    if len(parts) > 1:
        return _mix([load_data(p, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec, progress=progress,
                               on_progress=on_progress)
                     for p in parts], spec)
    if spec.startswith("sim:"):
        sim = parse_sim_spec(spec)
        if sim["kind"] == "lens":
            return _lenses(sim, spec, pixels, pixel_scale_arcsec, progress)
        if sim["kind"] == "splus":
            return _splus(sim, spec, pixels, pixel_scale_arcsec, progress)
        if sim["kind"] == "clusters":
            return _clusters(sim, spec, pixels, progress)
        from training.simulate import COLUMNS, simulate_sources

        images, catalog = simulate_sources(n=sim["n"], seed=sim["seed"], progress=progress)
        catalog.attrs["bands"] = ["image"]
        return SourceSet(images[:, None], catalog, dict(COLUMNS), spec)
    from explorer.core.fitsio import load_fits_catalogue

    path = data_folder(spec)
    images, catalog, columns, skipped = load_fits_catalogue(path, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec,
                                                            progress=progress, on_progress=on_progress)
    if len(catalog) == 0:
        raise InputError(f"no readable images in {path} ({len(skipped)} skipped)")
    return SourceSet(images, catalog, columns, str(path.resolve()), skipped=skipped)


def _lenses(sim: dict, spec: str, pixels: int, pixel_scale_arcsec: float, progress: bool) -> SourceSet:
    from training.lenses import COLUMNS, FIELD_ARCSEC, simulate_lenses

    if abs(pixels * pixel_scale_arcsec - FIELD_ARCSEC) > 1e-6 * FIELD_ARCSEC:
        raise InputError(f"{spec} renders a {FIELD_ARCSEC}\" field: data.pixels x data.pixel_scale_arcsec must be "
                         f"{FIELD_ARCSEC} (e.g. 55 px at 0.1\"/px), got {pixels} x {pixel_scale_arcsec}")
    lenses = simulate_lenses(sim["n"], sim["seed"], instrument=sim["instrument"], pixels=pixels,
                             pairs=bool(sim["pairs"]), progress=progress)
    lenses.catalog.attrs["bands"] = ["image"]
    return SourceSet(lenses.images[:, None], lenses.catalog, dict(COLUMNS), spec,
                     partners=None if lenses.partners is None else lenses.partners[:, None])


def _splus(sim: dict, spec: str, pixels: int, pixel_scale_arcsec: float, progress: bool) -> SourceSet:
    from training.splus import PIXEL_SCALE_ARCSEC, STAMP_PIXELS, cached_sky, columns, observe, well_measured

    if abs(pixel_scale_arcsec - PIXEL_SCALE_ARCSEC) > 1e-6 or not 8 <= pixels <= STAMP_PIXELS:
        raise InputError(f"{spec} renders {STAMP_PIXELS}-px stamps at {PIXEL_SCALE_ARCSEC}\"/px: data.pixel_scale_arcsec "
                         f"must be {PIXEL_SCALE_ARCSEC} and data.pixels at most {STAMP_PIXELS}, got {pixels} x "
                         f"{pixel_scale_arcsec}")
    sky = well_measured(cached_sky(sim["n"], sim["seed"], r_max=sim["r_max"], progress=progress), sim["max_mag_err"])
    if len(sky.catalog) == 0:
        raise InputError(f"{spec}: no source has every magnitude error within {sim['max_mag_err']:g} mag; raise "
                         f"max_mag_err, lower r_max or draw more sources")
    images, bands = observe(sky, sim["input"], pixels)
    catalog = sky.catalog.copy()
    catalog.attrs["bands"] = bands
    return SourceSet(images, catalog, columns(), spec)


def _clusters(sim: dict, spec: str, pixels: int, progress: bool) -> SourceSet:
    """Each image is the square of half-side 1 Mpc around its cluster on a ``pixels`` grid: the pixel scale is the
    catalogue's ``pixel_scale_arcsec``, one per cluster, so data.pixel_scale_arcsec (one number) is not checked."""
    from training.clusters import PIXELS_RANGE, cached_clusters, columns

    if not PIXELS_RANGE[0] <= pixels <= PIXELS_RANGE[1]:
        raise InputError(f"{spec} renders 1 Mpc around each cluster on a data.pixels grid of {PIXELS_RANGE[0]} to "
                         f"{PIXELS_RANGE[1]} px, got {pixels}")
    sky = cached_clusters(sim["n"], sim["seed"], pixels=pixels, progress=progress)
    return SourceSet(sky.images, sky.catalog.copy(), columns(), spec)


def _mix(sets: list[SourceSet], spec: str) -> SourceSet:
    shapes = {s.images.shape[1:] for s in sets}
    if len(shapes) > 1:
        raise InputError(f"the parts of {spec!r} have different image shapes {sorted(shapes)}; they cannot be mixed")
    bands = [s.catalog.attrs.get("bands") for s in sets]
    catalog = pd.concat([s.catalog.assign(dataset=dataset_name(s.spec)) for s in sets], ignore_index=True)
    catalog.attrs["bands"] = bands[0]
    columns = {k: v for s in reversed(sets) for k, v in s.columns.items()}
    columns["dataset"] = {"unit": "", "description": "which part of the mixed training data the source came from"}
    if any(s.partners is not None for s in sets):
        raise InputError(f"{spec!r} mixes a simulation's positive pairs with other data; train LenSiam on one lens set")
    return SourceSet(np.concatenate([s.images for s in sets]), catalog, columns, spec,
                     skipped=[x for s in sets for x in s.skipped])
