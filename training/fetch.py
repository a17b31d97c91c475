"""Build a FITS catalogue directory from any catalogue by fetching a survey cutout per row.

    python -m training.fetch --catalog sources.csv --survey "VLA FIRST (1.4 GHz)" \\
        --size 270 --pixels 150 --out data/my_sources

``--catalog`` is a CSV, VOTable or FITS table with RA/Dec (degrees, or sexagesimal strings;
columns ``ra``/``dec``, ``RAJ2000``/``DEJ2000`` and the like) and any property columns.
``--survey`` is a SkyView survey name, ``hips:<HiPS id>`` or ``local:<folder>``.

The output folder is the layout every loader reads (``catalog.csv`` + ``fits/``), keeping
the catalogue's columns; units and descriptions from a VOTable/FITS table go to
``columns.yaml``. Rows that fail are written to ``failed.csv`` with the reason, never
dropped silently. The run is resumable: every cutout is written atomically as it arrives,
and a rerun of the same command fetches only what is missing (survey answers are cached
too). ``fetch.json`` records the settings, so a rerun with different ones is refused.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
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


@dataclass
class FetchResult:
    out: Path
    fetched: int      # rows with a cutout in the folder (this run or an earlier one)
    failed: pd.DataFrame


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


def fetch_catalogue(catalog: str | Path, survey: str, size_arcsec: float, pixels: int, out: str | Path, *,
                    workers: int = 4, provider: CutoutProvider | None = None, progress: bool = True,
                    **provider_options) -> FetchResult:
    """Fetch a cutout for every row of ``catalog`` into the FITS catalogue directory ``out``."""
    if not (np.isfinite(size_arcsec) and size_arcsec > 0):
        raise InputError(f"--size must be a positive number of arcsec, got {size_arcsec}")
    if not 8 <= pixels <= 4096:
        raise InputError(f"--pixels must be from 8 to 4096, got {pixels}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    table, units = read_catalogue_table(catalog)
    coords, valid, ra_col, dec_col = catalogue_positions(table, Path(catalog).name)
    provider = provider or provider_for(survey, **provider_options)
    out = Path(out).expanduser()
    _claim(out, {"catalog": str(Path(catalog).expanduser().resolve()), "catalog_sha256": _sha256(catalog),
                 "survey": survey, "size_arcsec": float(size_arcsec), "pixels": int(pixels)})

    names = _file_names(table)
    reasons: dict[int, str] = {i: "invalid position: RA/Dec missing or out of range" for i in np.flatnonzero(~valid)}
    todo = [i for i in np.flatnonzero(valid) if not (out / names[i]).is_file()]

    def fetch(i: int) -> None:
        image, wcs = provider.cutout(coords[i], size_arcsec, pixels)
        header = wcs.to_header()
        header["SURVEY"] = (survey[:68], "cutout source")
        header["CATROW"] = (int(i), "row in the input catalogue")
        with atomic_path(out / names[i]) as tmp:
            fits.PrimaryHDU(image.astype(np.float32), header).writeto(tmp)

    pool = ThreadPoolExecutor(workers)
    try:
        futures = {pool.submit(fetch, i): i for i in todo}
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"fetching {provider.name}",
                           unit="cutout", disable=not progress):
            try:
                future.result()
            except InputError as e:
                reasons[futures[future]] = str(e)
            except Exception as e:  # one odd answer must not end a long batch; it is listed, not hidden
                reasons[futures[future]] = f"unexpected {type(e).__name__}: {e}"
    finally:  # also on Ctrl-C: keep what arrived, list what failed, and leave the rest for the rerun
        pool.shutdown(wait=True, cancel_futures=True)
        done = [i for i in range(len(table)) if valid[i] and (out / names[i]).is_file()]
        failed = _write_outputs(out, table, coords, names, done, reasons, ra_col, dec_col, units)
    return FetchResult(out, len(done), failed)


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


def _file_names(table: pd.DataFrame) -> list[str]:
    """fits/<row>[_<name>].fits: stable across reruns, readable, safe on every file system."""
    lower = {str(c).lower(): c for c in table.columns}
    name_col = next((lower[n] for n in NAME_COLUMNS if n in lower), None)
    names = []
    for i in range(len(table)):
        label = "" if name_col is None else re.sub(r"[^A-Za-z0-9.+\-]+", "_", str(table[name_col].iat[i]))[:60]
        names.append(f"fits/{i:06d}{'_' + label if label else ''}.fits")
    return names


def _write_outputs(out: Path, table: pd.DataFrame, coords: SkyCoord, names: list[str], done: list[int],
                   reasons: dict[int, str], ra_col: str, dec_col: str, units: dict) -> pd.DataFrame:
    properties = table.drop(columns=[ra_col, dec_col])
    positions = pd.DataFrame({"ra": coords.ra.deg, "dec": coords.dec.deg})
    catalog = pd.concat([pd.DataFrame({"file": names}), positions, properties.reset_index(drop=True)], axis=1)
    with atomic_path(out / CATALOG_FILE) as tmp:
        catalog.iloc[done].to_csv(tmp, index=False)
    rows = sorted(reasons)
    failed = pd.concat([pd.DataFrame({"row": rows, "reason": [reasons[i] for i in rows]}),
                        table.iloc[rows].reset_index(drop=True)], axis=1)
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


@cli_entry
def main(argv=None):
    parser = ArgumentParser(prog="python -m training.fetch", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--catalog", required=True, help="CSV, VOTable or FITS table with RA/Dec and properties")
    parser.add_argument("--survey", required=True, help=SURVEY_HELP)
    parser.add_argument("--size", type=float, required=True, help="cutout width in arcsec")
    parser.add_argument("--pixels", type=int, required=True, help="cutout width in pixels")
    parser.add_argument("--out", required=True, help="FITS catalogue directory to write (resumable)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent requests (default 4)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    parser.add_argument("--retries", type=int, default=2, help="retries after a timeout (default 2)")
    parser.add_argument("--server", help="service address, e.g. a SkyView mirror's basicform.pl")
    args = parser.parse_args(argv)
    result = fetch_catalogue(args.catalog, args.survey, args.size, args.pixels, args.out, workers=args.workers,
                             server=args.server, timeout=args.timeout, retries=args.retries)
    print(f"{result.fetched} cutouts in {result.out}; {len(result.failed)} failed"
          + (f" (see {result.out / FAILED_FILE})" if len(result.failed) else ""))
    return 0 if result.fetched else 1  # scripts notice a fetch that produced nothing


if __name__ == "__main__":
    sys.exit(main())
