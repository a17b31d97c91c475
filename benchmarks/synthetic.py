"""A synthetic but real bundle: clustered embeddings with plausible radio-source columns.

Used by the explorer tests (a small bundle, in seconds) and the app benchmark (5,000+
sources) where the trained demo is not needed. Every file goes through
``explorer.bundle.write_bundle``, so the explorer opens it like any other bundle.

    python -m benchmarks.synthetic --n 5000 --out .cache/bundles/synthetic-5000
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from explorer.bundle import write_bundle
from explorer.preprocess import ASINH_SOFTENING, COLORMAP, Preprocessing, to_thumbnails
from explorer.search import build_index

MORPHOLOGIES = ("compact", "FRI", "FRII", "bent", "double-double")
CLASS_WEIGHTS = (0.35, 0.2, 0.25, 0.12, 0.08)
MEDIAN_SIZE_ARCSEC = (8.0, 50.0, 90.0, 70.0, 160.0)
PIXEL_SCALE_ARCSEC = 1.8
COLUMNS = {
    "id": {"unit": "", "description": "source identifier"},
    "ra": {"unit": "deg", "description": "right ascension (ICRS)"},
    "dec": {"unit": "deg", "description": "declination (ICRS)"},
    "morphology": {"unit": "", "description": "morphology class"},
    "las_arcsec": {"unit": "arcsec", "description": "largest angular size"},
    "flux_mjy": {"unit": "mJy", "description": "total flux density at 1.4 GHz"},
    "z": {"unit": "", "description": "redshift (missing for some sources)"},
    "bend_angle_deg": {"unit": "deg", "description": "bend angle of the jets (0 for straight sources)"},
}
DUPLICATE_EVERY = 40           # every 40th source is a second catalogue entry of the previous one
DUPLICATE_OFFSET_ARCSEC = 6.0


def synthetic_catalogue(n: int, dim: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(catalogue, L2-normalised float32 embeddings [n, dim]) with class clusters and a size gradient."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(len(MORPHOLOGIES), size=n, p=CLASS_WEIGHTS)
    las = np.exp(np.log(np.take(MEDIAN_SIZE_ARCSEC, classes)) + 0.35 * rng.normal(size=n))
    # positions on the sphere inside a FIRST-like footprint
    ra = rng.uniform(110.0, 260.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-5.0)), np.sin(np.radians(65.0)), n)))
    centres = rng.normal(size=(len(MORPHOLOGIES), dim))
    size_axis = rng.normal(size=dim)
    embeddings = centres[classes] + 0.6 * rng.normal(size=(n, dim)) + 0.8 * np.outer(np.log(las / 40.0), size_axis)
    for i in range(DUPLICATE_EVERY, n, DUPLICATE_EVERY):  # the same object catalogued twice, a few arcsec apart
        classes[i], las[i] = classes[i - 1], las[i - 1]
        ra[i] = ra[i - 1] + DUPLICATE_OFFSET_ARCSEC / 3600 / np.cos(np.radians(dec[i - 1]))
        dec[i] = dec[i - 1]
        embeddings[i] = embeddings[i - 1] + 0.05 * rng.normal(size=dim)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    redshift = np.exp(np.log(0.5) + 0.6 * rng.normal(size=n))
    redshift[rng.random(n) < 0.1] = np.nan
    bent = np.asarray(MORPHOLOGIES)[classes] == "bent"
    catalog = pd.DataFrame({
        "id": [f"SYN{i:06d}" for i in range(n)],
        "ra": ra, "dec": dec,
        "morphology": np.asarray(MORPHOLOGIES)[classes],
        "las_arcsec": las.round(2),
        "flux_mjy": np.exp(np.log(20.0) + 1.2 * rng.normal(size=n)).round(3),
        "z": redshift.round(4),
        "bend_angle_deg": np.where(bent, rng.uniform(20, 150, n), 0.0).round(1),
    })
    return catalog, embeddings.astype(np.float32)


def synthetic_images(catalog: pd.DataFrame, pixels: int, seed: int) -> np.ndarray:
    """float32 [n, 1, pixels, pixels] in [0, 1]: a core plus two lobes at the source's size and angle."""
    rng = np.random.default_rng(seed + 1)
    n = len(catalog)
    half = catalog["las_arcsec"].to_numpy() / PIXEL_SCALE_ARCSEC / 2
    angle = rng.uniform(0, np.pi, n)
    grid = np.arange(pixels) - (pixels - 1) / 2
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    compact = (catalog["morphology"] == "compact").to_numpy()
    images = np.zeros((n, 1, pixels, pixels), dtype=np.float32)
    for i in range(n):
        dx, dy = half[i] * np.cos(angle[i]), half[i] * np.sin(angle[i])
        blobs = [(0.0, 0.0, 1.0)] if compact[i] else [(0.0, 0.0, 0.4), (dx, dy, 1.0), (-dx, -dy, 0.8)]
        width = 1.3 + 0.1 * half[i]
        image = sum(a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * width ** 2)) for x, y, a in blobs)
        images[i, 0] = image / image.max()
    images += 0.01 * rng.normal(size=images.shape).astype(np.float32)
    return np.clip(images, 0, 1)


def synthetic_bundle(out: str | Path, *, n: int = 600, dim: int = 32, pixels: int = 48, seed: int = 0) -> Path:
    catalog, embeddings = synthetic_catalogue(n, dim, seed)
    pca = PCA(n_components=min(200, dim, n), random_state=seed).fit(embeddings)
    map_xy = pca.transform(embeddings)[:, :2]
    index, index_info = build_index(embeddings)
    thumbnails = to_thumbnails(synthetic_images(catalog, pixels, seed))
    manifest = {
        "description": f"synthetic clustered bundle (n={n}, D={dim}, seed={seed}) for tests and benchmarks",
        "encoder": {"architecture": "none (synthetic embeddings)", "in_channels": 1,
                    "preprocessing": Preprocessing().to_dict()},
        "data": {"spec": f"synthetic:clusters?n={n}&dim={dim}&seed={seed}", "pixels": pixels,
                 "pixel_scale_arcsec": PIXEL_SCALE_ARCSEC},
        "pca": {"n_components": int(pca.n_components_),
                "explained_variance_ratio": pca.explained_variance_ratio_.round(6).tolist()},
        "umap": {"method": "PCA components 1-2 stand in for UMAP"},
        "index": index_info,
        "thumbnails": {"pixels": pixels, "stretch": "asinh", "softening": ASINH_SOFTENING, "colormap": COLORMAP},
        "columns": COLUMNS,
    }
    return write_bundle(out, manifest=manifest, catalog=catalog, embeddings=embeddings, map_xy=map_xy,
                        thumbnails=thumbnails, index=index, pca_mean=pca.mean_, pca_components=pca.components_)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--pixels", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(synthetic_bundle(args.out, n=args.n, dim=args.dim, pixels=args.pixels, seed=args.seed))


if __name__ == "__main__":
    main()
