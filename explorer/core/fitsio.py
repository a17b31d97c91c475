"""FITS images and FITS catalogue directories, the project's real-data format.

A **FITS catalogue directory** (the layout of ``../shared/data/mirabest``)::

    catalog.csv     one row per source: file (path relative to the folder), ra, dec (deg, ICRS),
                    then any property columns. Multi-band: one ``file_<band>`` column per band
                    instead of ``file`` (bands keep the column order), or ``file`` pointing at cubes.
    columns.yaml    optional: {column: {unit: ..., description: ...}} for the property columns
    *.fits[.gz]     the images, each with a celestial WCS

:func:`read_image` reads one image robustly (survey headers with tabs in COMMENT cards,
degenerate frequency/Stokes axes); :func:`cutout_at` cuts a square around a sky position
through the WCS, resampling when the file's pixel scale differs from the requested one;
:func:`load_fits_catalogue` does both for every catalogue row, skipping and naming files
it cannot use instead of failing.
"""
from __future__ import annotations

import gzip
import io
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import astropy.units as u
import numpy as np
import pandas as pd
import yaml
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.nddata.utils import NoOverlapError
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage
from tqdm.auto import tqdm

from explorer.core.errors import InputError
from explorer.core.surveys import FIRST

CATALOG_FILE = "catalog.csv"
COLUMNS_FILE = "columns.yaml"
NAME_COLUMNS = ("id", "name", "rgz_name", "source_name", "objname")
PIXEL_SCALE_TOLERANCE = 0.01  # relative; within it a file's pixels are used as they are
IMAGE_HDUS = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
COMMENTARY = ("COMMENT", "HISTORY", "")

# Defaults for columns without a columns.yaml entry: common names, then unit suffixes.
KNOWN_COLUMNS = {
    "id": ("", "source identifier"),
    "ra": ("deg", "right ascension (ICRS)"),
    "dec": ("deg", "declination (ICRS)"),
    "z": ("", "redshift"),
    "redshift": ("", "redshift"),
    "las_arcsec": ("arcsec", "largest angular size"),
    "size": ("arcsec", "largest angular extent"),
    "log_lum_1p4ghz": ("log10(W/Hz)", "1.4 GHz radio luminosity"),
    "label_code": ("", "MiraBest code: FR class, confidence, morphology digits"),
    "fr_class": ("", "Fanaroff-Riley class (FRI / FRII / hybrid)"),
    "confidence": ("", "label confidence (confident / uncertain)"),
    "morphology": ("", "morphology (standard / double-double / wide-angle tail / head-tail)"),
}
UNIT_SUFFIXES = {"_arcsec": "arcsec", "_arcmin": "arcmin", "_deg": "deg", "_mjy": "mJy", "_jy": "Jy",
                 "_kpc": "kpc", "_mpc": "Mpc", "_ghz": "GHz", "_mhz": "MHz"}


class BlankImageError(InputError):
    """An image with no finite pixel: survey services send these where they have no data."""


def read_image(source: str | Path | bytes, *, name: str | None = None) -> tuple[np.ndarray, WCS, fits.Header]:
    """(pixels, celestial WCS, header) of the first image HDU with data.

    ``source`` is a path (.fits or .fits.gz) or the bytes of an uncompressed FITS file
    (``name`` then labels it in messages).
    Pixels are float32 [H, W], or [C, H, W] when the file has one non-degenerate
    non-celestial axis (a cube); degenerate frequency/Stokes axes are dropped.
    Every problem is an InputError naming the file.
    """
    name = name or (Path(source).name if not isinstance(source, bytes) else "upload")
    with _fits_file(source, name) as hdul:
        hdu = _first_image_hdu(hdul, name)
        data = np.asarray(hdu.data, dtype=np.float32)
        header = hdu.header
    wcs = header_wcs(header, name)
    data = _celestial_axes_last(data, wcs, name)
    finite = data[np.isfinite(data)]
    if not finite.size:
        raise BlankImageError(f"{name}: every pixel is NaN or infinite (a blank image)")
    if finite.min() == finite.max():
        raise BlankImageError(f"{name}: every pixel has the same value ({finite[0]:g}): an empty image")
    return data, wcs.celestial, header


