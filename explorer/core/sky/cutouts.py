"""Cutout providers: an image of the sky around a position, from local files or a survey service.

Every provider has one method::

    provider.cutout(coord, size_arcsec, pixels) -> (image, wcs)

``image`` is float32 [pixels, pixels] (or [C, pixels, pixels] for cubes) centred on ``coord``
at ``size_arcsec / pixels`` arcsec per pixel, NaN where the survey has no data; ``wcs`` is its
celestial WCS. Failures are :class:`~explorer.core.errors.InputError` with one of these messages:

- ``no coverage at this position in <provider> ...``
- ``offline: cannot reach <provider> ...`` (fast: DNS failure or refused connection, no retries)
- ``timeout: <provider> did not answer within N s ...`` (after bounded retries)

Providers:

- :class:`LocalFitsCollection` — a folder of FITS images (e.g. ``../shared/data/mirabest``).
  A footprint table (centre and radius of every image, from the headers) is built once and
  kept under the cache directory, so a position finds its image without opening every file.
- :class:`SkyViewProvider` — NASA SkyView through ``astroquery.skyview``, default "VLA FIRST (1.4 GHz)".
- :class:`Hips2FitsProvider` — any HiPS survey through ``astroquery.hips2fits``.

The network providers keep every answer on disk keyed by (survey, position, size, pixels),
including "no coverage", so a repeated query needs no network; they bound each request with
a timeout and retry timeouts and server errors a bounded number of times.
"""
from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import Angle, SkyCoord, angular_separation
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame

from explorer.core import config
from explorer.core.atomic import atomic_path, write_json
from explorer.core.errors import InputError
from explorer.core.fitsio import (CATALOG_FILE, FITS_SUFFIXES, BlankImageError, cutout_with_wcs, file_columns, read_image,
                             read_image_header)
from explorer.core.sky.network import Offline, Timeout, env_urls, with_retries
from explorer.core.surveys import FIRST



class CutoutProvider(ABC):
    """Something that can return a sky image around a position."""

    name: str

    @abstractmethod
    def cutout(self, coord: SkyCoord, size_arcsec: float, pixels: int) -> tuple[np.ndarray, WCS]:
        ...


def _check_request(size_arcsec: float, pixels: int) -> None:
    if not (np.isfinite(size_arcsec) and size_arcsec > 0):
        raise InputError(f"cutout size must be a positive number of arcsec, got {size_arcsec!r}")
    if int(pixels) != pixels or not 8 <= pixels <= 4096:
        raise InputError(f"cutout pixels must be a whole number from 8 to 4096, got {pixels!r}")


def _where(coord: SkyCoord) -> str:
    icrs = coord.icrs
    return f"(RA {icrs.ra.deg:.5f}, Dec {icrs.dec.deg:+.5f})"


# ---------------------------------------------------------------- local FITS collection

