"""How faithful is a 2-D map to the embedding space? Measures that scale, for comparing map builds.

- **trustworthiness** (sklearn, Venna & Kaski): are a source's neighbours on the map also
  neighbours in the embedding space? sklearn needs all pairwise distances, so it is computed on a
  random subset of ``sample`` sources (their neighbourhoods within the subset);
- **k-NN preservation**: for ``queries`` random sources, the fraction of their k nearest
  neighbours in the embedding space (cosine, among all N) that are also among their k nearest on
  the map (Euclidean, among all N).

Both are 1 for a perfect map; compare two maps of the same embeddings (e.g. UMAP on a subsample
plus placement against a full UMAP fit).
"""
from __future__ import annotations

import faiss
import numpy as np
from sklearn.manifold import trustworthiness

from explorer.core.search import exact_neighbours, faiss_threads


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


def knn_preservation(high: np.ndarray, map_xy: np.ndarray, *, k: int = 10, queries: int = 2000, seed: int = 0) -> float:
    """Mean fraction of each query's k cosine nearest neighbours in ``high`` kept among its k nearest on the map."""
    n = len(high)
    rows = np.random.default_rng(seed).choice(n, size=min(queries, n), replace=False)
    unit = _unit(high)
    in_space = exact_neighbours(unit, unit[rows], k + 1)
    xy = np.ascontiguousarray(map_xy, dtype=np.float32)
    with faiss_threads():
        on_map = faiss.knn(xy[rows], xy, k + 1, metric=faiss.METRIC_L2)[1]
    kept = [len((set(a) & set(b)) - {r}) for r, a, b in zip(rows, in_space.tolist(), on_map.tolist())]
    return float(np.mean(kept) / k)


def trustworthiness_sample(high: np.ndarray, map_xy: np.ndarray, *, k: int = 10, sample: int = 5000,
                           seed: int = 0) -> float:
    """sklearn's trustworthiness (cosine in ``high``) on a random subset of ``sample`` sources."""
    n = len(high)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    return float(trustworthiness(np.asarray(high[rows], dtype=np.float32), np.asarray(map_xy[rows]),
                                 n_neighbors=k, metric="cosine"))


def map_fidelity(high: np.ndarray, map_xy: np.ndarray, *, k: int = 10, seed: int = 0) -> dict:
    return {"trustworthiness": trustworthiness_sample(high, map_xy, k=k, seed=seed),
            "knn_preservation": knn_preservation(high, map_xy, k=k, seed=seed), "k": k}