def read_image_header(path: str | Path) -> tuple[fits.Header, WCS]:
    """Header and celestial WCS of the first image HDU, without reading any pixels.

    The primary header is parsed straight from the (decompressed) stream; only files
    whose image sits in an extension are opened as a whole.
    """
    path = Path(path)
    with _reading(path):
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            header = fits.Header.fromfile(f)
    if not _is_image(header):
        with _fits_file(path, path.name) as hdul:
            header = _first_image_hdu(hdul, path.name).header
    return header, header_wcs(header, path.name).celestial


@contextmanager
def _reading(path: Path | None, name: str | None = None) -> Iterator[None]:
    """Any failure while reading becomes an InputError naming the file."""
    name = name or path.name
    try:
        yield
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{name}: file not found ({path})") from None
    except Exception as e:  # truncated gzip, bad padding, garbage bytes: astropy raises many types
        raise InputError(f"{name}: not a readable FITS file ({plain_reason(e)})") from None


def plain_reason(error: Exception) -> str:
    """What went wrong, in words a user can act on, instead of astropy's advice to its own callers."""
    text = str(error).lower()
    if isinstance(error, (gzip.BadGzipFile, EOFError)) or "compressed file ended" in text or "crc" in text:
        return "the gzip stream is corrupt or cut short"
    if "simple" in text or "empty or corrupt" in text or "no simple card" in text:
        return "it does not begin with a FITS header: is it a FITS file?"
    if "buffer is too small" in text or "truncated" in text or "smaller than" in text:
        return "the file is shorter than its header says: it was cut short, download it again"
    if "header missing end card" in text or "end card" in text:
        return "its header has no END card: the file is damaged"
    return f"its structure could not be parsed ({type(error).__name__})"


@contextmanager
def _fits_file(source: str | Path | bytes, name: str) -> Iterator[fits.HDUList]:
    in_memory = isinstance(source, bytes)
    with _reading(None if in_memory else Path(source), name):
        if not in_memory and str(source).lower().endswith(".gz"):
            # Decompressed whole: gzip checks the CRC at the end of the stream, which astropy's
            # lazy reader never reaches, so a corrupt file would load garbage pixels.
            source, in_memory = gzip.decompress(Path(source).read_bytes()), True
        with fits.open(io.BytesIO(source) if in_memory else source, memmap=False) as hdul:
            yield hdul


def _is_image(header: fits.Header) -> bool:
    naxis = header.get("NAXIS", 0)
    return naxis >= 2 and all(header.get(f"NAXIS{i}", 0) > 0 for i in range(1, naxis + 1))


def _first_image_hdu(hdul: fits.HDUList, name: str):
    hdu = next((h for h in hdul if isinstance(h, IMAGE_HDUS) and _is_image(h.header)), None)
    if hdu is None:
        kinds = ", ".join(type(h).__name__ for h in hdul)
        raise InputError(f"{name}: no image HDU with 2-D data (found {kinds})")
    return hdu


def header_wcs(header: fits.Header, name: str) -> WCS:
    """The header's WCS, which must have celestial axes."""
    # Commentary cards carry no WCS; leaving them out avoids the VerifyWarnings that
    # survey headers (tab characters in COMMENT) raise, without touching warning filters.
    wcs_header = fits.Header([c for c in header.cards if c.keyword not in COMMENTARY])
    try:
        wcs = WCS(wcs_header)
    except Exception as e:  # wcslib rejects malformed headers with several exception types
        raise InputError(f"{name}: invalid WCS in the header ({type(e).__name__}: {e})") from None
    if not wcs.has_celestial:
        ctypes = ", ".join(repr(c) for c in wcs.wcs.ctype if c) or "none"
        raise InputError(f"{name}: no celestial WCS (CTYPE: {ctypes}); the image cannot be placed on the sky")
    return wcs


