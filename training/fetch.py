"""Build a FITS catalogue directory from any catalogue by fetching a survey cutout per row.

    python -m training.fetch --catalog sources.csv --survey "VLA FIRST (1.4 GHz)" \\
        --size 270 --pixels 150 --out data/my_sources

``--catalog`` is a CSV, VOTable or FITS table with RA/Dec (degrees, or sexagesimal strings;
columns ``ra``/``dec``, ``RAJ2000``/``DEJ2000`` and the like) and any property columns.
``--survey`` is a SkyView survey name, ``hips:<HiPS id>`` or ``local:<folder>``.

Several bands, one survey each, make a multi-band directory: ``catalog.csv`` gets one
``file_<band>`` column per band, in the order given (the channel order every loader keeps),
and the cutouts go to ``fits/<band>/``. Name the bands with ``--bands`` and put ``{band}`` in
``--survey``, or give ``--band NAME=SURVEY`` once per band (bands from different surveys).
SDSS u, g, r, i, z around every redMaPPer cluster (its RA, DEC, NAME, Z_LAMBDA, LAMBDA, ...
columns are kept), ready for the band-prediction recipe (``method: band_prediction``,
``data.bands: [u, g, r, i, z]``)::

    python -m training.fetch --catalog redmapper_dr8_public_v6.3_catalog.fits \\
        --bands u,g,r,i,z --survey "hips:CDS/P/SDSS9/{band}" --size 200 --pixels 500 --out data/redmapper_ugriz

    # the same, one band at a time:  --band u=hips:CDS/P/SDSS9/u --band g=hips:CDS/P/SDSS9/g ...

A source is in ``catalog.csv`` only once it has every band; a band that fails lists the row in
``failed.csv`` with the band(s) and the reason.

The output folder is the layout every loader reads (``catalog.csv`` + ``fits/``), keeping
the catalogue's columns; units and descriptions from a VOTable/FITS table go to
``columns.yaml``. Rows that fail are written to ``failed.csv`` with the reason, never
dropped silently. The run is resumable: every cutout is written atomically as it arrives,
and a rerun of the same command fetches only what is missing (survey answers are cached
too). ``fetch.json`` records the settings (with the survey of every band), so a rerun with
different ones is refused.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import yaml
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_path, write_json
from explorer.core.errors import ArgumentParser, InputError, cli_entry
from explorer.core.fitsio import CATALOG_FILE, COLUMNS_FILE
from explorer.core.sky.cutouts import SURVEY_HELP, CutoutProvider, provider_for

FAILED_FILE = "failed.csv"
SETTINGS_FILE = "fetch.json"
RA_NAMES = ("ra", "ra_deg", "raj2000", "_raj2000", "ra_icrs", "ra_j2000", "radeg")
DEC_NAMES = ("dec", "dec_deg", "dej2000", "_dej2000", "de_icrs", "dec_j2000", "decdeg", "decj2000")
NAME_COLUMNS = ("id", "name", "rgz_name", "source_name", "objname")
BAND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # a column suffix and a folder name everywhere


@dataclass
class FetchResult:
    out: Path
    fetched: int      # rows with a cutout in the folder, in every band (this run or an earlier one)
    failed: pd.DataFrame
    bands: tuple[str, ...] = ()  # a multi-band fetch's bands in channel order; () for one survey


def read_catalogue_table(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """(table, {column: {unit, description}}) from a CSV, VOTable or FITS table."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"catalogue not found: {path}")
    lower = path.name.lower()
    try:
        if lower.endswith((".csv", ".tsv", ".txt")):
            return pd.read_csv(path, sep=None if not lower.endswith(".csv") else ",", engine="python"), {}
        fmt = "votable" if lower.endswith((".xml", ".vot", ".votable")) else "fits" if ".fit" in lower else None
        table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except InputError:
        raise
    except Exception as e:  # parsers raise many types for malformed files
        raise InputError(f"cannot read the catalogue {path.name}: {type(e).__name__}: {e}") from None
    flat = [c for c in table.colnames if table[c].ndim == 1]  # array-valued cells do not fit a CSV
    meta = {c: {"unit": str(table[c].unit or ""), "description": str(table[c].description or "")} for c in flat}
    return table[flat].to_pandas(), {c: m for c, m in meta.items() if m["unit"] or m["description"]}


