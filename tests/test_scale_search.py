"""Search that scales: the index chosen by N, recall measured against brute force and stored, threads."""
import faiss
import numpy as np
import pytest

from benchmarks.synthetic import synthetic_catalogue
from explorer.core.bundle import Manifest
from explorer.core import search
from explorer.core.bundle import load_bundle, write_bundle
from explorer.core.search import (APPROXIMATE_FROM_N, COMPRESSED_FROM_N, build_index, choose_index, exact_neighbours,
                             place_on_map, recall_at_k, search_vectors)
from tests.test_bundle import make_arrays


@pytest.fixture(scope="module")
def embeddings():
    """6,000 embeddings of the survey model (a curved low-dimensional manifold, as encoders give)."""
    return synthetic_catalogue(6000, 64, seed=2, survey=True)[1]


@pytest.fixture(scope="module")
def compressed(embeddings):
    return build_index(embeddings, kind="ivf-pq", k=20, target_recall=0.95)


def brute_force(x: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The reference: every similarity, sorted."""
    return np.argsort(-(queries @ x.T), axis=1, kind="stable")[:, :k]


def test_the_index_is_chosen_by_the_number_of_sources():
    assert choose_index(1) == choose_index(APPROXIMATE_FROM_N - 1) == "flat"
    assert choose_index(APPROXIMATE_FROM_N) == choose_index(1_000_000) == "ivf-flat"
    assert choose_index(COMPRESSED_FROM_N - 1) == "ivf-flat"
    assert choose_index(COMPRESSED_FROM_N) == choose_index(10 ** 8) == "ivf-pq"


def test_small_catalogues_get_exact_search(embeddings):
    index, info = build_index(embeddings[:500])
    assert isinstance(index, faiss.IndexFlatIP)
    assert info["kind"] == "flat" and info["exact"] and info["recall_at_k"] == 1.0 and info["metric"] == "cosine"


def test_recall_at_k_counts_the_true_neighbours_found():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])  # order does not matter; -1 is "no result"
    assert recall_at_k(found, truth) == pytest.approx((2 + 4) / 8)
    assert recall_at_k(truth[:1], truth[:1]) == 1.0 and recall_at_k(found[:1, :0], truth[:1]) == 0.0


def test_exact_neighbours_match_brute_force(embeddings):
    queries = embeddings[[3, 999, 4500]]
    np.testing.assert_array_equal(exact_neighbours(embeddings, queries, 25), brute_force(embeddings, queries, 25))


@pytest.mark.parametrize("kind", ["ivf-flat", "hnsw", "ivf-pq"])
def test_approximate_indices_store_the_recall_they_reach(embeddings, compressed, kind):
    index, info = compressed if kind == "ivf-pq" else build_index(embeddings, kind=kind, k=20, target_recall=0.95)
    knob = "efSearch" if kind == "hnsw" else "nprobe"
    assert info["kind"] == kind and not info["exact"] and info["k"] == 20 and info[knob] >= 1
    assert info["recall_queries"] == search.RECALL_QUERIES and info["factory"]
    assert info["recall_at_k"] >= 0.9  # the tuned knob generalises to the held-out queries

    # the stored recall is what brute force says on fresh queries, within sampling error
    rows = np.random.default_rng(7).choice(len(embeddings), 300, replace=False)
    queries = embeddings[rows]
    found = search_vectors(index, queries, 20, info=info, embeddings=embeddings)[1]
    truth = brute_force(embeddings, queries, 20)
    reference = np.mean([len(set(f) & set(t)) / 20 for f, t in zip(found.tolist(), truth.tolist())])
    assert recall_at_k(found, truth) == pytest.approx(reference)
    assert abs(reference - info["recall_at_k"]) < 0.05


def test_compressed_codes_are_reranked_to_exact_similarities(embeddings, compressed):
    index, info = compressed
    assert info["rerank_factor"] == search.RERANK_FACTOR and embeddings.shape[1] % info["pq_bytes"] == 0
    sims, rows = search_vectors(index, embeddings[:5], 10, info=info, embeddings=embeddings)
    for q, (s, r) in enumerate(zip(sims, rows)):
        np.testing.assert_allclose(s, embeddings[r] @ embeddings[q], rtol=1e-5)
        assert np.all(np.diff(s) <= 1e-6) and r[0] == q


def test_a_bundle_searches_with_the_knob_it_was_tuned_with(tmp_path, embeddings):
    arrays = make_arrays(n=len(embeddings), d=embeddings.shape[1])
    index, info = build_index(embeddings, kind="ivf-flat", k=20)
    arrays.update(embeddings=embeddings, index=index, manifest=Manifest(index=info))
    write_bundle(tmp_path / "b", **arrays)
    loaded = load_bundle(tmp_path / "b")
    assert faiss.extract_index_ivf(loaded.index).nprobe == info["nprobe"]
    assert loaded.manifest.index["recall_at_k"] == info["recall_at_k"]


def test_faiss_threads_follow_the_environment(monkeypatch):
    before = faiss.omp_get_max_threads()
    try:
        monkeypatch.setenv(search.THREADS_ENV, "1")
        assert search.configure_threads() == 1 and faiss.omp_get_max_threads() == 1
        monkeypatch.delenv(search.THREADS_ENV)
        assert search.configure_threads() == len(__import__("os").sched_getaffinity(0))
    finally:
        faiss.omp_set_num_threads(before)


def test_placement_of_many_points_equals_one_at_a_time():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(50, 2))
    rows, sims = rng.integers(0, 50, (8, 5)), rng.uniform(0.5, 1.0, (8, 5))
    many = place_on_map(xy, rows, sims)
    assert many.shape == (8, 2)
    for i in range(8):
        np.testing.assert_allclose(many[i], place_on_map(xy, rows[i], sims[i]))
