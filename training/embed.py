"""Embed a catalogue with a trained encoder and write a bundle for the explorer.

    python -m training.embed --checkpoint runs/demo --data <DATA> --out bundles/demo

Steps: encode every source (batched) -> L2-normalise -> PCA (<= 200 components)
-> UMAP 2-D on the PCA space, cosine metric -> FAISS index -> thumbnails -> bundle.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from explorer.bundle import write_bundle
from explorer.encoder import embed, resolve_device, sha256_file
from explorer.errors import cli_entry
from explorer.preprocess import ASINH_SOFTENING, COLORMAP, preprocess, to_thumbnails
from explorer.search import build_index, place_on_map
from training.data import load_data
from training.quality import map_organisation
from training.train import CHECKPOINT, encoder_from_checkpoint, load_checkpoint

BASE_COLUMNS = {"id": {"unit": "", "description": "source identifier"},
                "ra": {"unit": "deg", "description": "right ascension (ICRS)"},
                "dec": {"unit": "deg", "description": "declination (ICRS)"}}


UMAP_FIT_MAX = 20_000     # UMAP is fitted on at most this many sources; the rest are placed (see fit_map)
PCA_FIT_MAX = 100_000     # PCA is fitted on at most this many sources, then applied to all
PLACEMENT_K = 5           # fitted neighbours whose map positions place each remaining source
CHUNK = 100_000


def fit_map(embeddings: np.ndarray, pca_components: int, n_neighbors: int, min_dist: float, seed: int, *,
            umap_fit_max: int = UMAP_FIT_MAX, progress: bool = False):
    """PCA then a cosine UMAP on the PCA space; returns (map [N, 2], pca, map parameters).

    At scale: PCA (randomized solver) is fitted on up to ``PCA_FIT_MAX`` random sources, UMAP on up
    to ``umap_fit_max``; every other source is placed at the similarity-weighted mean of its
    ``PLACEMENT_K`` most cosine-similar fitted sources in PCA space
    (:func:`explorer.search.place_on_map`, the same rule that places out-of-sample queries).
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

    from explorer.search import faiss_threads

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


def embed_to_bundle(checkpoint: str | Path, data_spec: str, out: str | Path, *, device: str = "auto",
                    batch_size: int = 256, progress: bool = True) -> Path:
    checkpoint = Path(checkpoint)
    ckpt_file = checkpoint / CHECKPOINT if checkpoint.is_dir() else checkpoint
    state = load_checkpoint(ckpt_file)
    encoder, config = encoder_from_checkpoint(state)
    data = load_data(data_spec, pixels=config.data.pixels, pixel_scale_arcsec=config.data.pixel_scale_arcsec,
                     progress=progress)
    if data.skipped:
        print(f"skipped {len(data.skipped)} unreadable image(s), e.g. {data.skipped[0][0]}: {data.skipped[0][1]}")
    params = config.preprocessing
    pre = preprocess(data.images, params)
    embeddings = embed(encoder, pre, params, batch_size=batch_size, device=resolve_device(device), progress=progress)

    stages = tqdm(total=4, desc="map, index, thumbnails", disable=not progress, unit="stage")
    map_xy, pca, umap_params = fit_map(embeddings, config.map.pca_components, config.map.umap_neighbors,
                                       config.map.umap_min_dist, config.seed)
    stages.update()
    index, index_info = build_index(embeddings)
    stages.update()
    thumbnails = to_thumbnails(pre)
    stages.update()
    quality = map_organisation(embeddings, map_xy, data.catalog, seed=config.seed)

    enc = config.encoder
    manifest = {
        "description": f"{config.method.upper()} {enc.architecture} trained on {data_spec}",
        "encoder": {"architecture": enc.architecture, "in_channels": enc.in_channels, "feature_dim": int(embeddings.shape[1]),
                    "input_pixels": params.input_pixels, "ssl_method": config.method,
                    "epochs_trained": int(state["epoch"]), "checkpoint_sha256": sha256_file(ckpt_file),
                    "preprocessing": params.to_dict()},
        "data": {"spec": str(data_spec), "pixels": config.data.pixels,
                 "pixel_scale_arcsec": config.data.pixel_scale_arcsec, "skipped": len(data.skipped)},
        "pca": {"n_components": int(pca.n_components_),
                "explained_variance_ratio": [round(float(v), 6) for v in pca.explained_variance_ratio_],
                "total_explained_variance": float(pca.explained_variance_ratio_.sum())},
        "umap": umap_params,
        "index": index_info,
        "thumbnails": {"pixels": int(thumbnails.shape[1]), "stretch": "asinh", "softening": ASINH_SOFTENING,
                       "colormap": COLORMAP},
        "columns": {**BASE_COLUMNS, **{c: data.columns.get(c, {"unit": "", "description": ""})
                                       for c in data.catalog.columns if c not in BASE_COLUMNS}},
        "quality": quality,
    }
    path = write_bundle(out, manifest=manifest, catalog=data.catalog, embeddings=embeddings, map_xy=map_xy,
                        thumbnails=thumbnails, index=index, pca_mean=pca.mean_, pca_components=pca.components_,
                        encoder_state=encoder.state_dict())
    stages.update()
    stages.close()
    return path


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint.pt from training.train")
    parser.add_argument("--data", required=True, help="FITS catalogue directory or sim:radio?n=5000&seed=0")
    parser.add_argument("--out", required=True, help="bundle directory to write (replaced atomically)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    path = embed_to_bundle(args.checkpoint, args.data, args.out, device=args.device, batch_size=args.batch_size)
    print(f"bundle: {path}")


if __name__ == "__main__":
    main()