def _celestial_axes_last(data: np.ndarray, wcs: WCS, name: str) -> np.ndarray:
    """Move the two celestial axes last, drop degenerate others, keep at most one band axis first."""
    ndim = data.ndim
    celestial = sorted((ndim - 1 - wcs.wcs.lng, ndim - 1 - wcs.wcs.lat))  # FITS axis i is numpy axis ndim-1-i
    if wcs.naxis != ndim or min(celestial) < 0:
        raise InputError(f"{name}: the WCS has {wcs.naxis} axes but the image has {ndim}")
    others = [a for a in range(ndim) if a not in celestial]
    data = np.transpose(data, others + celestial)
    data = data.reshape([s for s in data.shape[:len(others)] if s > 1] + list(data.shape[len(others):]))
    if data.ndim > 3:
        raise InputError(f"{name}: {data.ndim - 2} non-celestial axes with more than one plane; "
                         "expected a 2-D image or one band axis")
    return np.ascontiguousarray(data)


def wcs_pixel_scale_arcsec(wcs: WCS) -> np.ndarray:
    """Pixel sizes (x, y) in arcsec at the reference point."""
    return proj_plane_pixel_scales(wcs.celestial) * 3600


def cutout_with_wcs(data: np.ndarray, wcs: WCS, coord: SkyCoord, pixels: int,
                    pixel_scale_arcsec: float) -> tuple[np.ndarray, WCS]:
    """A ``pixels``-square cutout of [H, W] or [C, H, W] data centred on ``coord``, and its WCS.

    When the file's pixels are the requested size, the cutout is cut with ``Cutout2D``
    (the position lands within half a pixel of the centre); otherwise the image is
    resampled onto a TAN grid of the requested scale centred exactly on ``coord``.
    Outside the image the cutout is NaN.
    """
    scales = wcs_pixel_scale_arcsec(wcs)
    if np.all(np.abs(scales / pixel_scale_arcsec - 1) <= PIXEL_SCALE_TOLERANCE):
        return _cut(data, wcs, coord, pixels)
    return _resample(data, wcs, coord, pixels, pixel_scale_arcsec)


def cutout_at(data: np.ndarray, wcs: WCS, coord: SkyCoord, pixels: int, pixel_scale_arcsec: float) -> np.ndarray:
    """The pixels of :func:`cutout_with_wcs` (float32 [pixels, pixels] or [C, pixels, pixels])."""
    return cutout_with_wcs(data, wcs, coord, pixels, pixel_scale_arcsec)[0]


def _cut(data: np.ndarray, wcs: WCS, coord: SkyCoord, pixels: int) -> tuple[np.ndarray, WCS]:
    planes = data.reshape(-1, *data.shape[-2:])
    # The position in pixels once, so every plane gets identical slices.
    xy = tuple(float(v) for v in wcs.world_to_pixel(coord))
    out = []
    try:
        for plane in planes:
            cut = Cutout2D(plane, xy, (pixels, pixels), wcs=wcs, mode="partial", fill_value=np.nan, copy=True)
            out.append(cut.data)
    except NoOverlapError:
        raise InputError(f"position {_radec(coord)} is outside the image") from None
    stack = np.stack(out).astype(np.float32)
    _require_overlap(stack, coord)
    return stack.reshape(*data.shape[:-2], pixels, pixels), cut.wcs


def target_wcs(coord: SkyCoord, pixels: int, pixel_scale_arcsec: float) -> WCS:
    """A north-up, east-left TAN grid of ``pixels`` square pixels centred exactly on ``coord``."""
    icrs = coord.icrs
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [icrs.ra.deg, icrs.dec.deg]
    w.wcs.crpix = [(pixels + 1) / 2, (pixels + 1) / 2]  # FITS pixels are 1-based
    w.wcs.cdelt = [-pixel_scale_arcsec / 3600, pixel_scale_arcsec / 3600]
    w.wcs.radesys = "ICRS"
    w.pixel_shape = (pixels, pixels)
    return w