def catalogue_positions(table: pd.DataFrame, where: str) -> tuple[SkyCoord, np.ndarray, str, str]:
    """(ICRS positions, valid-row mask, ra column, dec column); sexagesimal strings are read as hours/degrees."""
    lower = {str(c).lower(): c for c in table.columns}
    ra_col = next((lower[n] for n in RA_NAMES if n in lower), None)
    dec_col = next((lower[n] for n in DEC_NAMES if n in lower), None)
    if ra_col is None or dec_col is None:
        missing = " and ".join(n for n, c in (("RA", ra_col), ("Dec", dec_col)) if c is None)
        raise InputError(f"{where} has no {missing} column (looked for {', '.join(RA_NAMES[:3])} / "
                         f"{', '.join(DEC_NAMES[:3])}); it has {', '.join(map(str, table.columns))}")
    ra = np.array(pd.to_numeric(table[ra_col], errors="coerce"), dtype=float)  # writable copies
    dec = np.array(pd.to_numeric(table[dec_col], errors="coerce"), dtype=float)
    text = np.isnan(ra) & table[ra_col].notna().to_numpy()
    for i in np.flatnonzero(text):  # sexagesimal strings, one by one so one bad row fails alone
        try:
            c = SkyCoord(str(table[ra_col].iat[i]), str(table[dec_col].iat[i]), unit=(u.hourangle, u.deg))
        except ValueError:
            continue
        ra[i], dec[i] = c.ra.deg, c.dec.deg
    valid = np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra <= 360) & (np.abs(dec) <= 90)
    coords = SkyCoord(np.where(valid, ra, 0) * u.deg, np.where(valid, dec, 0) * u.deg, frame="icrs")
    return coords, valid, ra_col, dec_col


def fetch_catalogue(catalog: str | Path, survey: str | Mapping[str, str], size_arcsec: float, pixels: int,
                    out: str | Path, *, workers: int = 4,
                    provider: CutoutProvider | Mapping[str, CutoutProvider] | None = None, progress: bool = True,
                    **provider_options) -> FetchResult:
    """Fetch a cutout for every row of ``catalog`` into the FITS catalogue directory ``out``.

    ``survey`` is one survey string (a ``file`` column), or ``{band: survey}`` in channel order (a
    ``file_<band>`` column per band); ``provider`` replaces the provider(s) those strings name.
    """
    if not (np.isfinite(size_arcsec) and size_arcsec > 0):
        raise InputError(f"--size must be a positive number of arcsec, got {size_arcsec}")
    if not 8 <= pixels <= 4096:
        raise InputError(f"--pixels must be from 8 to 4096, got {pixels}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    multi = isinstance(survey, Mapping)
    surveys: dict[str | None, str] = check_bands(list(survey.items())) if multi else {None: survey}
    table, units = read_catalogue_table(catalog)
    coords, valid, ra_col, dec_col = catalogue_positions(table, Path(catalog).name)
    columns = {b: "file" if b is None else f"file_{b}" for b in surveys}
    clash = [c for c in table.columns if multi and (c == "file" or c in columns.values())]
    if clash:  # "file" would hide the band columns from every loader
        raise InputError(f"{Path(catalog).name} has a column named {clash[0]}, which the fetched files' columns "
                         "need; rename it")
    providers = {b: _provider(b, s, provider, **provider_options) for b, s in surveys.items()}
    out = Path(out).expanduser()
    settings = {"catalog": str(Path(catalog).expanduser().resolve()), "catalog_sha256": _sha256(catalog),
                "survey": survey_summary(surveys) if multi else survey}
    if multi:
        settings["bands"] = [[b, s] for b, s in surveys.items()]
    _claim(out, {**settings, "size_arcsec": float(size_arcsec), "pixels": int(pixels)})

    names = {b: _file_names(table, b) for b in surveys}
    reasons: dict[int, dict[str | None, str]] = {
        i: dict.fromkeys(surveys, "invalid position: RA/Dec missing or out of range") for i in np.flatnonzero(~valid)}
    todo = [(i, b) for i in np.flatnonzero(valid) for b in surveys if not (out / names[b][i]).is_file()]

    def fetch(i: int, band: str | None) -> None:
        image, wcs = providers[band].cutout(coords[i], size_arcsec, pixels)
        header = wcs.to_header()
        header["SURVEY"] = (surveys[band][:68], "cutout source")
        if band is not None:
            header["BAND"] = (band, "band (catalog.csv column file_<band>)")
        header["CATROW"] = (int(i), "row in the input catalogue")
        with atomic_path(out / names[band][i]) as tmp:
            fits.PrimaryHDU(image.astype(np.float32), header).writeto(tmp)

    what = f"{len(surveys)} bands ({','.join(surveys)})" if multi else providers[None].name
    pool = ThreadPoolExecutor(workers)
    try:
        futures = {pool.submit(fetch, *job): job for job in todo}
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"fetching {what}",
                           unit="cutout", disable=not progress):
            i, band = futures[future]
            try:
                future.result()
            except InputError as e:
                reasons.setdefault(i, {})[band] = str(e)
            except Exception as e:  # one odd answer must not end a long batch; it is listed, not hidden
                reasons.setdefault(i, {})[band] = f"unexpected {type(e).__name__}: {e}"
    finally:  # also on Ctrl-C: keep what arrived, list what failed, and leave the rest for the rerun
        pool.shutdown(wait=True, cancel_futures=True)
        done = [i for i in range(len(table)) if valid[i] and all((out / names[b][i]).is_file() for b in surveys)]
        files = pd.DataFrame({columns[b]: names[b] for b in surveys})
        reasons = {i: {b: r[b] for b in surveys if b in r} for i, r in reasons.items()}  # bands in channel order
        failed = _write_outputs(out, table, coords, files, done, reasons, ra_col, dec_col, units, multi)
    return FetchResult(out, len(done), failed, tuple(surveys) if multi else ())


