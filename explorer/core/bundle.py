"""The bundle: the one contract between ``training/`` (which writes it) and the explorer.

A bundle is a folder::

    manifest.json      name, creation time, encoder, data spec, N, D, PCA, UMAP, index, columns
    catalog.parquet    one row per source: id (str), ra, dec (deg, ICRS), then properties
    embeddings.npy     float32 [N, D], L2-normalised
    map.npy            float32 [N, 2], UMAP coordinates
    index.faiss        cosine-similarity index over the embeddings
    thumbnails.npy     uint8 [N, H, W] or [N, H, W, 3]
    band_thumbnails.npy  optional, multi-band data: uint8 [N, C, H, W], each band on its own (the band switcher)
    encoder_inputs.npy  optional: float32 [N, C, s, s], the preprocessed crops the encoder embedded (occlusion maps)
    band_classifier.safetensors  optional: paper 4's pretext band classifier (band_prediction bundles)
    pca.npz            PCA mean and components as plain arrays (no pickles anywhere)
    encoder.safetensors  optional: encoder weights for out-of-sample queries and fine-tuning
    predictions/<name>.parquet + <name>.json  optional sidecars written by heads: extra row-aligned
                       columns (and their units/descriptions) that load_bundle appends to the catalogue

Rows are aligned across every file. Bundles are written into a temporary folder
and renamed into place only when complete.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from explorer.core.atomic import atomic_directory, check_output_folder, recover, write_json
from explorer.core.errors import ArgumentParser, InputError, cli_entry
from explorer.core.surveys import FIRST

FORMAT_VERSION = 1
REQUIRED_FILES = ("manifest.json", "catalog.parquet", "embeddings.npy", "map.npy", "index.faiss", "thumbnails.npy")
ENCODER_FILE = "encoder.safetensors"
PCA_FILE = "pca.npz"
BAND_THUMBNAILS_FILE = "band_thumbnails.npy"
ENCODER_INPUTS_FILE = "encoder_inputs.npy"
BAND_CLASSIFIER_FILE = "band_classifier.safetensors"   # paper 4's pretext classifier (band_prediction bundles)
PREDICTIONS_DIR = "predictions"
LABELS_FILE = "labels.parquet"
CHECKSUMMED_FILES = (*REQUIRED_FILES[1:], PCA_FILE, ENCODER_FILE, BAND_THUMBNAILS_FILE, BAND_CLASSIFIER_FILE,
                     ENCODER_INPUTS_FILE)
FULL_CHECK_MAX_BYTES = 64 * 1024 * 1024  # files up to this size are hashed at every open; larger ones on demand


@contextmanager
def reading(path: Path, what: str = "file"):
    """Any failure while reading a bundle file becomes an InputError naming the file (not the folder)."""
    try:
        yield
    except InputError:
        raise
    except Exception as e:  # corrupt files come in many shapes: parquet, npy, JSON, safetensors, FAISS
        raise InputError(f"{path.parent.name}/{path.name}: unreadable {what} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else 'corrupt'})") from None


def read_json(path: Path, expected: type = dict):
    """A JSON file of the bundle, which must hold an ``expected`` value."""
    with reading(path, "JSON"):
        value = json.loads(path.read_text())
    if not isinstance(value, expected):
        raise InputError(f"{path.parent.name}/{path.name}: expected a JSON {expected.__name__}, "
                         f"got {type(value).__name__}")
    return value


@dataclass
class EncoderInfo:
    """How the bundle's embeddings were made, and how to make more (queries, fine-tuning)."""
    architecture: str
    in_channels: int = 1
    feature_dim: int = 0
    input_pixels: int = 70
    preprocessing: dict = field(default_factory=dict)
    ssl_method: str = ""
    epochs_trained: int = 0
    checkpoint_sha256: str = ""
    band_classifier_hidden: int = 0     # > 0 when the bundle carries BAND_CLASSIFIER_FILE


