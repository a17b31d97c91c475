"""FAISS neighbours, angular de-duplication and out-of-sample map placement."""
import numpy as np
import pytest

from explorer.core.bundle import load_bundle, write_bundle
from explorer.core.search import deduplicate_by_separation, neighbours_of_row, neighbours_of_vector, place_on_map
from tests.test_bundle import make_arrays


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "b"
    arrays = make_arrays(n=200, d=24)
    cat = arrays["catalog"]
    # rows 1 and 2 are duplicate catalogue entries of row 0's position (5" and 12" away)
    cat.loc[1, ["ra", "dec"]] = cat.loc[0, "ra"] + 5 / 3600 / np.cos(np.deg2rad(cat.loc[0, "dec"])), cat.loc[0, "dec"]
    cat.loc[2, ["ra", "dec"]] = cat.loc[0, "ra"], cat.loc[0, "dec"] + 12 / 3600
    emb = arrays["embeddings"]
    emb[1] = emb[0] + 0.01
    emb[2] = emb[0] + 0.02
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    arrays["index"] = __import__("explorer.core.search", fromlist=["build_index"]).build_index(emb)[0]
    write_bundle(path, **arrays)
    return load_bundle(path)


def test_a_source_is_its_own_nearest_neighbour_with_similarity_one(bundle):
    for row in (0, 17, 199):
        nb = neighbours_of_vector(bundle, np.asarray(bundle.embeddings[row]), 5)
        assert nb.rows[0] == row and nb.similarity[0] == pytest.approx(1.0, abs=1e-5)
        assert np.all(np.diff(nb.similarity) <= 1e-6)


def test_neighbours_of_a_row_exclude_itself_and_match_brute_force(bundle):
    nb = neighbours_of_row(bundle, 5, 10)
    sims = bundle.embeddings @ bundle.embeddings[5]
    sims[5] = -np.inf
    np.testing.assert_array_equal(nb.rows, np.argsort(-sims)[:10])
    np.testing.assert_allclose(nb.similarity, np.sort(sims)[::-1][:10], atol=1e-5)


def test_deduplication_drops_entries_within_the_radius(bundle):
    plain = neighbours_of_row(bundle, 0, 5)
    assert {1, 2} <= set(plain.rows[:2].tolist())
    dedup = neighbours_of_row(bundle, 0, 5, dedup_arcsec=30)
    assert 1 not in dedup.rows and 2 not in dedup.rows and len(dedup.rows) == 5
    only_close = neighbours_of_row(bundle, 0, 5, dedup_arcsec=8)
    assert 1 not in only_close.rows and 2 in only_close.rows


def test_deduplicate_by_separation_is_greedy_in_order():
    ra = np.array([10.0, 10.0 + 3 / 3600, 10.1, 10.1 + 50 / 3600])
    dec = np.zeros(4)
    np.testing.assert_array_equal(deduplicate_by_separation(ra, dec, 30), [0, 2, 3])
    np.testing.assert_array_equal(deduplicate_by_separation(ra, dec, 30, anchor=(10.1, 0.0)), [0, 3])


def test_placement_is_the_similarity_weighted_mean():
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    np.testing.assert_allclose(place_on_map(xy, np.array([0, 1]), np.array([1.0, 1.0])), [5, 0])
    np.testing.assert_allclose(place_on_map(xy, np.array([1, 2]), np.array([3.0, 1.0])), [7.5, 2.5])
