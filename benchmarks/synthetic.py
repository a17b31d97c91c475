"""A synthetic but real bundle: clustered embeddings with plausible radio-source columns.

Used by the explorer tests (a small bundle, in seconds) and the benchmarks (up to 10^6
sources, cached on disk by :func:`cached_bundle`) where the trained demo is not needed.
Every file goes through ``explorer.core.bundle.write_bundle``, so the explorer opens it like
any other bundle.

Two embedding models:

- the default (tests): class centres plus isotropic Gaussian noise in all D dimensions;
- ``survey=True`` (benchmarks at scale): what a trained encoder gives, a curved low-dimensional
  manifold in D: classes, sub-clusters and a size axis in a ``LATENT_DIM``-d latent space with
  a decaying spectrum, mapped non-linearly into D, plus a little isotropic noise. Sky positions
  and sizes are resampled from the real 50,790-source RGZ DR1 catalogue when
  ``../shared/data/rgz_dr1_latent`` is present (uniform in a FIRST-like footprint otherwise).
  Isotropic noise in 128+ dimensions would make every neighbour almost equally far, which no
  trained encoder does and which no approximate index can search well.

    python -m benchmarks.synthetic --n 5000 --out .cache/bundles/synthetic-5000
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from explorer.core.bundle import DataInfo, EncoderInfo, Manifest, write_bundle
from explorer.core.config import REPO_ROOT, cache_dir
from explorer.core.preprocess import ASINH_SOFTENING, COLORMAP, Preprocessing, to_thumbnails
from explorer.core.search import build_index

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
RGZ_CATALOGUE = REPO_ROOT.parent / "shared" / "data" / "rgz_dr1_latent" / "rgz_dr1_umap.parquet"
LATENT_DIM = 24                # survey model: intrinsic dimension of the embedding manifold
SUBCLUSTERS = 48               # survey model: sub-clusters per class
POSITION_JITTER_DEG = 0.05     # survey model: RGZ positions are resampled with this scatter
TEMPLATES_FROM_N = 20_000      # above this, thumbnails come from a bank of rendered templates
TEMPLATES = 4_000


def rgz_sky() -> pd.DataFrame | None:
    """ra, dec (deg) and size (arcsec) of the real RGZ DR1 sources, or None when the shared data is absent."""
    if not RGZ_CATALOGUE.is_file():
        return None
    return pd.read_parquet(RGZ_CATALOGUE, columns=["ra", "dec", "size"]).astype(np.float64)


def synthetic_catalogue(n: int, dim: int, seed: int, *, survey: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """(catalogue, L2-normalised float32 embeddings [n, dim]) with class clusters and a size gradient."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(len(MORPHOLOGIES), size=n, p=CLASS_WEIGHTS)
    las = np.exp(np.log(np.take(MEDIAN_SIZE_ARCSEC, classes)) + 0.35 * rng.normal(size=n))
    sky = rgz_sky() if survey else None
    if sky is not None:  # real positions and sizes, each reused with a small scatter
        picked = sky.iloc[rng.integers(len(sky), size=n)]
        ra = (picked["ra"].to_numpy() + POSITION_JITTER_DEG * rng.normal(size=n)) % 360.0
        dec = np.clip(picked["dec"].to_numpy() + POSITION_JITTER_DEG * rng.normal(size=n), -90.0, 90.0)
        las = picked["size"].to_numpy() * np.exp(0.1 * rng.normal(size=n))
    else:  # positions on the sphere inside a FIRST-like footprint
        ra = rng.uniform(110.0, 260.0, n)
        dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-5.0)), np.sin(np.radians(65.0)), n)))
    if survey:
        embeddings = _manifold_embeddings(rng, classes, las, dim)
    else:
        centres = rng.normal(size=(len(MORPHOLOGIES), dim))
        size_axis = rng.normal(size=dim)
        embeddings = centres[classes] + 0.6 * rng.normal(size=(n, dim)) + 0.8 * np.outer(np.log(las / 40.0), size_axis)
    # the same object catalogued twice, a few arcsec apart (the row before is never itself a duplicate)
    twin = np.arange(DUPLICATE_EVERY, n, DUPLICATE_EVERY)
    classes[twin], las[twin], dec[twin] = classes[twin - 1], las[twin - 1], dec[twin - 1]
    ra[twin] = ra[twin - 1] + DUPLICATE_OFFSET_ARCSEC / 3600 / np.cos(np.radians(dec[twin - 1]))
    embeddings[twin] = embeddings[twin - 1] + 0.05 * rng.normal(size=(len(twin), dim)) * (0.1 if survey else 1.0)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    redshift = np.exp(np.log(0.5) + 0.6 * rng.normal(size=n))
    redshift[rng.random(n) < 0.1] = np.nan
    bent = np.asarray(MORPHOLOGIES)[classes] == "bent"
    catalog = pd.DataFrame({
        "id": [f"SYN{i:06d}" for i in range(n)] if n <= 1_000_000 else [f"SYN{i:09d}" for i in range(n)],
        "ra": ra, "dec": dec,
        "morphology": np.asarray(MORPHOLOGIES)[classes],
        "las_arcsec": las.round(2),
        "flux_mjy": np.exp(np.log(20.0) + 1.2 * rng.normal(size=n)).round(3),
        "z": redshift.round(4),
        "bend_angle_deg": np.where(bent, rng.uniform(20, 150, n), 0.0).round(1),
    })
    return catalog, embeddings.astype(np.float32)


