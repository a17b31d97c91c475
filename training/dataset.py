"""Training data as batches of named tensors, from an on-disk, memory-mapped cache of preprocessed cutouts.

:func:`open_cutouts` reads a data spec once (FITS catalogue directory or simulation), preprocesses
every cutout the way the recipe says, and keeps the result under
``<EXPLORER_HOME>/cache/cutouts/<key>/``::

    images.npy       float32 [N, C, S, S], preprocessed, with the rotation margin (memory-mapped)
    partners.npy     the same for the second rendering of each source, when the data has positive pairs
    catalog.parquet  the rows that loaded: id, ra, dec, properties
    meta.json        the key's ingredients, the band names, per-band pixel scales, column metadata, skips

The key covers the data (the catalogue's bytes and every image file's size and time, or the
simulator's version and spec) and the preprocessing, so a second run does not read a FITS file and a
change to either builds a new cache. A cache that is incomplete or damaged is rebuilt, with a
message. Training on 10^6 cutouts then needs only a batch in memory: :meth:`Cutouts.batch` reads the
rows it is given.

A batch is a dict: ``images`` [B, C, S, S], ``bands`` (names), ``targets`` {column: float tensor [B]}
for the catalogue columns a method asks for, ``row`` [B] (rows of the catalogue) and, for a method
that trains on a simulator's positive pairs, ``partners`` [B, C, S, S].
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from explorer.core import config as explorer_config
from explorer.core.atomic import atomic_directory
from explorer.core.errors import InputError
from explorer.core.fitsio import CATALOG_FILE, file_columns, read_catalog_csv
from explorer.core.preprocess import Preprocessing, preprocess
from training.data import SourceSet, data_folder, load_data, mixed_parts, parse_sim_spec

CACHE_VERSION = 1
CHUNK = 2048  # images preprocessed at a time while a cache is built


@dataclass
class Cutouts:
    images: np.ndarray               # float32 [N, C, S, S], memory-mapped
    catalog: pd.DataFrame
    bands: list[str]
    columns: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    partners: np.ndarray | None = None   # float32 [N, C, S, S]: the second rendering of each source
    _fds: dict = field(default_factory=dict, repr=False)

    def __del__(self):
        for fd in self._fds.values():
            os.close(fd)

    def __len__(self) -> int:
        return len(self.images)

    def check_targets(self, targets: tuple[str, ...], method: str) -> None:
        missing = [c for c in targets if c not in self.catalog.columns]
        if missing:
            raise InputError(f"method {method!r} needs the catalogue column(s) {', '.join(missing)}, which the data "
                             f"lacks; it has {', '.join(map(str, self.catalog.columns))}")
        bad = [c for c in targets if not pd.api.types.is_numeric_dtype(self.catalog[c])]
        if bad:
            raise InputError(f"method {method!r} needs numeric catalogue column(s); {', '.join(bad)} are not")

    def check_partners(self, method: str) -> None:
        if self.partners is None:
            raise InputError(f"method {method!r} trains on a simulator's positive pairs, which this data lacks; "
                             "use sim:lens?...&pairs=1")

    def read(self, index: np.ndarray, array: np.ndarray | None = None) -> np.ndarray:
        """The cutouts at ``index`` (of ``images``, or of ``array``), read with pread from the cache file: only the
        batch enters this process's memory (pages of a memory map, once touched, would count towards it)."""
        array = self.images if array is None else array
        if not isinstance(array, np.memmap) or array.filename is None:
            return np.ascontiguousarray(array[index])
        if array.filename not in self._fds:
            self._fds[array.filename] = os.open(array.filename, os.O_RDONLY)
        fd, row_bytes = self._fds[array.filename], array[0].nbytes
        out = np.empty((len(index), *array.shape[1:]), dtype=np.float32)
        for j in np.argsort(index, kind="stable"):  # in file order
            start = array.offset + int(index[j]) * row_bytes
            out[j] = np.frombuffer(os.pread(fd, row_bytes, start), dtype=np.float32).reshape(out.shape[1:])
        return out

    def batch(self, rows: torch.Tensor, targets: tuple[str, ...] = (), device: torch.device | str = "cpu", *,
              partners: bool = False) -> dict:
        index = rows.numpy()
        batch = {"images": torch.from_numpy(self.read(index)).to(device, non_blocking=True), "bands": self.bands,
                 "row": rows, "targets": {c: torch.as_tensor(self.catalog[c].to_numpy(dtype=np.float32)[index],
                                                             device=device) for c in targets}}
        if partners:
            batch["partners"] = torch.from_numpy(self.read(index, self.partners)).to(device, non_blocking=True)
        return batch


def cache_key(spec: str, pixels: int, pixel_scale_arcsec: float, params: Preprocessing) -> dict:
    """What the cached cutouts depend on: the data's identity and every setting that shapes them."""
    return {"version": CACHE_VERSION, "data": data_identity(spec), "pixels": pixels,
            "pixel_scale_arcsec": pixel_scale_arcsec, "preprocessing": params.to_dict(), "margin_for_rotation": True}


