"""Real inputs for the sky/FITS tests and benchmarks: the MiraBest FITS files in ``../shared``."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
MIRABEST = REPO.parent / "shared" / "data" / "mirabest"


def mirabest_catalog() -> pd.DataFrame:
    """MiraBest's catalog.csv, or skip the calling test when ``../shared`` is absent."""
    if not (MIRABEST / "catalog.csv").is_file():
        pytest.skip(f"real MiraBest FITS files not found at {MIRABEST} (../shared/data/mirabest)")
    return pd.read_csv(MIRABEST / "catalog.csv")


def mirabest_file(row: int = 0) -> Path:
    return MIRABEST / mirabest_catalog()["file"].iloc[row]


def build_mirabest_bundle(out: Path, *, every: int = 11, seed: int = 0) -> Path:
    """A small real bundle: every ``every``-th MiraBest image (100 by default), embedded by a randomly
    initialised ResNet-18 through the real preprocessing, written by ``explorer.core.bundle.write_bundle``.

    The map is the 2-D PCA of the embeddings (UMAP adds nothing to what the query tests check).
    """
    import torch
    from sklearn.decomposition import PCA

    from explorer.core.bundle import DataInfo, EncoderInfo, Manifest, write_bundle
    from explorer.core.encoder import build_encoder, embed
    from explorer.core.fitsio import column_metadata, load_fits_catalogue
    from explorer.core.preprocess import Preprocessing, preprocess, to_thumbnails
    from explorer.core.search import build_index

    rows = mirabest_catalog().iloc[::every].copy()
    rows["file"] = [str(MIRABEST / f) for f in rows["file"]]
    folder = out.parent / f".{out.name}-catalogue"
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_csv(folder / "catalog.csv", index=False)
    images, catalog, columns, skipped = load_fits_catalogue(folder, pixels=150, pixel_scale_arcsec=1.8, progress=False)
    assert not skipped, skipped
    params = Preprocessing()
    pre = preprocess(images, params)
    torch.manual_seed(seed)
    model, dim = build_encoder("resnet18", 1)
    embeddings = embed(model, pre, params, progress=False)
    pca = PCA(n_components=16, random_state=seed).fit(embeddings)
    index, index_info = build_index(embeddings)
    manifest = Manifest(description="random ResNet-18 on MiraBest (tests)",
                        encoder=EncoderInfo("resnet18", 1, dim, params.input_pixels, params.to_dict()),
                        data=DataInfo(spec=str(folder), pixels=150, pixel_scale_arcsec=1.8),
                        index=index_info, columns=column_metadata(catalog))
    return write_bundle(out, manifest=manifest, catalog=catalog, embeddings=embeddings,
                        map_xy=pca.transform(embeddings)[:, :2], thumbnails=to_thumbnails(pre), index=index,
                        pca_mean=pca.mean_, pca_components=pca.components_, encoder_state=model.state_dict())