class LocalFitsCollection(CutoutProvider):
    """Cutouts from a folder of FITS images: the image whose footprint holds the position."""

    def __init__(self, directory: str | Path, *, cache_dir: str | Path | None = None):
        self.directory = Path(directory).expanduser().resolve()
        if not self.directory.is_dir():
            raise InputError(f"local FITS collection not found: {self.directory}")
        self.name = f"local FITS collection {self.directory.name}"
        self._cache_dir = Path(cache_dir or config.cache_dir()) / "footprints"
        self._footprints: pd.DataFrame | None = None
        self._centres: SkyCoord | None = None

    def files(self) -> list[Path]:
        """The images: a catalog.csv's file column when there is one, else every FITS file below."""
        catalog = self.directory / CATALOG_FILE
        if catalog.is_file():
            table = pd.read_csv(catalog)
            try:
                names = table[file_columns(table)[0]].stack().dropna().unique()
                return [self.directory / str(n) for n in names]
            except InputError:  # no file column: fall back to the files themselves
                pass
        return sorted(p for p in self.directory.rglob("*") if p.name.lower().endswith(FITS_SUFFIXES))

    @property
    def footprints(self) -> pd.DataFrame:
        """One row per usable image: file, centre ra/dec (deg), radius (deg) enclosing its corners."""
        if self._footprints is None:
            self._footprints = self._load_footprints()
            self._centres = SkyCoord(self._footprints["ra"].to_numpy() * u.deg,
                                     self._footprints["dec"].to_numpy() * u.deg)
        return self._footprints

    def _load_footprints(self) -> pd.DataFrame:
        table_path = self._cache_dir / f"{hashlib.sha1(str(self.directory).encode()).hexdigest()[:16]}.parquet"
        known = {}
        if table_path.is_file():
            try:
                known = {r["file"]: r for r in pd.read_parquet(table_path).to_dict("records")}
            except Exception:  # a damaged cache is rebuilt, never trusted
                known = {}
        kept, todo = [], []
        for path in self.files():
            try:
                stat = path.stat()
            except OSError:
                continue
            old = known.get(str(path))
            if old is not None and (old["mtime_ns"], old["size"]) == (stat.st_mtime_ns, stat.st_size):
                kept.append(old)
            else:
                todo.append((path, stat))
        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
            measured = list(pool.map(_footprint, [p for p, _ in todo]))
        usable = [(path, stat, m) for (path, stat), m in zip(todo, measured) if m is not None]
        fresh = _to_icrs([m for *_, m in usable])
        for row, (path, stat, _) in zip(fresh, usable):
            row.update(file=str(path), mtime_ns=stat.st_mtime_ns, size=stat.st_size)
        table = pd.DataFrame(kept + fresh, columns=["file", "mtime_ns", "size", "ra", "dec", "radius_deg"])
        if not len(table):
            raise InputError(f"{self.name} has no FITS images with a celestial WCS")
        if todo:
            with atomic_path(table_path) as tmp:
                table.to_parquet(tmp, index=False)
        return table

    def covering(self, coord: SkyCoord) -> list[Path]:
        """Images whose footprint holds ``coord``, the one centred closest first."""
        table = self.footprints
        separation = self._centres.separation(coord.icrs).deg
        near = np.flatnonzero(separation <= table["radius_deg"].to_numpy())
        found = []
        for i in near[np.argsort(separation[near])]:
            path = Path(table["file"].iat[i])
            try:
                _, wcs = read_image_header(path)
            except InputError:
                continue
            x, y = wcs.world_to_pixel(coord)
            nx, ny = wcs.pixel_shape
            if -0.5 <= x <= nx - 0.5 and -0.5 <= y <= ny - 0.5:
                found.append(path)
        return found

    def cutout(self, coord: SkyCoord, size_arcsec: float, pixels: int) -> tuple[np.ndarray, WCS]:
        _check_request(size_arcsec, pixels)
        for path in self.covering(coord):
            try:
                data, wcs, _ = read_image(path)
                return cutout_with_wcs(data, wcs, coord, pixels, size_arcsec / pixels)
            except InputError:
                continue  # an unreadable file, or only blank pixels there: another image may serve
        raise InputError(f"no coverage at this position in {self.name} {_where(coord)}")


def _footprint(path: Path) -> tuple | None:
    """(frame, centre lon, centre lat, radius deg) in the image's own frame, or None if it is no sky image."""
    try:
        _, wcs = read_image_header(path)
    except InputError:
        return None
    nx, ny = wcs.pixel_shape
    lon, lat = wcs.wcs_pix2world(np.array([(nx - 1) / 2, -0.5, nx - 0.5, nx - 0.5, -0.5]),
                                 np.array([(ny - 1) / 2, -0.5, -0.5, ny - 0.5, ny - 0.5]), 0)
    radius = angular_separation(lon[0] * u.deg, lat[0] * u.deg, lon[1:] * u.deg, lat[1:] * u.deg).max()
    return wcs_to_celestial_frame(wcs), lon[0], lat[0], radius.to_value(u.deg)


def _to_icrs(footprints: list[tuple]) -> list[dict]:
    """Footprint rows with ICRS centres, one coordinate transform per distinct frame."""
    rows = [{"radius_deg": float(r)} for *_, r in footprints]
    groups: dict[str, list[int]] = {}
    for i, (frame, *_rest) in enumerate(footprints):
        groups.setdefault(repr(frame), []).append(i)
    for members in groups.values():
        frame = footprints[members[0]][0]
        lon = np.array([footprints[i][1] for i in members]) * u.deg
        lat = np.array([footprints[i][2] for i in members]) * u.deg
        centres = SkyCoord(lon, lat, frame=frame).icrs
        for i, ra, dec in zip(members, centres.ra.deg, centres.dec.deg):
            rows[i].update(ra=float(ra), dec=float(dec))
    return rows