def _resample(data: np.ndarray, wcs: WCS, coord: SkyCoord, pixels: int,
              pixel_scale_arcsec: float) -> tuple[np.ndarray, WCS]:
    out_wcs = target_wcs(coord, pixels, pixel_scale_arcsec)
    yy, xx = np.mgrid[:pixels, :pixels]
    src_x, src_y = wcs.world_to_pixel(out_wcs.pixel_to_world(xx, yy))
    # Shrinking: smooth first so fine structure does not alias into the coarser grid.
    shrink = pixel_scale_arcsec / wcs_pixel_scale_arcsec(wcs).min()
    planes = []
    for plane in data.reshape(-1, *data.shape[-2:]):
        if shrink > 1.5:
            plane = ndimage.gaussian_filter(plane, sigma=(shrink - 1) / 2, mode="nearest")
        planes.append(ndimage.map_coordinates(plane, [src_y, src_x], order=1, mode="constant", cval=np.nan))
    stack = np.stack(planes).astype(np.float32)
    _require_overlap(stack, coord)
    return stack.reshape(*data.shape[:-2], pixels, pixels), out_wcs


MAX_BLANK_FRACTION = 0.5  # a catalogue cutout with more of it outside the image is skipped


def usable_cutout(cut: np.ndarray, name: str) -> np.ndarray:
    """``cut`` when it can train or embed: mostly inside the image, and no constant plane."""
    blank = float(np.mean(~np.isfinite(cut)))
    if blank > MAX_BLANK_FRACTION:
        raise InputError(f"{name}: {blank:.0%} of the cutout lies outside the image")
    for plane in cut.reshape(-1, *cut.shape[-2:]):
        finite = plane[np.isfinite(plane)]
        if not finite.size:
            raise InputError(f"{name}: a band of the cutout lies wholly outside the image")
        if finite.min() == finite.max():
            raise InputError(f"{name}: the cutout is constant ({finite[0]:g} everywhere): no source to see")
    return cut


def _require_overlap(stack: np.ndarray, coord: SkyCoord) -> None:
    if not np.isfinite(stack).any():
        raise InputError(f"position {_radec(coord)} is outside the image (or only blank pixels are there)")


def _radec(coord: SkyCoord) -> str:
    icrs = coord.icrs
    return f"RA {icrs.ra.deg:.5f}, Dec {icrs.dec.deg:+.5f}"


# ---------------------------------------------------------------- catalogue directories

@dataclass
class _Row:
    paths: list[Path]
    coord: SkyCoord