@dataclass
class DataInfo:
    """Where the sources came from and the geometry of their cutouts."""
    spec: str = ""
    survey: str = ""
    pixels: int = FIRST.pixels
    pixel_scale_arcsec: float = FIRST.pixel_scale_arcsec
    bands: list = field(default_factory=lambda: ["image"])
    band_pixel_scales_arcsec: dict = field(default_factory=dict)
    skipped: int = 0
    shards: int = 1


@dataclass
class Manifest:
    """``manifest.json``, typed: every reader goes through this, and every writer builds one."""
    name: str = ""
    description: str = ""
    created: str = ""
    n: int = 0
    dim: int = 0
    format_version: int = FORMAT_VERSION
    encoder: EncoderInfo | None = None
    data: DataInfo = field(default_factory=DataInfo)
    columns: dict = field(default_factory=dict)   # column -> {"unit", "description"}
    pca: dict = field(default_factory=dict)
    umap: dict = field(default_factory=dict)
    index: dict = field(default_factory=dict)
    thumbnails: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)     # file -> {"bytes", "sha256"}

    @property
    def method(self) -> str:
        return self.encoder.ssl_method if self.encoder else ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values, where: str = "manifest.json") -> "Manifest":
        """A manifest from its JSON, every section checked; unknown keys are kept out (older or newer writers)."""
        if not isinstance(values, dict):
            raise InputError(f"{where}: expected a JSON dict, got {type(values).__name__}")
        kinds = {f.name: f.type for f in fields(cls)}
        plain = {"columns": dict, "pca": dict, "umap": dict, "index": dict, "thumbnails": dict, "quality": dict,
                 "files": dict, "name": str, "description": str, "created": str, "n": int, "dim": int,
                 "format_version": int, "encoder": dict, "data": dict}
        for key, kind in plain.items():
            if key in values and values[key] is not None and not isinstance(values[key], kind):
                raise InputError(f"{where}: {key!r} must be a {kind.__name__}, got {type(values[key]).__name__}")
        bad = [c for c, v in values.get("columns", {}).items() if not isinstance(v, dict)]
        if bad:
            raise InputError(f"{where}: column entries must be {{unit, description}} mappings; wrong: "
                             f"{', '.join(bad[:5])}")
        known = {k: v for k, v in values.items() if k in kinds and k not in ("encoder", "data")}
        encoder = values.get("encoder")
        return cls(**known, encoder=_section(EncoderInfo, encoder, f"{where}: encoder") if encoder else None,
                   data=_section(DataInfo, values.get("data") or {}, f"{where}: data"))


def _section(cls, values: dict, where: str):
    checks = {"architecture": str, "in_channels": int, "feature_dim": int, "input_pixels": int, "band_classifier_hidden": int,
              "preprocessing": dict, "spec": str, "pixels": int, "bands": list, "band_pixel_scales_arcsec": dict}
    for key, kind in checks.items():
        if key in values and not isinstance(values[key], kind):
            raise InputError(f"{where}.{key} must be a {kind.__name__}, got {values[key]!r}")
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in values.items() if k in names})
    except TypeError as e:  # a required entry missing
        raise InputError(f"{where}: {e}") from None


