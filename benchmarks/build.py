"""Building a bundle at scale: encode, PCA, UMAP, index and thumbnails for N cutouts, and the map's
quality against a full UMAP fit, side by side in one run.

    python -m benchmarks.build --n 100000 [--full-fit-max 100000] [--checkpoint RUN_DIR]

- Cutouts: the simulated FIRST-like sky (``training.simulate``), generated in chunks of 5,000 and
  preprocessed exactly as ``training.embed`` does, then cached under
  ``cache_dir()/benchmarks`` (float32 70x70 crops, 2 GB per 100k). Simulation is not part of a
  build; preprocessing is, and is timed in each run on 2,000 fresh cutouts and scaled to N.
- Encoder: the demo recipe (``configs/demo.yaml``: ResNet-18, 70 px crop resampled to 32 px);
  trained weights from ``--checkpoint`` if given, else random (the time does not depend on the
  weights, and both maps below come from the same embeddings).
- This project: PCA (randomized, fitted on <= 100k), UMAP fitted on 20,000 sources and every other
  source placed at the similarity-weighted mean of its nearest fitted neighbours
  (``training.embed.fit_map``). Baseline: UMAP fitted on all of them (on ``--full-fit-max``
  random sources when N is larger; then both maps are compared on that subset and it says so).
- Quality (``training.map_quality``): trustworthiness and k-NN preservation against the PCA
  space, and the held-out k-NN R^2 of log angular size from the map (physics kept).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_directory, write_json
from explorer.core.config import REPO_ROOT, cache_dir
from explorer.core.encoder import build_encoder, embed
from explorer.core.preprocess import preprocess, to_thumbnails
from explorer.core.search import build_index
from training.config import load_config
from training.embed import MapConfig, fit_map
from training.map_quality import map_fidelity
from training.quality import knn_scores

MAP = MapConfig()

TARGET_S = 600
CHUNK = 5000
PREPROCESS_SAMPLE = 2000
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"


def cached_cutouts(n: int, config, seed: int = 0) -> Path:
    """Simulated cutouts preprocessed for the encoder, with their catalogue; made once, in chunks."""
    from training.simulate import simulate_sources

    params = config.preprocessing
    path = cache_dir() / "benchmarks" / f"cutouts-n{n}-s{seed}-crop{params.crop_pixels}"
    if (path / "timing.json").is_file():
        return path
    print(f"simulating and preprocessing {n:,} cutouts into {path} (cached for later runs) ...", flush=True)
    with atomic_directory(path) as tmp:
        crops = np.lib.format.open_memmap(tmp / "preprocessed.npy", mode="w+", dtype=np.float32,
                                          shape=(n, 1, params.crop_pixels, params.crop_pixels))
        catalogues, simulate_s, preprocess_s = [], 0.0, 0.0
        for chunk, start in enumerate(tqdm(range(0, n, CHUNK), desc="cutouts", unit="chunk")):
            size = min(CHUNK, n - start)
            t = time.perf_counter()
            images, catalogue = simulate_sources(size, seed=seed * 100_000 + chunk, progress=False)
            simulate_s += time.perf_counter() - t
            t = time.perf_counter()
            crops[start:start + size] = preprocess(images[:, None], params)
            preprocess_s += time.perf_counter() - t
            catalogues.append(catalogue.assign(id=[f"C{chunk:03d}-{i}" for i in catalogue["id"]]))
        crops.flush()
        del crops
        pd.concat(catalogues, ignore_index=True).to_parquet(tmp / "catalog.parquet", index=False)
        write_json(tmp / "timing.json", {"simulate_s": simulate_s, "preprocess_s": preprocess_s, "n": n})
    return path


def preprocess_seconds(n: int, config) -> float:
    """Seconds to preprocess n cutouts, timed now on a fresh sample (the machine's load changes)."""
    from training.simulate import simulate_sources

    images, _ = simulate_sources(PREPROCESS_SAMPLE, seed=999, progress=False)
    start = time.perf_counter()
    preprocess(images[:, None], config.preprocessing)
    return (time.perf_counter() - start) * n / PREPROCESS_SAMPLE


def full_umap(reduced: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                         random_state=seed).fit_transform(reduced).astype(np.float32)


def size_r2(map_xy: np.ndarray, catalogue: pd.DataFrame) -> float:
    size = catalogue["las_arcsec"].to_numpy(dtype=float)
    return knn_scores(map_xy, np.log10(size), classify=False, seed=1)["score"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--full-fit-max", type=int, default=100_000,
                        help="the full UMAP fit (the baseline) runs on at most this many sources")
    parser.add_argument("--config", default=str(DEMO_CONFIG))
    parser.add_argument("--checkpoint", help="a training run for trained weights (default: random weights)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    config = load_config(args.config)
    params = config.preprocessing
    path = cached_cutouts(args.n, config, args.seed)
    crops = np.load(path / "preprocessed.npy", mmap_mode="r")
    catalogue = pd.read_parquet(path / "catalog.parquet")
    if args.checkpoint:
        from training.train import encoder_from_checkpoint, load_checkpoint

        encoder, _ = encoder_from_checkpoint(load_checkpoint(args.checkpoint))
        weights = f"trained ({args.checkpoint})"
    else:
        import torch

        torch.manual_seed(args.seed)
        encoder, _ = build_encoder(config.encoder.architecture, config.encoder.in_channels)
        weights = "random (speed does not depend on the weights)"
    print(f"{args.n:,} cutouts, {config.encoder.architecture} at {params.input_pixels} px, weights {weights}; "
          f"{len(os.sched_getaffinity(0))} CPU(s), load average {os.getloadavg()[0]:.1f}\n", flush=True)

    seconds = {f"preprocess (timed on {PREPROCESS_SAMPLE:,}, scaled to N)": preprocess_seconds(args.n, config)}
    t = time.perf_counter()
    full_umap(np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32), 15, 0.1, 0)
    seconds["numba compilation (once per process)"] = time.perf_counter() - t
    t = time.perf_counter()
    embeddings = embed(encoder, crops, params, batch_size=256, device="cpu")
    seconds["encode"] = time.perf_counter() - t
    t = time.perf_counter()
    map_xy, pca, map_params = fit_map(embeddings, MAP.pca_components, MAP.umap_neighbors,
                                      MAP.umap_min_dist, config.seed, progress=True)
    seconds[f"PCA + UMAP on {map_params['fitted_on']:,} + place {map_params['placed']:,}"] = time.perf_counter() - t
    t = time.perf_counter()
    _, index_info = build_index(embeddings, seed=config.seed)
    seconds[f"index ({index_info['kind']})"] = time.perf_counter() - t
    t = time.perf_counter()
    for start in range(0, args.n, 20_000):
        to_thumbnails(crops[start:start + 20_000])
    seconds["thumbnails"] = time.perf_counter() - t
    total = sum(seconds.values())
    for step, s in seconds.items():
        print(f"  {step:<48}{s:>9.1f} s")
    verdict = "meets" if total <= TARGET_S else "MISSES"
    print(f"  {'total':<48}{total:>9.1f} s  ({verdict} the {TARGET_S} s target)\n", flush=True)

    # the baseline: one UMAP fit over every source (or over a subset where that is too slow)
    rows = np.arange(args.n)
    if args.n > args.full_fit_max:
        rows = np.sort(np.random.default_rng(args.seed).choice(args.n, size=args.full_fit_max, replace=False))
        map_xy, _, map_params = fit_map(embeddings[rows], MAP.pca_components, MAP.umap_neighbors,
                                        MAP.umap_min_dist, config.seed)
        print(f"map quality compared on a random {len(rows):,} of the {args.n:,} (a full fit of all is too slow here)")
    reduced = pca.transform(embeddings[rows]).astype(np.float32)
    t = time.perf_counter()
    full = full_umap(reduced, map_params["n_neighbors"], MAP.umap_min_dist, config.seed)
    full_s = time.perf_counter() - t
    ours_q, full_q = map_fidelity(reduced, map_xy), map_fidelity(reduced, full)
    ours_r2, full_r2 = size_r2(map_xy, catalogue.iloc[rows]), size_r2(full, catalogue.iloc[rows])
    print(f"{'':<40}{'UMAP on ' + format(map_params['fitted_on'], ',') + ' + placement':>28}"
          f"{'full UMAP fit':>18}")
    print(f"{'map time, s':<40}{'(above)':>28}{full_s:>18.1f}")
    for name in ("trustworthiness", "knn_preservation"):
        label = f"{name} (k={ours_q['k']})"
        print(f"{label:<40}{ours_q[name]:>28.3f}{full_q[name]:>18.3f}")
    print(f"{'k-NN R^2 of log size from the map':<40}{ours_r2:>28.3f}{full_r2:>18.3f}")
    print(f"n={args.n} build_s={total:.1f} trustworthiness={ours_q['trustworthiness']:.4f} "
          f"full_trustworthiness={full_q['trustworthiness']:.4f} knn_preservation={ours_q['knn_preservation']:.4f} "
          f"full_knn_preservation={full_q['knn_preservation']:.4f} full_fit_s={full_s:.1f}")


if __name__ == "__main__":
    main()