def check_bands(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """{band: survey} in the given order, after checking every name is a usable column suffix and unique."""
    if not pairs:
        raise InputError("no bands given")
    bands: dict[str, str] = {}
    for band, survey in pairs:
        band, survey = str(band).strip(), str(survey).strip()
        if not BAND_NAME.fullmatch(band):
            raise InputError(f"band name {band!r} is not usable: letters, digits, '_' and '-', starting with a "
                             "letter or digit (it becomes the column file_<band> and the folder fits/<band>)")
        twin = next((b for b in bands if b.lower() == band.lower()), None)
        if twin is not None:
            raise InputError(f"band {band} is given twice" + (f" ({twin} and {band})" if twin != band else ""))
        if not survey:
            raise InputError(f"band {band} has no survey; use {SURVEY_HELP}")
        bands[band] = survey
    return bands


def band_surveys(survey: str | None, bands: str | None, band_args: list[str] | None) -> str | dict[str, str]:
    """What the CLI asks for: one survey string, or {band: survey} from ``--bands`` + a ``{band}`` template
    in ``--survey`` or from ``--band NAME=SURVEY`` arguments."""
    if band_args:
        if survey is not None or bands is not None:
            raise InputError("--band NAME=SURVEY names every band's survey itself; give it without --survey "
                             "and --bands (or use --bands with a --survey template instead)")
        pairs = []
        for text in band_args:
            band, sep, value = text.partition("=")
            if not sep:
                raise InputError(f"--band expects NAME=SURVEY (e.g. u=hips:CDS/P/SDSS9/u), got {text!r}")
            pairs.append((band, value))
        return check_bands(pairs)
    if bands is not None:
        if survey is None or "{band}" not in survey:
            raise InputError("--bands needs a --survey template with {band} in it, e.g. "
                             "--bands u,g,r,i,z --survey 'hips:CDS/P/SDSS9/{band}'")
        return check_bands([(b, survey.replace("{band}", b.strip())) for b in bands.split(",")])
    if survey is None:
        raise InputError("give --survey (one band), or --bands with a --survey template, or --band NAME=SURVEY "
                         "per band")
    if "{band}" in survey:
        raise InputError(f"--survey {survey!r} is a template: add --bands (e.g. --bands u,g,r,i,z)")
    return survey


def survey_summary(surveys: Mapping) -> str:
    """One line for every band's survey (``u=hips:CDS/P/SDSS9/u, g=...``), as bundles record it."""
    return ", ".join(f"{b}={s}" for b, s in surveys.items())


def _provider(band: str | None, survey: str, given, **options) -> CutoutProvider:
    if isinstance(given, Mapping):
        return given[band]
    if given is not None:
        return given
    try:
        return provider_for(survey, **options)
    except InputError as e:
        if band is None:
            raise
        raise InputError(f"band {band}: {e}") from None


def _claim(out: Path, settings: dict) -> None:
    """Use ``out`` for this fetch, refusing a folder that holds another fetch or other files."""
    marker = out / SETTINGS_FILE
    if marker.is_file():
        try:
            previous = json.loads(marker.read_text())
        except ValueError:
            raise InputError(f"{marker} is damaged; choose another --out or delete it") from None
        changed = [k for k in settings if previous.get(k) != settings[k]]
        if changed:
            raise InputError(f"{out} holds a fetch with other settings ({', '.join(changed)} differ); "
                             "choose another --out or delete it")
        return
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} exists and is not a fetch folder; choose another --out")
    write_json(marker, settings)


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()