def _manifold_embeddings(rng, classes: np.ndarray, las: np.ndarray, dim: int, chunk: int = 200_000) -> np.ndarray:
    """float32 [n, dim]: classes, sub-clusters and a size axis on a curved LATENT_DIM-d manifold."""
    n, k = len(classes), len(MORPHOLOGIES)
    spectrum = (1.0 + np.arange(LATENT_DIM)) ** -0.5                  # a decaying PCA spectrum, as encoders give
    class_centres = 1.5 * rng.normal(size=(k, LATENT_DIM)) * spectrum
    sub_centres = 0.7 * rng.normal(size=(k, SUBCLUSTERS, LATENT_DIM)) * spectrum
    size_axis = rng.normal(size=LATENT_DIM) * spectrum
    member = rng.integers(SUBCLUSTERS, size=n)
    lift = (rng.normal(size=(LATENT_DIM, dim)) / np.sqrt(LATENT_DIM)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        m = rows.stop - rows.start
        latent = (class_centres[classes[rows]] + sub_centres[classes[rows], member[rows]]
                  + 0.35 * rng.standard_normal((m, LATENT_DIM)) * spectrum
                  + 0.8 * np.log(las[rows] / 40.0)[:, None] * size_axis).astype(np.float32)
        out[rows] = np.tanh(latent @ lift) + 0.03 * rng.standard_normal((m, dim), dtype=np.float32)
    return out


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


def template_thumbnails(catalog: pd.DataFrame, pixels: int, seed: int, templates: int = TEMPLATES) -> np.ndarray:
    """uint8 [n, pixels, pixels]: each source gets the rendered template of its class nearest in size.

    Rendering a million images one by one would take longer than everything else the benchmarks build.
    """
    rng = np.random.default_rng(seed + 2)
    bank = catalog.iloc[np.sort(rng.choice(len(catalog), size=min(templates, len(catalog)), replace=False))]
    bank_thumbnails = to_thumbnails(synthetic_images(bank.reset_index(drop=True), pixels, seed))
    chosen = np.zeros(len(catalog), dtype=np.int64)
    size = np.log(catalog["las_arcsec"].to_numpy())
    for morphology in np.unique(bank["morphology"]):
        members = np.flatnonzero(bank["morphology"].to_numpy() == morphology)
        members = members[np.argsort(bank["las_arcsec"].to_numpy()[members])]
        rows = np.flatnonzero(catalog["morphology"].to_numpy() == morphology)
        position = np.searchsorted(np.log(bank["las_arcsec"].to_numpy()[members]), size[rows])
        chosen[rows] = members[np.clip(position, 0, len(members) - 1)]
    return bank_thumbnails[chosen]


def synthetic_bundle(out: str | Path, *, n: int = 600, dim: int = 32, pixels: int = 48, seed: int = 0,
                     survey: bool = False, progress: bool = False) -> Path:
    catalog, embeddings = synthetic_catalogue(n, dim, seed, survey=survey)
    fit_rows = np.random.default_rng(seed).choice(n, size=min(n, 100_000), replace=False)
    pca = PCA(n_components=min(200, dim, n), random_state=seed).fit(embeddings[np.sort(fit_rows)])
    map_xy = pca.transform(embeddings)[:, :2]
    index, index_info = build_index(embeddings, seed=seed, progress=progress)
    thumbnails = (to_thumbnails(synthetic_images(catalog, pixels, seed)) if n <= TEMPLATES_FROM_N
                  else template_thumbnails(catalog, pixels, seed))
    model = "survey manifold" if survey else "clustered"
    manifest = Manifest(
        description=f"synthetic {model} bundle (n={n}, D={dim}, seed={seed}) for tests and benchmarks",
        encoder=EncoderInfo(architecture="none (synthetic embeddings)", in_channels=1,
                            preprocessing=Preprocessing().to_dict()),
        data=DataInfo(spec=f"synthetic:{'survey' if survey else 'clusters'}?n={n}&dim={dim}&seed={seed}",
                      survey="RGZ DR1 positions (resampled)" if survey and rgz_sky() is not None else "uniform footprint",
                      pixels=pixels, pixel_scale_arcsec=PIXEL_SCALE_ARCSEC),
        pca={"n_components": int(pca.n_components_),
             "explained_variance_ratio": pca.explained_variance_ratio_.round(6).tolist()},
        umap={"method": "PCA components 1-2 stand in for UMAP"},
        index=index_info,
        thumbnails={"pixels": pixels, "stretch": "asinh", "softening": ASINH_SOFTENING, "colormap": COLORMAP},
        columns=COLUMNS,
    )
    return write_bundle(out, manifest=manifest, catalog=catalog, embeddings=embeddings, map_xy=map_xy,
                        thumbnails=thumbnails, index=index, pca_mean=pca.mean_, pca_components=pca.components_)


def cached_bundle(n: int, dim: int, *, seed: int = 1, pixels: int | None = None) -> Path:
    """A survey-model bundle for the benchmarks, built once under ``cache_dir()/benchmarks``."""
    pixels = pixels or (70 if n <= TEMPLATES_FROM_N else 32)  # 10^6 thumbnails at 32 px are 1 GB
    path = cache_dir() / "benchmarks" / f"survey-n{n}-d{dim}-s{seed}-p{pixels}"
    if not (path / "manifest.json").is_file():
        print(f"building a synthetic {n:,}-source bundle (D={dim}) in {path} (cached for later runs) ...", flush=True)
        synthetic_bundle(path, n=n, dim=dim, pixels=pixels, seed=seed, survey=True, progress=True)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--pixels", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--survey", action="store_true", help="the survey embedding model with RGZ positions")
    args = parser.parse_args(argv)
    print(synthetic_bundle(args.out, n=args.n, dim=args.dim, pixels=args.pixels, seed=args.seed, survey=args.survey,
                           progress=True))


if __name__ == "__main__":
    main()