@dataclass
class Bundle:
    path: Path
    manifest: Manifest
    catalog: pd.DataFrame
    embeddings: np.ndarray          # memory-mapped
    map_xy: np.ndarray
    thumbnails: np.ndarray          # memory-mapped
    index: faiss.Index
    band_thumbnails: np.ndarray | None = None   # memory-mapped [N, C, H, W], multi-band bundles
    encoder_inputs: np.ndarray | None = None    # memory-mapped float32 [N, C, s, s] (preprocess() output)
    notes: list[str] = field(default_factory=list)   # repairs made when the bundle was opened
    prediction_columns: list[str] = field(default_factory=list)  # columns appended from heads' sidecars
    _encoder: object = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name or self.path.name

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
        return self.manifest.columns.get(column, {}).get("unit", "")

    def column_description(self, column: str) -> str:
        return self.manifest.columns.get(column, {}).get("description", "")

    def pca(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean [D], components [P, D]) of the PCA behind the map."""
        with reading(self.path / PCA_FILE, "PCA file"), np.load(self.path / PCA_FILE, allow_pickle=False) as z:
            mean, components = z["mean"], z["components"]
        if mean.shape != (self.dim,) or components.ndim != 2 or components.shape[1] != self.dim:
            raise InputError(f"{self.name}/{PCA_FILE}: shapes {mean.shape}, {components.shape} do not fit {self.dim}-d "
                             "embeddings")
        return mean, components

    @property
    def has_encoder(self) -> bool:
        return (self.path / ENCODER_FILE).exists()

    def encoder(self):
        """The encoder as a torch module in eval mode, rebuilt from the manifest (cached)."""
        if self._encoder is None:
            from safetensors.torch import load_file

            from explorer.core.encoder import build_encoder

            if not self.has_encoder:
                raise InputError(f"bundle {self.name!r} has no {ENCODER_FILE}; it cannot embed new images")
            enc = self.manifest.encoder
            model, _ = build_encoder(enc.architecture, enc.in_channels)
            with reading(self.path / ENCODER_FILE, "encoder weights"):
                model.load_state_dict(load_file(self.path / ENCODER_FILE))
            self._encoder = model.eval()
        return self._encoder

    def band_classifier(self):
        """Paper 4's pretext classifier (one band's features -> a logit per band) in eval mode, or None."""
        enc = self.manifest.encoder
        if enc is None or not enc.band_classifier_hidden or not (self.path / BAND_CLASSIFIER_FILE).exists():
            return None
        from safetensors.torch import load_file

        from explorer.core.encoder import band_classifier

        encoder = self.encoder()
        model = band_classifier(encoder.band_dim, encoder.bands, enc.band_classifier_hidden)
        with reading(self.path / BAND_CLASSIFIER_FILE, "band classifier weights"):
            model.load_state_dict(load_file(self.path / BAND_CLASSIFIER_FILE))
        return model.eval()

    def preprocessing(self):
        from explorer.core.preprocess import Preprocessing

        return Preprocessing.from_dict(self.manifest.encoder.preprocessing)


def _optional_array(path: Path, mode):
    if not path.is_file():
        return None
    with reading(path, "array"):
        return np.load(path, mmap_mode=mode, allow_pickle=False)


def load_bundle(path: str | Path, *, mmap: bool = True) -> Bundle:
    """Open and validate a bundle; every problem is an InputError naming the file.

    An interrupted replacement of the folder is first finished or rolled back (see
    :func:`explorer.core.atomic.recover`); what was done is in ``bundle.notes``.
    """
    path = Path(path).expanduser()
    repaired = recover(path)
    if not path.is_dir():
        raise InputError(f"bundle folder not found: {path}")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise InputError(f"{path} is not a complete bundle: missing {', '.join(missing)}")
    manifest = Manifest.from_dict(read_json(path / "manifest.json"), f"{path.name}/manifest.json")
    check_files(path, manifest, full=False)
    mode = "r" if mmap else None
    with reading(path / "catalog.parquet", "catalogue"):
        catalog = pd.read_parquet(path / "catalog.parquet")
    with reading(path / "embeddings.npy", "array"):
        embeddings = np.load(path / "embeddings.npy", mmap_mode=mode, allow_pickle=False)
    with reading(path / "map.npy", "array"):
        map_xy = np.load(path / "map.npy", allow_pickle=False)
    with reading(path / "thumbnails.npy", "array"):
        thumbnails = np.load(path / "thumbnails.npy", mmap_mode=mode, allow_pickle=False)
    with reading(path / "index.faiss", "FAISS index"):
        index = faiss.read_index(str(path / "index.faiss"))
    band_thumbnails, encoder_inputs = (_optional_array(path / f, mode) for f in (BAND_THUMBNAILS_FILE, ENCODER_INPUTS_FILE))
    bundle = Bundle(path, manifest, catalog, embeddings, map_xy, thumbnails, index, band_thumbnails, encoder_inputs)
    if repaired:
        bundle.notes.append(repaired)
    _validate(bundle)
    _append_predictions(bundle)
    return bundle


def is_bundle(path: Path) -> bool:
    """True for a folder that holds a bundle (complete or not): replacing it loses only a bundle."""
    return (Path(path) / "manifest.json").is_file() and (Path(path) / "catalog.parquet").is_file()


def unique_ids(ids: pd.Series) -> tuple[pd.Series, int]:
    """The ids as strings, repeats made unique with a ``#2``, ``#3``... suffix; and how many were renamed."""
    ids = ids.astype(str).reset_index(drop=True)
    repeat = ids.groupby(ids).cumcount()
    renamed = repeat > 0
    if not renamed.any():
        return ids, 0
    ids = ids.where(~renamed, ids + "#" + (repeat + 1).astype(str))
    if ids.duplicated().any():  # "a#2" already existed: fall back to the row number
        ids = ids.where(~ids.duplicated(keep=False), ids + "@" + ids.index.astype(str))
    return ids, int(renamed.sum())


