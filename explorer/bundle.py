"""The bundle: the one contract between ``training/`` (which writes it) and the explorer.

A bundle is a folder::

    manifest.json      name, creation time, encoder, data spec, N, D, PCA, UMAP, index, columns
    catalog.parquet    one row per source: id (str), ra, dec (deg, ICRS), then properties
    embeddings.npy     float32 [N, D], L2-normalised
    map.npy            float32 [N, 2], UMAP coordinates
    index.faiss        cosine-similarity index over the embeddings
    thumbnails.npy     uint8 [N, H, W] or [N, H, W, 3]
    pca.npz            PCA mean and components as plain arrays (no pickles anywhere)
    encoder.safetensors  optional: encoder weights for out-of-sample queries and fine-tuning
    predictions/<name>.parquet + <name>.json  optional sidecars written by heads: extra row-aligned
                       columns (and their units/descriptions) that load_bundle appends to the catalogue

Rows are aligned across every file. Bundles are written into a temporary folder
and renamed into place only when complete.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from explorer.atomic import atomic_directory, write_json
from explorer.errors import InputError

FORMAT_VERSION = 1
REQUIRED_FILES = ("manifest.json", "catalog.parquet", "embeddings.npy", "map.npy", "index.faiss", "thumbnails.npy")
ENCODER_FILE = "encoder.safetensors"
PCA_FILE = "pca.npz"
PREDICTIONS_DIR = "predictions"
LABELS_FILE = "labels.parquet"


@dataclass
class Bundle:
    path: Path
    manifest: dict
    catalog: pd.DataFrame
    embeddings: np.ndarray          # memory-mapped
    map_xy: np.ndarray
    thumbnails: np.ndarray          # memory-mapped
    index: faiss.Index
    _encoder: object = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.path.name)

    @property
    def n(self) -> int:
        return len(self.catalog)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    @property
    def property_columns(self) -> list[str]:
        return [c for c in self.catalog.columns if c not in ("id", "ra", "dec")]

    def column_unit(self, column: str) -> str:
        return self.manifest.get("columns", {}).get(column, {}).get("unit", "")

    def column_description(self, column: str) -> str:
        return self.manifest.get("columns", {}).get(column, {}).get("description", "")

    def pca(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean [D], components [P, D]) of the PCA behind the map."""
        with np.load(self.path / PCA_FILE, allow_pickle=False) as z:
            return z["mean"], z["components"]

    @property
    def has_encoder(self) -> bool:
        return (self.path / ENCODER_FILE).exists()

    def encoder(self):
        """The encoder as a torch module in eval mode, rebuilt from the manifest (cached)."""
        if self._encoder is None:
            from safetensors.torch import load_file

            from explorer.encoder import build_encoder

            if not self.has_encoder:
                raise InputError(f"bundle {self.name!r} has no {ENCODER_FILE}; it cannot embed new images")
            enc = self.manifest["encoder"]
            model, _ = build_encoder(enc["architecture"], enc["in_channels"])
            model.load_state_dict(load_file(self.path / ENCODER_FILE))
            self._encoder = model.eval()
        return self._encoder

    def preprocessing(self):
        from explorer.preprocess import Preprocessing

        return Preprocessing.from_dict(self.manifest["encoder"]["preprocessing"])


