"""Similarity search over a bundle: the FAISS index, neighbours, angular de-duplication, map placement.

Embeddings are L2-normalised, so inner product is cosine similarity.

The index type is chosen by the number of sources (:func:`choose_index`) and recorded, with its
parameters and the recall it reaches, in the manifest's ``index`` entry:

- ``flat`` below ``APPROXIMATE_FROM_N``: exact search; one query scans all N x D floats;
- ``ivf-flat`` below ``COMPRESSED_FROM_N``: k-means inverted lists over the full vectors; a query
  scans ``nprobe`` lists (well under a millisecond at 10^6);
- ``ivf-pq`` from ``COMPRESSED_FROM_N``: product-quantised codes (about D/8 bytes a source, so
  10^7-10^8 sources fit in memory); candidates are re-ranked by exact cosine similarity against
  the memory-mapped ``embeddings.npy``, so the similarities shown are exact.
- ``hnsw`` is available by name. On 10^6 clustered 128-d embeddings (2 cores) it took 2.3x
  longer to build than IVF-Flat and its recall@50 levelled off at ~0.95 however wide the search,
  while IVF-Flat reached 0.99 (``python -m benchmarks.search`` measures both).

An approximate index's search-time knob (HNSW ``efSearch``, IVF ``nprobe``) is raised at build
time until a sample of queries finds ``TARGET_RECALL`` of their exact k nearest neighbours; the
recall is then measured on a second, disjoint sample and stored. FAISS saves the knob inside
``index.faiss``, so a loaded bundle searches exactly as measured.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

import astropy.units as u
import faiss
import numpy as np
from astropy.coordinates import SkyCoord
from tqdm.auto import tqdm

INDEX_KINDS = ("flat", "hnsw", "ivf-flat", "ivf-pq")
APPROXIMATE_FROM_N = 50_000       # exact search of 50k x 512 already takes ~10 ms a query on one core
COMPRESSED_FROM_N = 10_000_000    # 10^7 x 512 float32 is 20 GB: from here, keep compressed codes in memory
RECALL_K = 50                     # the largest k the explorer asks for
RECALL_QUERIES = 200              # per sample (one to tune the search knob, a disjoint one to measure)
TARGET_RECALL = 0.97
HNSW_M = 32                       # graph degree: more is slower to build, better recall per query
HNSW_EF_CONSTRUCTION = 64
IVF_TRAIN_PER_LIST = 50           # k-means training points per inverted list
RERANK_FACTOR = 4                 # ivf-pq: candidates fetched per wanted neighbour, re-ranked exactly
ADD_CHUNK = 100_000
THREADS_ENV = "EXPLORER_THREADS"
# Fewer queries than this run on one thread: on a busy 2-core machine a single exact query over
# 60k x 64 took 0.55 ms on one OpenMP thread and 6-16 ms on two (waking and spinning workers).
ONE_THREAD_BELOW = 16


def configure_threads(threads: int | None = None) -> int:
    """FAISS's OpenMP threads for index building and batched search: ``threads``, else
    ``$EXPLORER_THREADS``, else the CPUs this process may use. Returns the number set."""
    if threads is None:
        threads = int(os.environ.get(THREADS_ENV) or 0) or len(os.sched_getaffinity(0))
    faiss.omp_set_num_threads(max(1, threads))
    return max(1, threads)


@contextmanager
def faiss_threads(threads: int | None = None):
    """Run FAISS calls with ``threads`` (default: :func:`configure_threads`'s choice), then restore.

    OpenMP keeps the setting per calling thread, so each Streamlit session thread sets its own.
    """
    before = faiss.omp_get_max_threads()
    configure_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


configure_threads()


def choose_index(n: int) -> str:
    """The index kind for a catalogue of ``n`` sources (see the module docstring)."""
    if n < APPROXIMATE_FROM_N:
        return "flat"
    return "ivf-flat" if n < COMPRESSED_FROM_N else "ivf-pq"


def _ivf_lists(n: int) -> int:
    """About 4 sqrt(N) inverted lists (a power of two), with at least 39 training points each (FAISS's minimum)."""
    return 2 ** max(2, round(math.log2(min(4 * math.sqrt(n), n / 39))))


def _pq_bytes(dim: int) -> int:
    """Bytes per PQ code: about dim/8 (8-bit sub-quantisers), a divisor of dim."""
    return max(m for m in range(1, max(dim // 8, 1) + 1) if dim % m == 0)


def _factory(kind: str, n: int, dim: int) -> str:
    if kind == "hnsw":
        return f"HNSW{HNSW_M},Flat"
    lists = _ivf_lists(n)
    quantizer = f"IVF{lists}_HNSW32" if lists >= 16_384 else f"IVF{lists}"  # a flat quantizer is slow past ~10^4 lists
    return f"{quantizer},Flat" if kind == "ivf-flat" else f"{quantizer},PQ{_pq_bytes(dim)}"


def build_index(embeddings: np.ndarray, *, kind: str | None = None, k: int = RECALL_K,
                target_recall: float = TARGET_RECALL, seed: int = 0, progress: bool = False
                ) -> tuple[faiss.Index, dict]:
    """A cosine-similarity index over L2-normalised float32 embeddings, and its manifest entry.

    ``kind`` defaults to :func:`choose_index` of N. Approximate indices are tuned and their
    recall@k against exact search is measured on held-out samples of the catalogue's own rows.
    """
    with faiss_threads():
        return _build_index(np.asarray(embeddings), kind, k, target_recall, seed, progress)


def _build_index(x: np.ndarray, kind: str | None, k: int, target_recall: float, seed: int,
                 progress: bool) -> tuple[faiss.Index, dict]:
    n, dim = x.shape
    kind = kind or choose_index(n)
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
    k = max(1, min(k, n))
    info = {"kind": kind, "space": "embeddings", "metric": "cosine", "n": int(n), "exact": kind == "flat"}
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        _add(index, x, progress)
        return index, {**info, "type": "IndexFlatIP", "recall_at_k": 1.0, "k": k}

    factory = _factory(kind, n, dim)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        info.update(M=HNSW_M, efConstruction=HNSW_EF_CONSTRUCTION)
    else:
        if kind == "ivf-pq":
            index.do_polysemous_training = False  # slow, and only polysemous (Hamming) filtering uses it
        lists = faiss.extract_index_ivf(index).nlist
        sample = np.random.default_rng(seed).choice(n, size=min(n, IVF_TRAIN_PER_LIST * lists), replace=False)
        index.train(_rows(x, sample))
        info.update(nlist=int(lists), trained_on=int(len(sample)))
        if kind == "ivf-pq":
            info.update(pq_bytes=_pq_bytes(dim), rerank_factor=RERANK_FACTOR)
    _add(index, x, progress)
    info.update(type=type(index).__name__, factory=factory)
    info.update(tune_search(index, x, info, k=k, target_recall=target_recall, seed=seed))
    return index, info


def _rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """x[rows] as contiguous float32, reading a memory map in row order."""
    return np.ascontiguousarray(x[np.sort(rows)], dtype=np.float32)


def _add(index: faiss.Index, x: np.ndarray, progress: bool) -> None:
    """Add in chunks: a memory-mapped array is read piecewise, and the bar moves."""
    for start in tqdm(range(0, len(x), ADD_CHUNK), desc=f"indexing {len(x):,} vectors", unit="chunk",
                      disable=not progress or len(x) <= ADD_CHUNK):
        index.add(np.ascontiguousarray(x[start:start + ADD_CHUNK], dtype=np.float32))


def _knob(index: faiss.Index, k: int) -> tuple[str, list[int]]:
    """The search-time parameter of an approximate index and the values to try, smallest first."""
    if isinstance(index, faiss.IndexHNSW):  # efSearch below k would return fewer than k results
        return "efSearch", sorted({max(v, k) for v in (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048)})
    lists = faiss.extract_index_ivf(index).nlist
    return "nprobe", [p for p in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024) if p < lists] + [lists]


def set_knob(index: faiss.Index, name: str, value: int) -> None:
    if name == "efSearch":
        index.hnsw.efSearch = int(value)
    else:
        faiss.extract_index_ivf(index).nprobe = int(value)


def tune_search(index: faiss.Index, embeddings: np.ndarray, info: dict, *, k: int = RECALL_K,
                target_recall: float = TARGET_RECALL, seed: int = 0) -> dict:
    """Raise the search knob until a tuning sample reaches the target recall; measure on a disjoint sample."""
    n = len(embeddings)
    picked = np.random.default_rng(seed + 1).choice(n, size=min(n, 2 * RECALL_QUERIES), replace=False)
    tune_rows, measure_rows = picked[:len(picked) // 2], picked[len(picked) // 2:]
    tune_q, measure_q = _rows(embeddings, tune_rows), _rows(embeddings, measure_rows)
    tune_truth = exact_neighbours(embeddings, tune_q, k)
    name, values = _knob(index, k)
    tried = {}
    for value in values:
        set_knob(index, name, value)
        tried[value] = recall_at_k(search_vectors(index, tune_q, k, info=info, embeddings=embeddings)[1], tune_truth)
        if tried[value] >= target_recall:
            break
    value = next((v for v, r in tried.items() if r >= target_recall), max(tried, key=tried.get))
    set_knob(index, name, value)
    found = search_vectors(index, measure_q, k, info=info, embeddings=embeddings)[1]
    return {name: int(value), "recall_at_k": round(recall_at_k(found, exact_neighbours(embeddings, measure_q, k)), 4),
            "k": int(k), "recall_queries": int(len(measure_rows)), "target_recall": target_recall,
            "tuning": {str(v): round(r, 4) for v, r in tried.items()}}


def exact_neighbours(embeddings: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows [q, k] of the exact k most similar embeddings to each query (brute force, any N)."""
    with faiss_threads():
        return faiss.knn(np.ascontiguousarray(queries, dtype=np.float32), np.ascontiguousarray(embeddings), k,
                         metric=faiss.METRIC_INNER_PRODUCT)[1]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """The mean fraction of each query's true k nearest rows (``truth`` [q, k]) that ``found`` [q, >= 0] holds."""
    found, truth = np.atleast_2d(found), np.atleast_2d(truth)
    hits = [np.isin(t, f[f >= 0]).sum() for f, t in zip(found, truth)]
    return float(np.sum(hits) / truth.size)


@dataclass
class Neighbours:
    rows: np.ndarray          # int64 row numbers into the bundle, best first
    similarity: np.ndarray    # float32 cosine similarity


def search_vectors(index: faiss.Index, queries: np.ndarray, k: int, *, info: dict | None = None,
                   embeddings: np.ndarray | None = None, allowed: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(similarity [q, k], rows [q, k]) for L2-normalised float32 queries.

    When the manifest entry ``info`` asks for re-ranking (compressed codes), ``rerank_factor x k``
    candidates are re-scored with exact cosine similarity against ``embeddings``. ``allowed`` (bool
    over the rows) restricts the search inside FAISS, so a filter does not cost recall.
    """
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    params = None if allowed is None else _restricted(index, allowed)
    with faiss_threads(1 if len(q) < ONE_THREAD_BELOW else None):
        return _search(index, q, min(k, index.ntotal), (info or {}).get("rerank_factor"), embeddings, params)


def _restricted(index: faiss.Index, allowed: np.ndarray) -> faiss.SearchParameters:
    """Search parameters that only visit the allowed rows, keeping the index's tuned knob."""
    selector = faiss.IDSelectorBitmap(np.packbits(np.asarray(allowed, dtype=bool), bitorder="little"))
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(efSearch=index.hnsw.efSearch)
    elif isinstance(index, faiss.IndexFlat):
        params = faiss.SearchParameters()
    else:
        params = faiss.SearchParametersIVF(nprobe=faiss.extract_index_ivf(index).nprobe)
    params.sel = selector
    params.keep_alive = selector  # the Python object must outlive the search
    return params


def _search(index, q, k, factor, embeddings, params=None) -> tuple[np.ndarray, np.ndarray]:
    if not factor or embeddings is None:
        return index.search(q, k, params=params)
    _, candidates = index.search(q, min(k * int(factor), index.ntotal), params=params)
    sims = np.full(candidates.shape, -np.inf, dtype=np.float32)
    for i in range(len(candidates)):
        rows = np.sort(candidates[i][candidates[i] >= 0])  # in file order: a memory map reads forwards
        candidates[i] = -1
        candidates[i, :len(rows)] = rows
        sims[i, :len(rows)] = np.asarray(embeddings[rows], dtype=np.float32) @ q[i]
    best = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    rows = np.take_along_axis(candidates, best, axis=1)
    sims = np.take_along_axis(sims, best, axis=1)
    rows[~np.isfinite(sims)] = -1
    return sims, rows


def neighbours_of_vector(bundle, vector: np.ndarray, k: int, *, exclude_row=None,
                         dedup_arcsec: float | None = None, query_radec: tuple[float, float] | None = None,
                         allowed: np.ndarray | None = None) -> Neighbours:
    """The k most similar sources to one embedding vector.

    ``exclude_row`` (a row or several) drops the query's own sources; ``dedup_arcsec`` drops neighbours
    lying within that angle of the query or of a better neighbour (duplicate catalogue entries);
    ``allowed`` (bool over the rows, e.g. the explorer's filter) keeps only those rows.
    """
    excluded = np.atleast_1d(np.asarray([] if exclude_row is None else exclude_row, dtype=np.int64))
    fetch = k + len(excluded)
    if dedup_arcsec:
        fetch = max(fetch * 3, fetch + 20)  # head-room for the ones de-duplication removes
    sims, rows = _best_matches(bundle, np.asarray(vector, dtype=np.float32).reshape(-1), fetch, allowed)
    keep = (rows >= 0) & ~np.isin(rows, excluded)
    sims, rows = sims[keep], rows[keep]
    if dedup_arcsec:
        anchor = query_radec
        if anchor is None and len(excluded) == 1:
            anchor = tuple(bundle.catalog.loc[int(excluded[0]), ["ra", "dec"]])
        kept = deduplicate_by_separation(bundle.catalog["ra"].to_numpy()[rows], bundle.catalog["dec"].to_numpy()[rows],
                                         dedup_arcsec, anchor=anchor)
        sims, rows = sims[kept], rows[kept]
    return Neighbours(rows[:k].astype(np.int64), sims[:k].astype(np.float32))


EXACT_FILTERED_BELOW = 20_000   # a filter keeping fewer rows than this is searched exactly (a few ms)
EXACT_CHUNK = 65_536


def _best_matches(bundle, vector: np.ndarray, fetch: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(similarity [fetch], rows [fetch]) through the index; with a filter, exact over the kept rows when they are
    few or when the index's probed lists hold too few of them."""
    kept = None if allowed is None else np.flatnonzero(allowed)
    if kept is None or len(kept) > EXACT_FILTERED_BELOW:
        sims, rows = search_vectors(bundle.index, vector, fetch, info=bundle.manifest.index,
                                    embeddings=bundle.embeddings, allowed=allowed)
        sims, rows = sims[0], rows[0]
        if kept is None or (rows >= 0).sum() >= min(fetch, len(kept)):
            return sims, rows
    return exact_among(bundle.embeddings, vector, kept, fetch)


def exact_among(embeddings: np.ndarray, vector: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows among ``rows`` most similar to ``vector``, by brute force (read in row order, in chunks)."""
    best_sims, best_rows = np.empty(0, np.float32), np.empty(0, np.int64)
    for start in range(0, len(rows), EXACT_CHUNK):
        chunk = rows[start:start + EXACT_CHUNK]
        sims = np.asarray(embeddings[chunk], dtype=np.float32) @ vector
        best_sims, best_rows = np.r_[best_sims, sims], np.r_[best_rows, chunk]
        if len(best_sims) > k:
            top = np.argpartition(-best_sims, k)[:k]
            best_sims, best_rows = best_sims[top], best_rows[top]
    order = np.argsort(-best_sims, kind="stable")
    return best_sims[order], best_rows[order]


def neighbours_of_row(bundle, row: int, k: int, *, dedup_arcsec: float | None = None,
                      allowed: np.ndarray | None = None) -> Neighbours:
    return neighbours_of_vector(bundle, np.asarray(bundle.embeddings[row]), k, exclude_row=row,
                                dedup_arcsec=dedup_arcsec, allowed=allowed)


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
    """Map positions for out-of-sample points: the similarity-weighted mean of their neighbours' positions.

    ``rows`` and ``similarity`` are [k] for one point (returns [2]) or [m, k] for many (returns
    [m, 2]). Used for queries in the explorer and to place the sources a subsampled UMAP did not
    fit (umap-learn's ``transform`` is far too slow for either).
    """
    w = np.clip(np.asarray(similarity, dtype=np.float64), 1e-6, None)
    xy = np.asarray(map_xy)[np.asarray(rows)]
    return (xy * w[..., None]).sum(axis=-2) / w.sum(axis=-1)[..., None]


ANOMALY_K = 10
PERCENTILES = np.arange(101)


def neighbourhood(index: faiss.Index, embeddings: np.ndarray, *, info: dict | None = None, k: int = ANOMALY_K,
                  batch: int = 8192, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per source, through the bundle's index: (cosine similarity to its nearest *other* source, anomaly score
    = 1 - the mean similarity to its k nearest others). The odd ones out (Astronomaly's use) score highest."""
    from tqdm.auto import tqdm

    n = len(embeddings)
    nearest, anomaly = np.empty(n, np.float32), np.empty(n, np.float32)
    for start in tqdm(range(0, n, batch), desc="neighbourhoods", unit="batch", disable=not progress):
        rows = np.arange(start, min(start + batch, n))
        sims, found = search_vectors(index, np.asarray(embeddings[rows]), k + 1, info=info, embeddings=embeddings)
        others = (found != rows[:, None]) & (found >= 0)
        # keep the k best others of each row (the row itself is usually first, but not always: duplicates)
        order = np.argsort(~others, axis=1, kind="stable")[:, :k]
        sims = np.take_along_axis(np.where(others, sims, np.nan), order, axis=1)
        nearest[rows] = sims[:, 0]
        anomaly[rows] = 1.0 - np.nanmean(sims, axis=1)
    return nearest, anomaly


def typicality(similarity: float, nearest_percentiles) -> float:
    """The percentile of a query's best similarity among the catalogue sources' own nearest-neighbour
    similarities: near 0 means the query is less like anything in the bundle than almost every source is."""
    values = np.asarray(nearest_percentiles, dtype=np.float64)
    return float(np.interp(similarity, values, PERCENTILES[:len(values)], left=0.0, right=100.0))
