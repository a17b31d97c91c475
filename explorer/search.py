"""Similarity search over a bundle: FAISS neighbours, angular de-duplication, map placement.

Embeddings are L2-normalised, so inner product is cosine similarity.
"""
from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import faiss
import numpy as np
from astropy.coordinates import SkyCoord


def build_index(embeddings: np.ndarray) -> tuple[faiss.Index, dict]:
    """An exact inner-product index and its manifest entry."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index, {"type": "IndexFlatIP", "space": "embeddings", "metric": "cosine", "exact": True}


@dataclass
class Neighbours:
    rows: np.ndarray          # int64 row numbers into the bundle, best first
    similarity: np.ndarray    # float32 cosine similarity


def search_vectors(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarity [q, k], rows [q, k]) for L2-normalised float32 queries."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    k = min(k, index.ntotal)
    sims, rows = index.search(q, k)
    return sims, rows


def neighbours_of_vector(bundle, vector: np.ndarray, k: int, *, exclude_row: int | None = None,
                         dedup_arcsec: float | None = None, query_radec: tuple[float, float] | None = None) -> Neighbours:
    """The k most similar sources to one embedding vector.

    ``exclude_row`` drops the query itself; ``dedup_arcsec`` drops neighbours lying within
    that angle of the query or of a better neighbour (duplicate catalogue entries).
    """
    fetch = k + (1 if exclude_row is not None else 0)
    if dedup_arcsec:
        fetch = max(fetch * 3, fetch + 20)  # head-room for the ones de-duplication removes
    sims, rows = search_vectors(bundle.index, vector, fetch)
    sims, rows = sims[0], rows[0]
    keep = rows >= 0
    if exclude_row is not None:
        keep &= rows != exclude_row
    sims, rows = sims[keep], rows[keep]
    if dedup_arcsec:
        anchor = query_radec
        if anchor is None and exclude_row is not None:
            anchor = tuple(bundle.catalog.loc[exclude_row, ["ra", "dec"]])
        kept = deduplicate_by_separation(bundle.catalog["ra"].to_numpy()[rows], bundle.catalog["dec"].to_numpy()[rows],
                                         dedup_arcsec, anchor=anchor)
        sims, rows = sims[kept], rows[kept]
    return Neighbours(rows[:k].astype(np.int64), sims[:k].astype(np.float32))


def neighbours_of_row(bundle, row: int, k: int, *, dedup_arcsec: float | None = None) -> Neighbours:
    return neighbours_of_vector(bundle, np.asarray(bundle.embeddings[row]), k, exclude_row=row,
                                dedup_arcsec=dedup_arcsec)


def deduplicate_by_separation(ra: np.ndarray, dec: np.ndarray, radius_arcsec: float,
                              anchor: tuple[float, float] | None = None) -> np.ndarray:
    """Indices (in order) of positions farther than the radius from the anchor and from every earlier kept one."""
    ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
    if anchor is not None:
        ra, dec = np.r_[anchor[0], ra], np.r_[anchor[1], dec]
    coords = SkyCoord(ra * u.deg, dec * u.deg)
    close = (coords[:, None].separation(coords[None, :]) <= radius_arcsec * u.arcsec)
    kept = [0] if anchor is not None else []
    for i in range(len(kept), len(coords)):
        if not close[i, kept].any():
            kept.append(i)
    kept = np.asarray(kept, dtype=np.int64)
    return kept[1:] - 1 if anchor is not None else kept


def place_on_map(map_xy: np.ndarray, rows: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """A 2-D map position for an out-of-sample point: the similarity-weighted mean of its neighbours'.

    (umap-learn's ``transform`` is far too slow for interactive use.)
    """
    w = np.clip(np.asarray(similarity, dtype=np.float64), 1e-6, None)
    return (np.asarray(map_xy)[rows] * w[:, None]).sum(axis=0) / w.sum()