def load_bundle(path: str | Path, *, mmap: bool = True) -> Bundle:
    """Open and validate a bundle; every problem is an InputError naming the file."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InputError(f"bundle folder not found: {path}")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise InputError(f"{path} is not a complete bundle: missing {', '.join(missing)}")
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path / 'manifest.json'} is not valid JSON: {e}") from None
    mode = "r" if mmap else None
    try:
        catalog = pd.read_parquet(path / "catalog.parquet")
        embeddings = np.load(path / "embeddings.npy", mmap_mode=mode, allow_pickle=False)
        map_xy = np.load(path / "map.npy", allow_pickle=False)
        thumbnails = np.load(path / "thumbnails.npy", mmap_mode=mode, allow_pickle=False)
        index = faiss.read_index(str(path / "index.faiss"))
    except Exception as e:  # corrupt files come in many shapes; name the bundle and the cause
        raise InputError(f"{path} has an unreadable file: {type(e).__name__}: {e}") from None
    bundle = Bundle(path, manifest, catalog, embeddings, map_xy, thumbnails, index)
    _validate(bundle)
    _append_predictions(bundle)
    return bundle


def _append_predictions(b: Bundle) -> None:
    """Append the row-aligned columns of every predictions sidecar to the catalogue."""
    for table in sorted((b.path / PREDICTIONS_DIR).glob("*.parquet")):
        extra = pd.read_parquet(table)
        if len(extra) != b.n:
            raise InputError(f"{table}: {len(extra)} rows, but the bundle has {b.n}; delete or rebuild it")
        extra = extra.drop(columns=[c for c in extra.columns if c in b.catalog.columns and c in ("id", "ra", "dec")])
        b.catalog = pd.concat([b.catalog.drop(columns=[c for c in extra.columns if c in b.catalog.columns]),
                               extra.reset_index(drop=True)], axis=1)
        meta = table.with_suffix(".json")
        if meta.is_file():
            b.manifest.setdefault("columns", {}).update(json.loads(meta.read_text()).get("columns", {}))


def bundle_version(path: str | Path) -> float:
    """Latest modification time of the files a loaded bundle reflects: a cache key that changes when they do.

    Job progress files and other scratch are left out, so polling a running job does not reload the bundle.
    """
    path = Path(path)
    files = [path / f for f in (*REQUIRED_FILES, ENCODER_FILE, PCA_FILE, LABELS_FILE)]
    files += [path / PREDICTIONS_DIR, *(path / PREDICTIONS_DIR).glob("*")]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def _validate(b: Bundle) -> None:
    where = str(b.path)
    for col in ("id", "ra", "dec"):
        if col not in b.catalog.columns:
            raise InputError(f"{where}: catalog.parquet has no {col!r} column")
    n = len(b.catalog)
    sizes = {"embeddings.npy": len(b.embeddings), "map.npy": len(b.map_xy), "thumbnails.npy": len(b.thumbnails),
             "index.faiss": b.index.ntotal}
    wrong = {f: s for f, s in sizes.items() if s != n}
    if wrong:
        detail = ", ".join(f"{f} has {s}" for f, s in wrong.items())
        raise InputError(f"{where}: mismatched bundle: catalog.parquet has {n} rows but {detail}")
    if b.embeddings.ndim != 2 or b.embeddings.dtype != np.float32:
        raise InputError(f"{where}: embeddings.npy must be float32 [N, D], got {b.embeddings.dtype} {b.embeddings.shape}")
    if b.map_xy.shape != (n, 2):
        raise InputError(f"{where}: map.npy must be [N, 2], got {b.map_xy.shape}")
    if b.thumbnails.dtype != np.uint8 or b.thumbnails.ndim not in (3, 4):
        raise InputError(f"{where}: thumbnails.npy must be uint8 [N, H, W(, 3)], got {b.thumbnails.dtype} {b.thumbnails.shape}")
    if b.manifest.get("n") != n or b.manifest.get("dim") != b.embeddings.shape[1]:
        raise InputError(f"{where}: manifest says N={b.manifest.get('n')}, D={b.manifest.get('dim')} "
                         f"but the arrays are N={n}, D={b.embeddings.shape[1]}")


def write_bundle(out: str | Path, *, manifest: dict, catalog: pd.DataFrame, embeddings: np.ndarray,
                 map_xy: np.ndarray, thumbnails: np.ndarray, index: faiss.Index,
                 pca_mean: np.ndarray, pca_components: np.ndarray,
                 encoder_state: dict | None = None) -> Path:
    """Write every file of a bundle into a temporary folder, then rename it into place."""
    out = Path(out)
    catalog = catalog.reset_index(drop=True).copy()
    catalog["id"] = catalog["id"].astype(str)
    manifest = {"format_version": FORMAT_VERSION, "name": out.name,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **manifest, "n": len(catalog), "dim": int(embeddings.shape[1])}
    with atomic_directory(out) as tmp:
        catalog.to_parquet(tmp / "catalog.parquet", index=False)
        np.save(tmp / "embeddings.npy", np.ascontiguousarray(embeddings, dtype=np.float32))
        np.save(tmp / "map.npy", np.ascontiguousarray(map_xy, dtype=np.float32))
        np.save(tmp / "thumbnails.npy", np.ascontiguousarray(thumbnails, dtype=np.uint8))
        np.savez(tmp / PCA_FILE, mean=pca_mean.astype(np.float32), components=pca_components.astype(np.float32))
        faiss.write_index(index, str(tmp / "index.faiss"))
        if encoder_state is not None:
            from safetensors.torch import save_file

            save_file({k: v.detach().cpu().contiguous() for k, v in encoder_state.items()}, tmp / ENCODER_FILE)
        write_json(tmp / "manifest.json", manifest)
        load_bundle(tmp)  # refuse to publish a bundle the explorer could not open
    return out


def list_bundles(root: str | Path) -> list[Path]:
    """Every complete bundle directly inside ``root``, newest first."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
             and all((p / f).is_file() for f in REQUIRED_FILES)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
