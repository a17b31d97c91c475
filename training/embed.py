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
from explorer.search import build_index
from training.data import load_data
from training.quality import map_organisation
from training.train import CHECKPOINT, encoder_from_checkpoint, load_checkpoint

BASE_COLUMNS = {"id": {"unit": "", "description": "source identifier"},
                "ra": {"unit": "deg", "description": "right ascension (ICRS)"},
                "dec": {"unit": "deg", "description": "declination (ICRS)"}}


def fit_map(embeddings: np.ndarray, pca_components: int, n_neighbors: int, min_dist: float, seed: int):
    """PCA then a cosine UMAP on the PCA space; returns (map [N, 2], pca, umap parameters)."""
    import umap  # imported here: numba compilation is slow and only this step needs it

    n, d = embeddings.shape
    pca = PCA(n_components=min(pca_components, d, n), random_state=seed).fit(embeddings)
    reduced = pca.transform(embeddings)
    params = {"n_neighbors": min(n_neighbors, n - 1), "min_dist": min_dist, "metric": "cosine",
              "random_state": seed, "input": "pca"}
    with warnings.catch_warnings():  # umap warns that a random_state disables parallelism: reproducibility wins
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(n_components=2, n_neighbors=params["n_neighbors"], min_dist=min_dist, metric="cosine",
                            random_state=seed)
        map_xy = reducer.fit_transform(reduced)
    return map_xy.astype(np.float32), pca, params


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