# ---------------------------------------------------------------- network providers

class _NoCoverage(Exception):
    pass


class NetworkProvider(CutoutProvider):
    """A survey service: cached answers, a timeout per request, bounded retries."""

    service = "survey service"

    def __init__(self, *, timeout: float = 15.0, retries: int = 2, cache_dir: str | Path | None = None):
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.cache_root = Path(cache_dir or config.cache_dir())
        self.cache_dir = self.cache_root / "cutouts"

    @property
    @abstractmethod
    def identity(self) -> str:
        """What distinguishes this provider's answers in the cache: service and survey (not the mirror)."""

    @abstractmethod
    def _download(self, coord: SkyCoord, size_arcsec: float, pixels: int) -> bytes:
        """FITS bytes of the survey around ``coord``; raises _NoCoverage when there is no image."""

    def cache_path(self, coord: SkyCoord, size_arcsec: float, pixels: int) -> Path:
        icrs = coord.icrs
        key = f"{self.identity}|{icrs.ra.deg:.7f}|{icrs.dec.deg:+.7f}|{size_arcsec:.4f}|{int(pixels)}"
        return self.cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:24]}.fits"

    def is_cached(self, coord: SkyCoord, size_arcsec: float, pixels: int) -> bool:
        path = self.cache_path(coord, size_arcsec, pixels)
        return path.is_file() or _no_coverage_marker(path).is_file()

    def cutout(self, coord: SkyCoord, size_arcsec: float, pixels: int) -> tuple[np.ndarray, WCS]:
        _check_request(size_arcsec, pixels)
        path = self.cache_path(coord, size_arcsec, pixels)
        if _no_coverage_marker(path).is_file():
            raise self._no_coverage(coord)
        if not path.is_file():
            try:
                data = with_retries(lambda: self._download(coord, size_arcsec, pixels),
                                    timeout=self.timeout, retries=self.retries)
            except _NoCoverage:
                raise self._remember_no_coverage(path, coord) from None
            except Offline:
                raise InputError(f"offline: cannot reach {self.name}; fetching cutouts needs a network "
                                 "connection (or use a local FITS collection)") from None
            except Timeout:
                raise InputError(f"timeout: {self.name} did not answer within {self.timeout:g} s "
                                 f"({self.retries + 1} attempts)") from None
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
        try:
            image, wcs, _ = read_image(path)
        except BlankImageError:
            raise self._remember_no_coverage(path, coord) from None
        except InputError as e:
            path.unlink(missing_ok=True)  # never keep a bad answer: the next call asks again
            raise InputError(f"{self.name} sent an unusable image: {e}") from None
        if not np.any(np.nan_to_num(image)):  # some services answer all-zero images where they have no data
            raise self._remember_no_coverage(path, coord)
        # Services return the requested grid; cutting it again guarantees shape and centring.
        return cutout_with_wcs(image, wcs, coord, pixels, size_arcsec / pixels)

    def _no_coverage(self, coord: SkyCoord) -> InputError:
        return InputError(f"no coverage at this position in {self.name} {_where(coord)}")

    def _remember_no_coverage(self, path: Path, coord: SkyCoord) -> InputError:
        path.unlink(missing_ok=True)
        write_json(_no_coverage_marker(path), {"provider": self.identity, "ra": coord.icrs.ra.deg,
                                               "dec": coord.icrs.dec.deg})
        return self._no_coverage(coord)


def _no_coverage_marker(path: Path) -> Path:
    return path.with_suffix(".nocoverage.json")