def file_checksums(path: Path) -> dict:
    """{file: {"bytes", "sha256"}} of the bundle's files (the manifest itself excluded)."""
    return {f: {"bytes": (path / f).stat().st_size, "sha256": sha256_file(path / f)}
            for f in CHECKSUMMED_FILES if (path / f).is_file()}


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file (bundle checksums, checkpoint identities), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(path: str | Path, manifest: Manifest | None = None, *, full: bool = True) -> int:
    """Compare the files with the manifest's sizes and sha256; returns how many were hashed.

    Sizes are always compared; a file is hashed when ``full`` or when it is small
    (``FULL_CHECK_MAX_BYTES``). Bundles written before checksums existed pass unchecked.
    """
    path = Path(path)
    if manifest is None:
        manifest = Manifest.from_dict(read_json(path / "manifest.json"), f"{path.name}/manifest.json")
    files = manifest.files
    hashed = 0
    for name, expected in files.items():
        f = path / str(name)
        if not isinstance(expected, dict) or not f.is_file():
            raise InputError(f"{path.name}/{name}: listed in the manifest but missing or malformed")
        size = f.stat().st_size
        if size != expected.get("bytes"):
            raise InputError(f"{path.name}/{name}: {size:,} bytes where the manifest says {expected.get('bytes')}; "
                             "the file is damaged or was replaced — rebuild the bundle")
        if full or size <= FULL_CHECK_MAX_BYTES:
            hashed += 1
            if sha256_file(f) != expected.get("sha256"):
                raise InputError(f"{path.name}/{name}: checksum mismatch; the file is damaged — rebuild the bundle")
    return hashed


def _append_predictions(b: Bundle) -> None:
    """Append the row-aligned columns of every predictions sidecar to the catalogue."""
    for table in sorted((b.path / PREDICTIONS_DIR).glob("*.parquet")):
        with reading(table, "predictions sidecar"):
            extra = pd.read_parquet(table)
        if len(extra) != b.n:
            raise InputError(f"{PREDICTIONS_DIR}/{table.name}: {len(extra)} rows, but the bundle has {b.n}; "
                             "delete it or train the head again")
        extra = extra.drop(columns=[c for c in extra.columns if c in b.catalog.columns and c in ("id", "ra", "dec")])
        b.catalog = pd.concat([b.catalog.drop(columns=[c for c in extra.columns if c in b.catalog.columns]),
                               extra.reset_index(drop=True)], axis=1)
        b.prediction_columns += [c for c in extra.columns if c not in b.prediction_columns]
        meta = table.with_suffix(".json")
        if meta.is_file():
            columns = read_json(meta).get("columns", {})
            if not isinstance(columns, dict) or not all(isinstance(v, dict) for v in columns.values()):
                raise InputError(f"{PREDICTIONS_DIR}/{meta.name}: 'columns' must map names to {{unit, description}}")
            b.manifest.columns.update(columns)