def load_fits_catalogue(directory: str | Path, *, pixels: int = FIRST.pixels,
                        pixel_scale_arcsec: float = FIRST.pixel_scale_arcsec,
                        progress: bool = True, workers: int | None = None,
                        on_progress: Callable[[int, int], None] | None = None
                        ) -> tuple[np.ndarray, pd.DataFrame, dict, list[tuple[str, str]]]:
    """Every usable row of a FITS catalogue directory, cut at ``pixels`` x ``pixel_scale_arcsec``.
    ``on_progress(done, total)`` hears about every image read (the app's progress bar).

    Returns ``(images, catalog, columns, skipped)``:

    - images: float32 [N, C, pixels, pixels] in survey units, NaN outside the survey;
    - catalog: the rows that loaded, file columns dropped, ``id`` first (a name column if
      there is one, else the file stem), then ra, dec and the properties;
      ``catalog.attrs["bands"]`` lists the band names in channel order;
    - columns: {column: {"unit", "description"}} from ``columns.yaml`` or defaults;
    - skipped: [(file, reason)] for rows that could not be used.
    """
    directory = Path(directory).expanduser()
    table = read_catalog_csv(directory)
    files, bands = file_columns(table)
    catalog, positions, skipped = _with_positions(table, files)
    rows = [_Row([_resolve(directory, catalog.at[i, c]) for c in files], positions[k])
            for k, i in enumerate(catalog.index)]

    def load(row: _Row) -> np.ndarray | str:
        try:
            planes = [usable_cutout(cutout_at(*read_image(p)[:2], row.coord, pixels, pixel_scale_arcsec), p.name)
                      for p in row.paths]
        except InputError as e:
            return str(e)
        except Exception as e:  # one bad row (a WCS astropy cannot invert, odd header values) is a skip
            return " ".join(f"{row.paths[0].name}: cannot cut the source out ({type(e).__name__}: {e})".split())
        return np.concatenate([p.reshape(-1, pixels, pixels) for p in planes])

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = []
        for result in tqdm(pool.map(load, rows), total=len(rows), desc=f"reading {directory.name}",
                           unit="image", disable=not progress):
            results.append(result)
            if on_progress is not None:
                on_progress(len(results), len(rows))

    channels = next((r.shape[0] for r in results if not isinstance(r, str)), 1)
    keep, images = [], []
    for label, result in zip(catalog.index, results):
        file_label = str(catalog.at[label, files[0]])
        if isinstance(result, str):
            skipped.append((file_label, result))
        elif result.shape[0] != channels:
            skipped.append((file_label, f"{result.shape[0]} band(s) where the first image has {channels}"))
        else:
            keep.append(label)
            images.append(result)
    catalog = _tidy(catalog.loc[keep], files)
    if len(bands) == 1 and channels > 1:  # cubes: bands are planes
        bands = [f"plane{i}" for i in range(channels)]
    catalog.attrs["bands"] = bands
    stack = np.stack(images).astype(np.float32) if images else np.zeros((0, channels, pixels, pixels), np.float32)
    return stack, catalog, column_metadata(catalog, directory), skipped


def catalogue_files(directory: str | Path) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The rows of a FITS catalogue directory that have a position, without reading an image: ``id`` (as
    :func:`load_fits_catalogue` and so a bundle name it), ra, dec and ``path`` (its first image file);
    and the rows skipped, as (file, reason)."""
    directory = Path(directory).expanduser()
    table = read_catalog_csv(directory)
    files, _ = file_columns(table)
    catalog, _, skipped = _with_positions(table, files)
    paths = [_resolve(directory, catalog.at[i, files[0]]) for i in catalog.index]
    return _tidy(catalog, files)[["id", "ra", "dec"]].assign(path=paths), skipped


def read_catalog_csv(directory: Path) -> pd.DataFrame:
    if not directory.is_dir():
        raise InputError(f"FITS catalogue folder not found: {directory}")
    path = directory / CATALOG_FILE
    if not path.is_file():
        raise InputError(f"{directory} has no {CATALOG_FILE}; a FITS catalogue directory needs one "
                         "with file, ra and dec columns")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not a readable CSV table: {e}") from None
    for column in table.columns[table.dtypes == object]:
        if table[column].map(lambda v: isinstance(v, int)).all():  # integers wider than int64
            table[column] = table[column].astype(str) if column in NAME_COLUMNS else table[column].astype(float)
    text = table.select_dtypes(include=["object", "string"]).columns
    table[text] = table[text].fillna("")  # an empty text cell means "none" (e.g. bent_type), as in memory
    missing = [c for c in ("ra", "dec") if c not in table.columns]
    if not any(c == "file" or c.startswith("file_") for c in table.columns):
        missing.insert(0, "file (or file_<band>)")
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)}; it has {', '.join(map(str, table.columns))}")
    return table


FITS_SUFFIXES = (".fits.gz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts")


def file_columns(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The file column(s) in band order and the band names.

    A ``file`` column wins; otherwise ``file_<band>`` columns whose every value names a FITS file are
    the bands (so a property such as ``file_notes`` stays a property).
    """
    if "file" in table.columns:
        return ["file"], ["image"]
    per_band = [c for c in table.columns if c.startswith("file_") and _names_fits_files(table[c])]
    if per_band:
        return per_band, [c[len("file_"):] for c in per_band]
    raise InputError(f"{CATALOG_FILE} has no file column: give a 'file' column, or 'file_<band>' columns of "
                     f"FITS file names ({', '.join(FITS_SUFFIXES)})")


