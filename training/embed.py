"""Embed a catalogue with a trained encoder and write a bundle for the explorer.

    python -m training.embed --checkpoint runs/demo --data <DATA> --out bundles/demo

Steps: encode every source (batched) -> L2-normalise -> PCA (<= 200 components)
-> UMAP 2-D on the PCA space, cosine metric -> FAISS index -> thumbnails -> bundle.

At survey scale the encoding is split into shards, run as separate jobs (e.g. a cluster job
array), then merged into one bundle (PCA, map and index over all sources; the index type follows
N, IVF-PQ from 10^7):

    python -m training.embed --checkpoint runs/x --data <DATA> --out shards/0 --shard 0/4   # ... 3/4
    python -m training.embed --merge shards/0 shards/1 shards/2 shards/3 --out bundles/survey

A single run is the one-shard case of the same two steps.
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("embed")

import dataclasses
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_directory, check_output_folder, scratch_folder, write_json
from explorer.core.bundle import (BAND_THUMBNAILS_FILE, ENCODER_INPUTS_FILE, DataInfo, EncoderInfo, Manifest, is_bundle, load_bundle,
                                  sha256_file, unique_ids, write_bundle)
from explorer.core.encoder import embed, resolve_device
from explorer.core.errors import InputError, cli_entry
from training import cli
from explorer.core.fitsio import CATALOG_FILE, COLUMNS_FILE, KNOWN_COLUMNS, file_columns, read_catalog_csv
from explorer.core.preprocess import ASINH_SOFTENING, COLORMAP, band_thumbnails, centre_crop, to_thumbnails
from explorer.core.search import ANOMALY_K, PERCENTILES, build_index, neighbourhood, place_on_map
from explorer.core.surveys import FIRST
from training.data import SourceSet, load_data
from training.dataset import open_cutouts, preprocess_rows
from training.options import MapConfig, checked
from training.quality import SIZE_COLUMNS, baseline_report, compare_with_baselines, map_organisation
from training.train import CHECKPOINT, encoder_from_checkpoint, load_checkpoint

BASE_COLUMNS = {c: {"unit": KNOWN_COLUMNS[c][0], "description": KNOWN_COLUMNS[c][1]} for c in ("id", "ra", "dec")}


UMAP_FIT_MAX = 20_000     # UMAP is fitted on at most this many sources; the rest are placed (see fit_map)
PCA_FIT_MAX = 100_000     # PCA is fitted on at most this many sources, then applied to all
PLACEMENT_K = 5           # fitted neighbours whose map positions place each remaining source
CHUNK = 100_000
SHARD_FILE = "shard.json"
BAND_THUMBNAILS_MAX_BYTES = 2 * 1024 ** 3   # per shard: a band switcher is not worth more than this
ENCODER_INPUTS_MAX_BYTES = 512 * 1024 ** 2  # per shard: larger catalogues re-read their images for occlusion maps


def fit_map(embeddings: np.ndarray, pca_components: int, n_neighbors: int, min_dist: float, seed: int, *,
            umap_fit_max: int = UMAP_FIT_MAX, progress: bool = False):
    """PCA then a cosine UMAP on the PCA space; returns (map [N, 2], pca, map parameters).

    At scale: PCA (randomized solver) is fitted on up to ``PCA_FIT_MAX`` random sources, UMAP on up
    to ``umap_fit_max``; every other source is placed at the similarity-weighted mean of its
    ``PLACEMENT_K`` most cosine-similar fitted sources in PCA space
    (:func:`explorer.core.search.place_on_map`, the same rule that places out-of-sample queries).
    """
    import umap  # imported here: numba compilation is slow and only this step needs it

    n, d = embeddings.shape
    rng = np.random.default_rng(seed)
    pca_rows = _subset(n, PCA_FIT_MAX, rng)
    pca = PCA(n_components=min(pca_components, d, len(pca_rows)), random_state=seed)
    pca.fit(np.asarray(embeddings[pca_rows], dtype=np.float32))
    reduced = np.concatenate([pca.transform(embeddings[i:i + CHUNK]).astype(np.float32) for i in range(0, n, CHUNK)])
    fitted = _subset(n, umap_fit_max, rng)
    params = {"n_neighbors": min(n_neighbors, len(fitted) - 1), "min_dist": min_dist, "metric": "cosine",
              "random_state": seed, "input": "pca", "fitted_on": int(len(fitted)), "placed": int(n - len(fitted))}
    with warnings.catch_warnings():  # umap warns that a random_state disables parallelism: reproducibility wins
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(n_components=2, n_neighbors=params["n_neighbors"], min_dist=min_dist, metric="cosine",
                            random_state=seed, verbose=False)
        fitted_xy = reducer.fit_transform(reduced[fitted]).astype(np.float32)
    map_xy = np.empty((n, 2), dtype=np.float32)
    map_xy[fitted] = fitted_xy
    rest = np.setdiff1d(np.arange(n), fitted)
    if len(rest):
        params.update(placement="similarity-weighted mean of the nearest fitted sources (cosine, PCA space)",
                      placement_k=PLACEMENT_K)
        map_xy[rest] = place_by_neighbours(reduced[fitted], fitted_xy, reduced[rest], PLACEMENT_K, progress)
    return map_xy, pca, params


def _subset(n: int, at_most: int, rng: np.random.Generator) -> np.ndarray:
    """All rows, or a sorted random subset of ``at_most``."""
    return np.arange(n) if n <= at_most else np.sort(rng.choice(n, size=at_most, replace=False))


def place_by_neighbours(fitted: np.ndarray, fitted_xy: np.ndarray, others: np.ndarray, k: int,
                        progress: bool = False) -> np.ndarray:
    """Map positions [m, 2] for ``others``: the cosine-weighted mean of their k nearest ``fitted`` points' positions."""
    import faiss

    from explorer.core.search import faiss_threads

    def unit(x):
        return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), dtype=np.float32)

    index = faiss.IndexFlatIP(fitted.shape[1])
    index.add(unit(fitted))
    out = np.empty((len(others), 2), dtype=np.float32)
    with faiss_threads():
        for start in tqdm(range(0, len(others), CHUNK // 10), desc="placing on the map", unit="chunk",
                          disable=not progress):
            sims, rows = index.search(unit(others[start:start + CHUNK // 10]), k)
            out[start:start + len(rows)] = place_on_map(fitted_xy, rows, sims)
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), with 0 <= i < n."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise InputError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text}: i must be 0 to n-1 and n at least 1")
    return index, count


def shard_rows(total: int, index: int, count: int) -> slice:
    """Shard ``index`` of ``count``: a contiguous block of rows, so shards concatenate in order."""
    return slice(total * index // count, total * (index + 1) // count)


def load_shard(spec: str, shard: tuple[int, int], *, pixels: int, pixel_scale_arcsec: float,
               progress: bool = True) -> SourceSet:
    """The sources of one shard. A FITS catalogue directory is read only for the shard's rows (through
    a temporary catalogue listing them); a simulation is drawn whole (it is the demo) and sliced."""
    index, count = shard
    path = Path(str(spec)).expanduser()
    if count > 1 and path.is_dir():
        table = read_catalog_csv(path)
        subset = table.iloc[shard_rows(len(table), index, count)].copy()
        for column in file_columns(subset)[0]:
            subset[column] = [str(f if Path(f).is_absolute() else path.resolve() / f) for f in subset[column]]
        with tempfile.TemporaryDirectory(prefix=f"shard-{index}-of-{count}-") as view:
            subset.to_csv(Path(view) / CATALOG_FILE, index=False)
            if (path / COLUMNS_FILE).is_file():
                shutil.copy(path / COLUMNS_FILE, Path(view) / COLUMNS_FILE)
            data = load_data(view, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec, progress=progress)
        return dataclasses.replace(data, spec=str(path.resolve()))
    data = load_data(spec, pixels=pixels, pixel_scale_arcsec=pixel_scale_arcsec, progress=progress)
    rows = shard_rows(len(data.catalog), index, count)
    return dataclasses.replace(data, images=data.images[rows], catalog=data.catalog.iloc[rows].reset_index(drop=True))


def _checkpoint_file(checkpoint: str | Path) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint / CHECKPOINT if checkpoint.is_dir() else checkpoint


def is_shard(path: Path) -> bool:
    return (path / SHARD_FILE).is_file()


def embed_shard(checkpoint: str | Path, data_spec: str, out: str | Path, *, shard: tuple[int, int] = (0, 1),
                device: str = "auto", batch_size: int = 256, overwrite: bool = False, progress: bool = True) -> Path:
    """Encode one shard of a catalogue into a shard folder: embeddings, catalogue rows, thumbnails.

    A finished shard folder for the same checkpoint, data and shard is kept (reruns resume a job array);
    another shard folder is replaced only with ``overwrite``, and any other folder never.
    """
    check_batch_size(batch_size)
    ckpt_file, out = _checkpoint_file(checkpoint), Path(out).expanduser()
    state = load_checkpoint(ckpt_file)
    wanted = {"shard": list(shard), "data": str(data_spec), "checkpoint_sha256": sha256_file(ckpt_file)}
    if is_shard(out) and {k: _read_json(out / SHARD_FILE).get(k) for k in wanted} == wanted:
        print(f"{out}: shard {shard[0]}/{shard[1]} is already embedded")
        return out
    check_output_folder(out, "shard folder", is_shard, overwrite=overwrite)
    encoder, config = encoder_from_checkpoint(state)
    params = config.preprocessing
    if shard[1] == 1:  # the whole catalogue: the cutouts training cached (a second run reads no FITS file)
        data = open_cutouts(data_spec, pixels=config.data.pixels, pixel_scale_arcsec=config.data.pixel_scale_arcsec,
                            params=params, progress=progress)
        catalog, columns, bands, skipped = data.catalog, data.columns, data.bands, data.meta.get("skipped", [])
        pre = centre_crop(data.images, params.crop_pixels)  # a view: the same pixels preprocess() keeps
    else:
        source = load_shard(data_spec, shard, pixels=config.data.pixels,
                            pixel_scale_arcsec=config.data.pixel_scale_arcsec, progress=progress)
        catalog, columns, skipped = source.catalog, source.columns, source.skipped
        bands = list(catalog.attrs.get("bands") or [f"band{i}" for i in range(source.images.shape[1])])
        pre = preprocess_rows(source, None, params)
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s), e.g. {skipped[0][0]}: {skipped[0][1]}")
    embeddings = embed(encoder, pre, params, batch_size=batch_size, device=resolve_device(device), progress=progress)
    with atomic_directory(out) as tmp:
        catalog.to_parquet(tmp / "catalog.parquet", index=False)
        np.save(tmp / "embeddings.npy", embeddings.reshape(len(catalog), -1).astype(np.float32))
        np.save(tmp / "thumbnails.npy", to_thumbnails(np.asarray(pre), bands))
        if len(bands) > 1 and len(catalog) * pre[0].size <= BAND_THUMBNAILS_MAX_BYTES:
            np.save(tmp / BAND_THUMBNAILS_FILE, band_thumbnails(np.asarray(pre)))
        if len(catalog) * pre[0].size * 4 <= ENCODER_INPUTS_MAX_BYTES:
            np.save(tmp / ENCODER_INPUTS_FILE, np.asarray(pre, dtype=np.float32))
        write_json(tmp / SHARD_FILE, {**wanted, "checkpoint": str(ckpt_file.resolve()), "epochs_trained": int(state["epoch"]),
                                      "n": len(catalog), "skipped": len(skipped), "columns": columns, "bands": bands,
                                      "pixel_scale_arcsec": config.data.pixel_scale_arcsec})
    return out


def check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"--batch-size must be a whole number of at least 1, got {batch_size!r}")


def embed_once(checkpoint: Path, data: str, out: Path, *, device: str, progress: bool) -> Path:
    """The bundle of ``checkpoint`` on ``data`` at ``out``: kept when it was built from that checkpoint (a study
    resumed), otherwise embedded again."""
    if is_bundle(out):
        encoder = load_bundle(out).manifest.encoder
        if encoder is not None and encoder.checkpoint_sha256 == sha256_file(checkpoint):
            return out
    return embed_to_bundle(checkpoint, data, out, device=device, overwrite=True, progress=progress)


def embed_to_bundle(checkpoint: str | Path, data_spec: str, out: str | Path, *, device: str = "auto",
                    batch_size: int = 256, map_config: MapConfig = MapConfig(), overwrite: bool = False,
                    baselines: bool = True, progress: bool = True) -> Path:
    """Encode a whole catalogue and write its bundle: one shard, merged.

    An existing bundle at ``out`` is replaced only with ``overwrite``; any other folder or file never.
    """
    out = check_output_folder(out, "bundle", is_bundle, overwrite=overwrite)
    with scratch_folder(out) as work:
        shard = embed_shard(checkpoint, data_spec, work / "shard", device=device, batch_size=batch_size,
                            progress=progress)
        return merge_shards([shard], out, map_config=map_config, overwrite=overwrite, baselines=baselines,
                            progress=progress)


def derived_columns(catalog: pd.DataFrame, embeddings, index, index_info: dict, config, quality: dict,
                    progress: bool) -> dict:
    """Columns every bundle gets at build: ``anomaly_knn`` (1 - mean cosine similarity to the 10 nearest
    other sources) and, with a size column, ``extends_past_crop`` (the source is larger than the crop the
    encoder and the thumbnails see). The catalogue's nearest-neighbour similarities go into
    ``quality["neighbourhood"]``, which out-of-sample queries are compared with. Returns the columns' metadata."""
    nearest, anomaly = neighbourhood(index, embeddings, info=index_info, progress=progress)
    quality["neighbourhood"] = {"k": ANOMALY_K, "nearest_similarity_percentiles":
                                np.percentile(nearest, PERCENTILES).round(6).tolist()}
    added = {"anomaly_knn": {"unit": "", "description": f"1 - mean cosine similarity to the {ANOMALY_K} nearest other "
                                                        "sources in embedding space: high for the odd ones out"}}
    catalog["anomaly_knn"] = anomaly
    crop_arcsec = config.preprocessing.crop_pixels * config.data.pixel_scale_arcsec
    size = next((c for c in SIZE_COLUMNS if c in catalog.columns and pd.api.types.is_numeric_dtype(catalog[c])), None)
    if size is not None:
        catalog["extends_past_crop"] = (catalog[size] > crop_arcsec).to_numpy()
        added["extends_past_crop"] = {"unit": "", "description": f"{size} is larger than the {crop_arcsec:g}″ crop the "
                                                                  "encoder and the thumbnails see: emission is cut"}
    return added


def _baselines(embeddings, catalog: pd.DataFrame, data_spec: str, config, state: dict, shards: int) -> dict | None:
    """The learned embeddings beside a random-init encoder and the pixels (training.quality.compare_with_baselines),
    on the cutouts the shard step read from the cache; a sharded build has no single cache to read."""
    if shards > 1:
        print("baselines: not computed for a sharded build; compare with python -m training.evaluate")
        return None
    cutouts = open_cutouts(data_spec, pixels=config.data.pixels, pixel_scale_arcsec=config.data.pixel_scale_arcsec,
                           params=config.preprocessing, progress=False)
    if len(cutouts) != len(catalog):
        return None
    return compare_with_baselines(embeddings, cutouts.images, catalog, config.preprocessing,
                                  config.encoder.architecture, config.seed, checkpoint=state)


def exported_head(state: dict, config) -> dict | None:
    """The weights of the submodule the method exports to the bundle (``Method.exported_head``), or None."""
    from training.methods import method_class

    name = method_class(config.method).exported_head
    if name is None:
        return None
    prefix = f"{name}."
    return {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}


def merge_shards(shard_dirs, out: str | Path, *, map_config: MapConfig = MapConfig(), overwrite: bool = False,
                 baselines: bool = True, progress: bool = True) -> Path:
    """One bundle from the shard folders of one catalogue: PCA, map and index over all of them.

    Every shard i/n of the same checkpoint and data must be there exactly once; the arrays are
    concatenated in shard order into memory maps, so only the map and index steps hold them whole.
    """
    out = check_output_folder(out, "bundle", is_bundle, overwrite=overwrite)
    shards = sorted(((Path(d), _shard_meta(Path(d))) for d in shard_dirs), key=lambda s: s[1]["shard"][0])
    first = shards[0][1]
    for path, meta in shards:
        for key in ("data", "checkpoint_sha256"):
            if meta[key] != first[key]:
                raise InputError(f"{path} was embedded with a different {key.replace('_', ' ')} than {shards[0][0]}")
    count = first["shard"][1]
    found = [meta["shard"][0] for _, meta in shards]
    if any(meta["shard"][1] != count for _, meta in shards) or found != list(range(count)):
        missing = sorted(set(range(count)) - set(found))
        repeated = sorted({i for i in found if found.count(i) > 1})
        raise InputError(f"the shards do not make one catalogue of {count}: "
                         + "; ".join(filter(None, [f"missing {', '.join(f'{i}/{count}' for i in missing)}" if missing else "",
                                                   f"given twice {', '.join(map(str, repeated))}" if repeated else "",
                                                   "mixed shard counts" if not missing and not repeated else ""])))
    ckpt_file = Path(first["checkpoint"])
    if not ckpt_file.is_file() or sha256_file(ckpt_file) != first["checkpoint_sha256"]:
        raise InputError(f"the checkpoint the shards were embedded with is no longer at {ckpt_file}")
    state = load_checkpoint(ckpt_file)
    encoder, config = encoder_from_checkpoint(state)

    with scratch_folder(out) as work:
        catalog = pd.concat([pd.read_parquet(p / "catalog.parquet") for p, _ in shards], ignore_index=True)
        catalog["id"], renamed = unique_ids(catalog["id"])
        if renamed:
            print(f"warning: {renamed} duplicate source id(s) were made unique with a #2, #3... suffix")
        embeddings = _concatenate([p / "embeddings.npy" for p, _ in shards], work / "embeddings.npy")
        thumbnails = _concatenate([p / "thumbnails.npy" for p, _ in shards], work / "thumbnails.npy")
        per_band, inputs = (_concatenate([p / name for p, _ in shards], work / name)
                            if all((p / name).is_file() for p, _ in shards) else None
                            for name in (BAND_THUMBNAILS_FILE, ENCODER_INPUTS_FILE))
        stages = tqdm(total=4, desc="map, index, bundle", disable=not progress, unit="stage")
        map_xy, pca, umap_params = fit_map(embeddings, map_config.pca_components, map_config.umap_neighbors,
                                           map_config.umap_min_dist, config.seed, progress=progress)
        stages.update()
        index, index_info = build_index(embeddings, seed=config.seed, progress=progress)
        stages.update()
        quality = map_organisation(embeddings, map_xy, catalog, seed=config.seed)
        derived = derived_columns(catalog, embeddings, index, index_info, config, quality, progress)
        if baselines:
            compared = _baselines(embeddings, catalog, first["data"], config, state, count)
            if compared:
                quality["baselines"] = compared
        stages.update()
        params, enc = config.preprocessing, config.encoder
        bands = first.get("bands", ["image"])
        head = exported_head(state, config)
        manifest = Manifest(
            description=f"{config.method.upper()} {enc.architecture} trained on {first['data']}",
            encoder=EncoderInfo(architecture=enc.architecture, in_channels=enc.in_channels,
                                feature_dim=int(embeddings.shape[1]), input_pixels=params.input_pixels,
                                ssl_method=config.method, epochs_trained=int(state["epoch"]),
                                checkpoint_sha256=first["checkpoint_sha256"], preprocessing=params.to_dict(),
                                band_classifier_hidden=int(head["0.weight"].shape[0]) if head else 0),
            data=DataInfo(spec=first["data"], survey=survey_of(first["data"]), pixels=config.data.pixels,
                          pixel_scale_arcsec=config.data.pixel_scale_arcsec,
                          bands=bands, band_pixel_scales_arcsec={b: config.data.pixel_scale_arcsec for b in bands},
                          skipped=sum(meta["skipped"] for _, meta in shards), shards=count),
            pca={"n_components": int(pca.n_components_),
                 "explained_variance_ratio": [round(float(v), 6) for v in pca.explained_variance_ratio_],
                 "total_explained_variance": float(pca.explained_variance_ratio_.sum())},
            umap=umap_params,
            index=index_info,
            thumbnails={"pixels": int(thumbnails.shape[1]), "stretch": "asinh", "softening": ASINH_SOFTENING,
                        "colormap": COLORMAP},
            columns={**BASE_COLUMNS, **{c: first["columns"].get(c, {"unit": "", "description": ""})
                                        for c in catalog.columns if c not in BASE_COLUMNS}, **derived},
            quality=quality,
        )
        path = write_bundle(out, manifest=manifest, catalog=catalog, embeddings=embeddings, map_xy=map_xy,
                            thumbnails=thumbnails, index=index, pca_mean=pca.mean_, pca_components=pca.components_,
                            encoder_state=encoder.state_dict(), band_thumbnails=per_band, band_classifier_state=head,
                            encoder_inputs=inputs)
        stages.update()
        stages.close()
        del embeddings, thumbnails, per_band, inputs  # release the memory maps before their folder goes
    return path


def survey_of(spec: str) -> str:
    """The survey a data spec's images come from: the simulator's model (in memory or written to a folder), or
    what training.fetch recorded; empty when the folder does not say."""
    from training.fetch import SETTINGS_FILE

    simulated = f"simulated {FIRST.name}-like sky (training.simulate)"
    if str(spec).startswith("sim:"):
        return simulated
    for name, read in (("provenance.json", lambda d: simulated if d.get("generator") == "training.simulate" else ""),
                       (SETTINGS_FILE, lambda d: str(d.get("survey", "")))):
        try:
            found = read(json.loads((Path(spec) / name).read_text()))
        except (OSError, ValueError, AttributeError):
            continue
        if found:
            return found
    return ""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path} is not readable: {e}") from None