def bundle_version(path: str | Path) -> float:
    """Latest modification time of the files a loaded bundle reflects: a cache key that changes when they do.

    Job progress files and other scratch are left out, so polling a running job does not reload the bundle.
    """
    path = Path(path)
    files = [path / f for f in (*REQUIRED_FILES, ENCODER_FILE, PCA_FILE, LABELS_FILE)]
    files += [path / PREDICTIONS_DIR, *(path / PREDICTIONS_DIR).glob("*")]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def _validate(b: Bundle) -> None:
    where = b.path.name
    for col in ("id", "ra", "dec"):
        if col not in b.catalog.columns:
            raise InputError(f"{where}: catalog.parquet has no {col!r} column")
    n = len(b.catalog)
    sizes = {"embeddings.npy": len(b.embeddings), "map.npy": len(b.map_xy), "thumbnails.npy": len(b.thumbnails),
             "index.faiss": b.index.ntotal}
    wrong = {f: s for f, s in sizes.items() if s != n}
    if not wrong and b.index.d != b.embeddings.shape[-1]:
        raise InputError(f"{where}: index.faiss is {b.index.d}-d but the embeddings are {b.embeddings.shape[-1]}-d")
    if wrong:
        detail = ", ".join(f"{f} has {s}" for f, s in wrong.items())
        raise InputError(f"{where}: mismatched bundle: catalog.parquet has {n} rows but {detail}")
    if b.embeddings.ndim != 2 or b.embeddings.dtype != np.float32:
        raise InputError(f"{where}: embeddings.npy must be float32 [N, D], got {b.embeddings.dtype} {b.embeddings.shape}")
    if b.map_xy.shape != (n, 2):
        raise InputError(f"{where}: map.npy must be [N, 2], got {b.map_xy.shape}")
    if b.thumbnails.dtype != np.uint8 or b.thumbnails.ndim not in (3, 4):
        raise InputError(f"{where}: thumbnails.npy must be uint8 [N, H, W(, 3)], got {b.thumbnails.dtype} {b.thumbnails.shape}")
    bands = b.band_thumbnails
    if bands is not None and (bands.dtype != np.uint8 or bands.shape[:2] != (n, len(b.manifest.data.bands))
                              or bands.ndim != 4):
        raise InputError(f"{where}: {BAND_THUMBNAILS_FILE} must be uint8 [N, bands, H, W] = [{n}, "
                         f"{len(b.manifest.data.bands)}, H, W], got {bands.dtype} {bands.shape}")
    inputs, enc = b.encoder_inputs, b.manifest.encoder
    if inputs is not None and (inputs.dtype != np.float32 or inputs.ndim != 4 or len(inputs) != n
                               or (enc is not None and inputs.shape[1] != enc.in_channels)):
        raise InputError(f"{where}: {ENCODER_INPUTS_FILE} must be float32 [N, channels, s, s] with N = {n}, "
                         f"got {inputs.dtype} {inputs.shape}")
    ra, dec = (pd.to_numeric(b.catalog[c], errors="coerce").to_numpy(dtype=float) for c in ("ra", "dec"))
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra <= 360) & (np.abs(dec) <= 90))
    if bad.any():
        raise InputError(f"{where}: catalog.parquet has {int(bad.sum())} row(s) with a missing or out-of-range "
                         f"ra/dec (first: row {int(np.flatnonzero(bad)[0])})")
    duplicated = b.catalog["id"].astype(str).duplicated()
    if duplicated.any():
        raise InputError(f"{where}: catalog.parquet repeats {int(duplicated.sum())} source id(s), e.g. "
                         f"{b.catalog['id'].iat[int(np.flatnonzero(duplicated)[0])]!r}; rebuild it with training.embed")
    if b.manifest.n != n or b.manifest.dim != b.embeddings.shape[1]:
        raise InputError(f"{where}: manifest says N={b.manifest.n}, D={b.manifest.dim} "
                         f"but the arrays are N={n}, D={b.embeddings.shape[1]}")