def _file_names(table: pd.DataFrame, band: str | None = None) -> list[str]:
    """fits/[<band>/]<row>[_<name>].fits: stable across reruns, readable, safe on every file system."""
    lower = {str(c).lower(): c for c in table.columns}
    name_col = next((lower[n] for n in NAME_COLUMNS if n in lower), None)
    names = []
    for i in range(len(table)):
        label = "" if name_col is None else re.sub(r"[^A-Za-z0-9.+\-]+", "_", str(table[name_col].iat[i]))[:60]
        names.append(f"fits/{band + '/' if band else ''}{i:06d}{'_' + label if label else ''}.fits")
    return names


def _write_outputs(out: Path, table: pd.DataFrame, coords: SkyCoord, files: pd.DataFrame, done: list[int],
                   reasons: dict[int, dict], ra_col: str, dec_col: str, units: dict, multi: bool) -> pd.DataFrame:
    properties = table.drop(columns=[ra_col, dec_col])
    positions = pd.DataFrame({"ra": coords.ra.deg, "dec": coords.dec.deg})
    catalog = pd.concat([files, positions, properties.reset_index(drop=True)], axis=1)
    with atomic_path(out / CATALOG_FILE) as tmp:
        catalog.iloc[done].to_csv(tmp, index=False)
    rows = sorted(reasons)
    listed = pd.DataFrame({"row": rows, "reason": [_reason(reasons[i]) for i in rows]})
    if multi:  # the bands that failed, in channel order (every band for a row with no position)
        listed.insert(1, "band", [",".join(reasons[i]) for i in rows])
    failed = pd.concat([listed, table.iloc[rows].reset_index(drop=True)], axis=1)
    failed_path = out / FAILED_FILE
    if rows:
        with atomic_path(failed_path) as tmp:
            failed.to_csv(tmp, index=False)
    else:
        failed_path.unlink(missing_ok=True)  # nothing failed this time: no stale list
    sidecar = {c: m for c, m in units.items() if c in properties.columns}
    if sidecar:
        with atomic_path(out / COLUMNS_FILE) as tmp:
            tmp.write_text(yaml.safe_dump(sidecar, sort_keys=False))
    return failed


def _reason(per_band: dict) -> str:
    """One reason, or ``u: ...; g: ...`` where bands failed for different ones."""
    distinct = set(per_band.values())
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"{b}: {r}" for b, r in per_band.items())


@cli_entry
def main(argv=None):
    parser = ArgumentParser(prog="python -m training.fetch", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--catalog", required=True, help="CSV, VOTable or FITS table with RA/Dec and properties")
    parser.add_argument("--survey", help=f"{SURVEY_HELP}; with --bands, a template with {{band}} in it")
    parser.add_argument("--bands", metavar="U,G,...", help="comma-separated band names, in channel order, for the "
                        "{band} of a --survey template: one file_<band> column each")
    parser.add_argument("--band", action="append", metavar="NAME=SURVEY",
                        help="one band and its survey (repeat per band, in channel order; instead of --survey)")
    parser.add_argument("--size", type=float, required=True, help="cutout width in arcsec")
    parser.add_argument("--pixels", type=int, required=True, help="cutout width in pixels")
    parser.add_argument("--out", required=True, help="FITS catalogue directory to write (resumable)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent requests (default 4)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser.add_argument("--retries", type=int, default=2, help="retries after a timeout (default 2)")
    parser.add_argument("--server", help="service address, e.g. a SkyView mirror's basicform.pl")
    args = parser.parse_args(argv)
    survey = band_surveys(args.survey, args.bands, args.band)
    result = fetch_catalogue(args.catalog, survey, args.size, args.pixels, args.out, workers=args.workers,
                             server=args.server, timeout=args.timeout, retries=args.retries)
    what = f"sources with all {len(result.bands)} bands" if result.bands else "cutouts"
    print(f"{result.fetched} {what} in {result.out}; {len(result.failed)} failed"
          + (f" (see {result.out / FAILED_FILE})" if len(result.failed) else ""))
    return 0 if result.fetched else 1  # scripts notice a fetch that produced nothing


if __name__ == "__main__":
    sys.exit(main())