def _shard_meta(path: Path) -> dict:
    if not (path / SHARD_FILE).is_file():
        raise InputError(f"{path} is not a finished shard folder (no {SHARD_FILE}); run training.embed --shard first")
    return _read_json(path / SHARD_FILE)


def _concatenate(files: list[Path], out: Path) -> np.ndarray:
    """The arrays of ``files`` stacked along rows into a memory-mapped .npy at ``out``."""
    parts = [np.load(f, mmap_mode="r") for f in files]
    merged = np.lib.format.open_memmap(out, mode="w+", dtype=parts[0].dtype,
                                       shape=(sum(len(p) for p in parts), *parts[0].shape[1:]))
    start = 0
    for part in parts:
        merged[start:start + len(part)] = part
        start += len(part)
    merged.flush()
    return merged


@cli_entry
def main(argv=None):
    parser = cli.parser("embed")
    args = parser.parse_args(argv)
    map_config = MapConfig(**{name: checked(getattr(args, name), type(f.default), f.metadata, f"--{name.replace('_', '-')}")
                              for name, f in MapConfig.__dataclass_fields__.items()})
    if args.merge:
        if args.shard or args.checkpoint or args.data:
            raise InputError("--merge takes only shard folders and --out (the shards know their checkpoint and data)")
        report(merge_shards(args.merge, args.out, map_config=map_config, overwrite=args.overwrite,
                            baselines=not args.no_baselines))
        return
    if not (args.checkpoint and args.data):
        raise InputError("--checkpoint and --data are required (or --merge SHARD_DIR ... to join shards)")
    if args.shard:
        path = embed_shard(args.checkpoint, args.data, args.out, shard=parse_shard(args.shard), device=args.device,
                           batch_size=args.batch_size, overwrite=args.overwrite)
        print(f"shard: {path}")
        return
    report(embed_to_bundle(args.checkpoint, args.data, args.out, device=args.device, batch_size=args.batch_size,
                           map_config=map_config, overwrite=args.overwrite, baselines=not args.no_baselines))


def report(bundle: Path) -> None:
    quality = json.loads((bundle / "manifest.json").read_text()).get("quality", {})
    for line in baseline_report(quality.get("baselines", {})):
        print(line)
    print(f"bundle: {bundle}")


if __name__ == "__main__":
    main()