def write_bundle(out: str | Path, *, manifest: Manifest, catalog: pd.DataFrame, embeddings: np.ndarray,
                 map_xy: np.ndarray, thumbnails: np.ndarray, index: faiss.Index,
                 pca_mean: np.ndarray, pca_components: np.ndarray,
                 encoder_state: dict | None = None, band_thumbnails: np.ndarray | None = None,
                 band_classifier_state: dict | None = None, encoder_inputs: np.ndarray | None = None) -> Path:
    """Write every file of a bundle into a temporary folder, then rename it into place.

    The manifest's name, creation time, N, D and file checksums are filled in here.
    """
    out = check_output_folder(out, "bundle", is_bundle, overwrite=True)
    catalog = catalog.reset_index(drop=True).copy()
    catalog["id"], _ = unique_ids(catalog["id"])
    manifest = replace(manifest, format_version=FORMAT_VERSION, name=out.name,
                       created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       n=len(catalog), dim=int(embeddings.shape[1]))
    with atomic_directory(out) as tmp:
        catalog.to_parquet(tmp / "catalog.parquet", index=False)
        np.save(tmp / "embeddings.npy", np.ascontiguousarray(embeddings, dtype=np.float32))
        np.save(tmp / "map.npy", np.ascontiguousarray(map_xy, dtype=np.float32))
        np.save(tmp / "thumbnails.npy", np.ascontiguousarray(thumbnails, dtype=np.uint8))
        if band_thumbnails is not None:
            np.save(tmp / BAND_THUMBNAILS_FILE, np.ascontiguousarray(band_thumbnails, dtype=np.uint8))
        if encoder_inputs is not None:
            np.save(tmp / ENCODER_INPUTS_FILE, np.ascontiguousarray(encoder_inputs, dtype=np.float32))
        np.savez(tmp / PCA_FILE, mean=pca_mean.astype(np.float32), components=pca_components.astype(np.float32))
        faiss.write_index(index, str(tmp / "index.faiss"))
        for state, name in ((encoder_state, ENCODER_FILE), (band_classifier_state, BAND_CLASSIFIER_FILE)):
            if state is not None:
                from safetensors.torch import save_file

                save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp / name)
        write_json(tmp / "manifest.json", replace(manifest, files=file_checksums(tmp)).to_dict())
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


def is_missing(series: pd.Series) -> np.ndarray:
    """Unlabelled cells: missing values and empty or blank text."""
    missing = series.isna().to_numpy(dtype=bool)
    if not pd.api.types.is_numeric_dtype(series):
        missing = missing | series.astype("string").str.strip().fillna("").eq("").to_numpy(dtype=bool)
    return missing


MISSING_LABEL = "(missing)"


def category_labels(series: pd.Series) -> np.ndarray:
    """A categorical column as text, with missing values and blank text both shown as "(missing)"."""
    return np.where(is_missing(series), MISSING_LABEL, series.astype("string").fillna("").to_numpy(dtype=object))


@cli_entry
def main(argv=None):
    """``python -m explorer.core.bundle BUNDLE...``: open each bundle and hash every file against its manifest."""
    parser = ArgumentParser(prog="python -m explorer.core.bundle", description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("bundles", nargs="+", metavar="BUNDLE")
    for path in parser.parse_args(argv).bundles:
        bundle = load_bundle(path)
        hashed = check_files(bundle.path)
        print(f"{bundle.name}: {bundle.n:,} sources, {hashed} file(s) match their sha256"
              + ("" if hashed else " (written before checksums: rebuild it to get them)"))


if __name__ == "__main__":
    main()