def _names_fits_files(values: pd.Series) -> bool:
    names = values.dropna().astype(str).str.strip().str.lower()
    names = names[names != ""]
    return len(names) > 0 and bool(names.map(lambda n: n.endswith(FITS_SUFFIXES)).all())


def _with_positions(table: pd.DataFrame, file_columns: list[str]):
    """Rows with a usable position and file names, their SkyCoords (one vectorised call), and the rest as skips."""
    ra = pd.to_numeric(table["ra"], errors="coerce")
    dec = pd.to_numeric(table["dec"], errors="coerce")
    has_files = table[file_columns].notna().all(axis=1)
    good = ra.between(0, 360) & dec.between(-90, 90) & has_files
    skipped = []
    for i in table.index[~good]:
        label = str(table.at[i, file_columns[0]])
        reason = "no file name" if not has_files[i] else f"invalid position ra={table.at[i, 'ra']!r}, dec={table.at[i, 'dec']!r}"
        skipped.append((label, reason))
    catalog = table.loc[good].copy()
    catalog["ra"], catalog["dec"] = ra[good].astype(float), dec[good].astype(float)
    positions = SkyCoord(catalog["ra"].to_numpy() * u.deg, catalog["dec"].to_numpy() * u.deg, frame="icrs")
    return catalog, positions, skipped


def _resolve(directory: Path, name) -> Path:
    p = Path(str(name)).expanduser()
    return p if p.is_absolute() else directory / p


def _file_stem(name: str) -> str:
    base = Path(str(name)).name
    for suffix in FITS_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return Path(base).stem


def _tidy(catalog: pd.DataFrame, file_columns: list[str]) -> pd.DataFrame:
    """``id`` first (from a name column or the file stem), file columns dropped, fresh index."""
    catalog = catalog.reset_index(drop=True)
    name_column = next((c for c in NAME_COLUMNS if c in catalog.columns), None)
    ids = catalog[name_column] if name_column else catalog[file_columns[0]].map(_file_stem)
    catalog = catalog.drop(columns=file_columns + ([name_column] if name_column and name_column != "id" else []))
    catalog = catalog.drop(columns=["id"], errors="ignore")
    catalog.insert(0, "id", ids.astype(str).to_numpy())
    front = ["id", "ra", "dec"]
    return catalog[front + [c for c in catalog.columns if c not in front]]


def column_metadata(catalog: pd.DataFrame, directory: Path | None = None) -> dict:
    """{column: {"unit", "description"}}: the sidecar's entry, else a known default, else a unit from the suffix."""
    sidecar = _read_sidecar(directory / COLUMNS_FILE) if directory is not None else {}
    meta = {}
    for column in catalog.columns:
        unit, description = KNOWN_COLUMNS.get(column, (_unit_from_suffix(column), f"{column} from the catalogue"))
        given = sidecar.get(column, {})
        meta[column] = {"unit": str(given.get("unit", unit)), "description": str(given.get("description", description))}
    return meta


def _unit_from_suffix(column: str) -> str:
    return next((unit for suffix, unit in UNIT_SUFFIXES.items() if column.lower().endswith(suffix)), "")


def _read_sidecar(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid YAML: {e}") from None
    bad = [k for k, v in data.items() if not isinstance(v, dict)] if isinstance(data, dict) else ["(top level)"]
    if bad:
        raise InputError(f"{path}: expected 'column: {{unit: ..., description: ...}}' entries; "
                         f"wrong entries: {', '.join(map(str, bad))}")
    return data