class SkyViewProvider(NetworkProvider):
    """NASA SkyView (``astroquery.skyview``); ``url`` overrides the basic-form address."""

    service = "SkyView"

    def __init__(self, survey: str = FIRST.skyview, *, url: str | None = None, **kwargs):
        super().__init__(**kwargs)
        from astroquery.skyview import SkyViewClass, conf

        self.survey = survey
        self.url = url or (env_urls("EXPLORER_SKYVIEW_URL") or [conf.url])[0]
        self.name = f"SkyView {survey}"
        timeout_s = self.timeout

        class TimedSkyView(SkyViewClass):
            """SkyView's form requests carry no timeout of their own: give every one ours, so a stalled
            server ends the request (and its thread) instead of leaving it waiting forever."""

            def _request(self, *args, timeout=None, **kw):
                return super()._request(*args, timeout=timeout or timeout_s, **kw)

        self._client = TimedSkyView()
        self._client.URL = self.url  # the client reads its form address from this attribute
        self._client.cache_location = self.cache_root / "astroquery" / "skyview"

    @property
    def identity(self) -> str:
        return f"skyview|{self.survey}"

    def _download(self, coord: SkyCoord, size_arcsec: float, pixels: int) -> bytes:
        from astroquery.utils.commons import FileContainer

        size = size_arcsec * u.arcsec
        try:
            urls = self._client.get_image_list(position=coord.icrs, survey=self.survey, pixels=str(int(pixels)),
                                               width=size, height=size, cache=False)
        except ValueError as e:
            if "not among the surveys" in str(e):
                if not self._client._valid_surveys:  # the form page listed no survey at all: not SkyView's page
                    del self._client._survey_dict  # ask again next time
                    raise InputError(f"{self.name}: the server at the SkyView address sent a page without a "
                                     "survey list (not a SkyView answer)") from None
                raise InputError(f"unknown SkyView survey {self.survey!r}") from None
            raise
        if not urls:
            raise _NoCoverage()
        return FileContainer(urls[0], encoding="binary", cache=False, remote_timeout=self.timeout).get_string()


class Hips2FitsProvider(NetworkProvider):
    """Any HiPS survey through CDS hips2fits (``astroquery.hips2fits``); ``url`` overrides the service address."""

    service = "hips2fits"

    def __init__(self, hips: str, *, url: str | None = None, **kwargs):
        super().__init__(**kwargs)
        from astroquery.hips2fits import hips2fitsClass

        if not hips or not hips.strip():
            raise InputError("no HiPS survey given (e.g. CDS/P/DSS2/color)")
        self.hips = hips.strip()
        self._client = hips2fitsClass()
        self.url = url or (env_urls("EXPLORER_HIPS2FITS_URL") or [self._client.server])[0]
        self.name = f"hips2fits {self.hips}"
        self._client.server = self.url  # the client reads its service address and timeout from these
        self._client.timeout = self.timeout

    @property
    def identity(self) -> str:
        return f"hips2fits|{self.hips}"

    def _download(self, coord: SkyCoord, size_arcsec: float, pixels: int) -> bytes:
        icrs = coord.icrs
        # query_async hands back the HTTP response, so the FITS bytes are cached exactly as sent.
        response = self._client.query_async(
            hips=self.hips, width=int(pixels), height=int(pixels), projection="TAN", ra=icrs.ra, dec=icrs.dec,
            fov=size_arcsec * u.arcsec, coordsys="icrs", rotation_angle=Angle(0 * u.deg), format="fits",
            min_cut=0.5, max_cut=99.5, stretch="linear", cmap="Greys_r")
        if response.status_code >= 500:
            response.raise_for_status()  # a server error: retried, then reported as a timeout
        if response.status_code != 200:
            try:
                detail = response.json()
                reason = ": ".join(str(detail[k]).strip() for k in ("title", "description") if k in detail)
            except ValueError:
                reason = f"HTTP {response.status_code}"
            raise InputError(f"hips2fits refused the request for {self.hips!r}: {reason}")
        return response.content


# ---------------------------------------------------------------- choosing a provider

SURVEY_HELP = (f"a SkyView survey name (e.g. '{FIRST.skyview}'), 'skyview:<survey>', "
               "'hips:<HiPS id>' (e.g. hips:CDS/P/DSS2/color) or 'local:<folder of FITS images>'")


def provider_for(survey: str, *, server: str | None = None, **options) -> CutoutProvider:
    """The provider a survey string names (see :data:`SURVEY_HELP`).

    ``server`` overrides the service address of a network provider; ``options`` are
    ``timeout``, ``retries`` and ``cache_dir``.
    """
    survey = (survey or "").strip()
    kind, sep, rest = survey.partition(":")
    kind = kind.lower() if sep else ""
    if kind in ("hips", "hips2fits"):
        return Hips2FitsProvider(rest, url=server, **options)
    if kind == "local":
        return LocalFitsCollection(rest, cache_dir=options.get("cache_dir"))
    name = rest.strip() if kind == "skyview" else survey
    if not name:
        raise InputError(f"no survey given; use {SURVEY_HELP}")
    return SkyViewProvider(name, url=server, **options)