def data_identity(spec: str) -> dict:
    spec = str(spec)
    parts = mixed_parts(spec)
    if len(parts) > 1:
        return {"mix": [data_identity(p) for p in parts]}
    if spec.startswith("sim:"):
        from training import clusters, splus
        from training.lenses import LENS_SIMULATOR_VERSION
        from training.simulate import SIMULATOR_VERSION

        parsed = parse_sim_spec(spec)
        version = {"lens": LENS_SIMULATOR_VERSION, "splus": splus.SIMULATOR_VERSION,
                   "clusters": clusters.SIMULATOR_VERSION}.get(parsed["kind"], SIMULATOR_VERSION)
        return {"spec": spec, "simulator": version, "parsed": parsed}
    folder = data_folder(spec)
    table = read_catalog_csv(folder)
    files = []
    for column in file_columns(table)[0]:
        for name in table[column].astype(str):
            path = Path(name) if Path(name).is_absolute() else folder / name
            stat = path.stat() if path.is_file() else None
            files.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{name}:missing")
    digest = hashlib.sha256((folder / CATALOG_FILE).read_bytes())
    digest.update("\n".join(files).encode())
    return {"spec": str(folder.resolve()), "sha256": digest.hexdigest()}


def open_cutouts(spec: str, *, pixels: int, pixel_scale_arcsec: float, params: Preprocessing,
                 cache_root: str | Path | None = None, progress: bool = True, say=print) -> Cutouts:
    """The preprocessed cutouts of ``spec`` from the cache, building the cache when it is missing or stale."""
    key = json.loads(json.dumps(cache_key(spec, pixels, pixel_scale_arcsec, params)))  # as meta.json holds it
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    folder = Path(cache_root or explorer_config.cache_dir()) / "cutouts" / digest
    if folder.exists():
        try:
            return _open(folder, key)
        except (OSError, ValueError, KeyError) as e:
            say(f"the cutout cache {folder.name} is damaged ({e}); rebuilding it")
    return _build(folder, spec, key, pixels, pixel_scale_arcsec, params, progress)


def row_zero_points(catalog: pd.DataFrame, bands: list[str], params: Preprocessing) -> np.ndarray | None:
    """Per-source zero points [N, C] from ``zp_<band>`` columns (calibrated scaling, zero points per field)."""
    columns = [f"zp_{b}" for b in bands]
    if not params.calibrated or not set(columns) <= set(catalog.columns):
        return None
    return catalog[columns].to_numpy(dtype=np.float64)


def preprocess_rows(data: SourceSet, rows=None, params: Preprocessing = Preprocessing(), *,
                    margin_for_rotation: bool = False) -> np.ndarray:
    """:func:`preprocess` of ``data``'s images at ``rows`` (all when None), each with its own zero points."""
    catalog, images = (data.catalog, data.images) if rows is None else (data.catalog.iloc[rows], data.images[rows])
    bands = data.catalog.attrs.get("bands") or []
    return preprocess(images, params, margin_for_rotation=margin_for_rotation,
                      zero_points=row_zero_points(catalog, bands, params))


def _open(folder: Path, key: dict) -> Cutouts:
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("key") != key:
        raise ValueError("it was made for other data or settings")
    images = np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False)
    catalog = pd.read_parquet(folder / "catalog.parquet")
    if images.dtype != np.float32 or images.ndim != 4 or len(images) != len(catalog) or len(images) != meta["n"]:
        raise ValueError(f"images {images.dtype} {images.shape} do not match its {len(catalog)} catalogue rows")
    partners = None
    if meta.get("partners"):
        partners = np.load(folder / "partners.npy", mmap_mode="r", allow_pickle=False)
        if partners.shape != images.shape or partners.dtype != np.float32:
            raise ValueError(f"partners {partners.dtype} {partners.shape} do not match images {images.shape}")
    return Cutouts(images, catalog, meta["bands"], meta["columns"], meta, folder, partners)


def _preprocess_to(path: Path, raw: np.ndarray, params: Preprocessing, zero_points: np.ndarray | None,
                   progress: bool) -> None:
    first = preprocess(raw[:1], params, margin_for_rotation=True)
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(raw), *first.shape[1:]))
    for start in tqdm(range(0, len(images), CHUNK), desc="preprocessing", unit="chunk", disable=not progress):
        rows = slice(start, start + CHUNK)
        images[rows] = preprocess(raw[rows], params, margin_for_rotation=True,
                                  zero_points=None if zero_points is None else zero_points[rows])
    images.flush()


def _build(folder: Path, spec: str, key: dict, pixels: int, pixel_scale_arcsec: float, params: Preprocessing,
           progress: bool) -> Cutouts:
    data = load_data(spec, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec, progress=progress)
    bands = list(data.catalog.attrs.get("bands") or [f"band{i}" for i in range(data.images.shape[1])])
    zero_points = row_zero_points(data.catalog, bands, params)
    with atomic_directory(folder) as tmp:
        _preprocess_to(tmp / "images.npy", data.images, params, zero_points, progress)
        if data.partners is not None:
            _preprocess_to(tmp / "partners.npy", data.partners, params, zero_points, progress)
        data.catalog.to_parquet(tmp / "catalog.parquet", index=False)
        (tmp / "meta.json").write_text(json.dumps({
            "key": key, "n": len(data.catalog), "bands": bands, "partners": data.partners is not None,
            "band_pixel_scales_arcsec": {b: pixel_scale_arcsec for b in bands},
            "columns": data.columns, "skipped": data.skipped, "spec": data.spec}, indent=1, default=str))
    return _open(folder, key)
