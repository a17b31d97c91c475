"""Training data as batches of named tensors, from an on-disk, memory-mapped cache of preprocessed cutouts.

:func:`open_cutouts` reads a data spec once (FITS catalogue directory or simulation), preprocesses
every cutout the way the recipe says, and keeps the result under
``<EXPLORER_HOME>/cache/cutouts/<key>/``::

    images.npy       float32 [N, C, S, S], preprocessed, with the rotation margin (memory-mapped)
    catalog.parquet  the rows that loaded: id, ra, dec, properties
    meta.json        the key's ingredients, the band names, per-band pixel scales, column metadata, skips

The key covers the data (the catalogue's bytes and every image file's size and time, or the
simulator's version and spec) and the preprocessing, so a second run does not read a FITS file and a
change to either builds a new cache. A cache that is incomplete or damaged is rebuilt, with a
message. Training on 10^6 cutouts then needs only a batch in memory: :meth:`Cutouts.batch` reads the
rows it is given.

A batch is a dict: ``images`` [B, C, S, S], ``bands`` (names), ``targets`` {column: float tensor [B]}
for the catalogue columns a method asks for, and ``row`` [B] (rows of the catalogue).
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
from training.data import data_folder, load_data, mixed_parts, parse_sim_spec

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
    _fd: int | None = field(default=None, repr=False)

    def __del__(self):
        if self._fd is not None:
            os.close(self._fd)

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

    def read(self, index: np.ndarray) -> np.ndarray:
        """The cutouts at ``index``, read with pread from the cache file: only the batch enters this process's
        memory (pages of a memory map, once touched, would count towards it until the map is dropped)."""
        if not isinstance(self.images, np.memmap) or self.images.filename is None:
            return np.ascontiguousarray(self.images[index])
        if self._fd is None:
            self._fd = os.open(self.images.filename, os.O_RDONLY)
        row_bytes = self.images[0].nbytes
        out = np.empty((len(index), *self.images.shape[1:]), dtype=np.float32)
        for j in np.argsort(index, kind="stable"):  # in file order
            start = self.images.offset + int(index[j]) * row_bytes
            out[j] = np.frombuffer(os.pread(self._fd, row_bytes, start), dtype=np.float32).reshape(out.shape[1:])
        return out

    def batch(self, rows: torch.Tensor, targets: tuple[str, ...] = (), device: torch.device | str = "cpu") -> dict:
        index = rows.numpy()
        images = torch.from_numpy(self.read(index)).to(device, non_blocking=True)
        return {"images": images, "bands": self.bands, "row": rows,
                "targets": {c: torch.as_tensor(self.catalog[c].to_numpy(dtype=np.float32)[index], device=device)
                            for c in targets}}


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
        from training.simulate import SIMULATOR_VERSION

        return {"spec": spec, "simulator": SIMULATOR_VERSION, "parsed": parse_sim_spec(spec)}
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
    if params.scaling != "calibrated" or not set(columns) <= set(catalog.columns):
        return None
    return catalog[columns].to_numpy(dtype=np.float64)


def _open(folder: Path, key: dict) -> Cutouts:
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("key") != key:
        raise ValueError("it was made for other data or settings")
    images = np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False)
    catalog = pd.read_parquet(folder / "catalog.parquet")
    if images.dtype != np.float32 or images.ndim != 4 or len(images) != len(catalog) or len(images) != meta["n"]:
        raise ValueError(f"images {images.dtype} {images.shape} do not match its {len(catalog)} catalogue rows")
    return Cutouts(images, catalog, meta["bands"], meta["columns"], meta, folder)


def _build(folder: Path, spec: str, key: dict, pixels: int, pixel_scale_arcsec: float, params: Preprocessing,
           progress: bool) -> Cutouts:
    data = load_data(spec, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec, progress=progress)
    bands = list(data.catalog.attrs.get("bands") or [f"band{i}" for i in range(data.images.shape[1])])
    with atomic_directory(folder) as tmp:
        first = preprocess(data.images[:1], params, margin_for_rotation=True)
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.float32,
                                           shape=(len(data.images), *first.shape[1:]))
        zero_points = row_zero_points(data.catalog, bands, params)
        for start in tqdm(range(0, len(images), CHUNK), desc="preprocessing", unit="chunk", disable=not progress):
            rows = slice(start, start + CHUNK)
            images[rows] = preprocess(data.images[rows], params, margin_for_rotation=True,
                                      zero_points=None if zero_points is None else zero_points[rows])
        images.flush()
        del images
        data.catalog.to_parquet(tmp / "catalog.parquet", index=False)
        (tmp / "meta.json").write_text(json.dumps({
            "key": key, "n": len(data.catalog), "bands": bands,
            "band_pixel_scales_arcsec": {b: pixel_scale_arcsec for b in bands},
            "columns": data.columns, "skipped": data.skipped, "spec": data.spec}, indent=1, default=str))
    return _open(folder, key)
