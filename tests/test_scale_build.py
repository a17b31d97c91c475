"""Building at scale: UMAP on a subsample with the rest placed through kNN, and the map-quality measures."""
import numpy as np
import pytest

from benchmarks.synthetic import synthetic_catalogue
from explorer.core.search import place_on_map
from training.embed import PLACEMENT_K, fit_map
from training.map_quality import knn_preservation, map_fidelity, trustworthiness_sample


@pytest.fixture(scope="module")
def embeddings():
    return synthetic_catalogue(1500, 48, seed=5, survey=True)[1]


@pytest.fixture(scope="module")
def subsampled(embeddings):
    return fit_map(embeddings, pca_components=20, n_neighbors=15, min_dist=0.1, seed=0, umap_fit_max=500)


def test_the_map_is_fitted_on_a_subsample_and_records_it(subsampled, embeddings):
    map_xy, pca, params = subsampled
    assert map_xy.shape == (len(embeddings), 2) and np.isfinite(map_xy).all()
    assert params["fitted_on"] == 500 and params["placed"] == 1000 and params["placement_k"] == PLACEMENT_K
    assert pca.n_components_ == 20 and params["metric"] == "cosine"


def test_placed_sources_sit_at_the_weighted_mean_of_their_fitted_neighbours(subsampled, embeddings):
    map_xy, pca, _ = subsampled
    reduced = pca.transform(embeddings).astype(np.float32)
    unit = reduced / np.linalg.norm(reduced, axis=1, keepdims=True)
    fitted = np.sort(np.random.default_rng(0).choice(len(embeddings), 500, replace=False))  # fit_map's own draw
    placed = np.setdiff1d(np.arange(len(embeddings)), fitted)
    for row in placed[[0, 100, 999]]:
        sims = unit[fitted] @ unit[row]
        nearest = np.argsort(-sims)[:PLACEMENT_K]
        np.testing.assert_allclose(map_xy[row], place_on_map(map_xy[fitted], nearest, sims[nearest]), atol=1e-4)


def test_small_catalogues_are_fitted_whole(embeddings):
    map_xy, _, params = fit_map(embeddings[:300], pca_components=20, n_neighbors=15, min_dist=0.1, seed=0)
    assert params["fitted_on"] == 300 and params["placed"] == 0 and "placement" not in params


def test_knn_preservation_is_one_for_a_faithful_map_and_near_chance_for_a_random_one():
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(3000, 2))
    high = np.column_stack([plane, np.full(3000, 50.0)])  # cosine neighbours here are Euclidean neighbours in the plane
    assert knn_preservation(high, plane, k=10, queries=300) > 0.9
    assert knn_preservation(high, rng.normal(size=(3000, 2)), k=10, queries=300) < 0.05


def test_trustworthiness_ranks_a_faithful_map_above_a_shuffled_one(subsampled, embeddings):
    map_xy, pca, _ = subsampled
    reduced = pca.transform(embeddings)
    faithful = trustworthiness_sample(reduced, map_xy, k=10, sample=800)
    shuffled = trustworthiness_sample(reduced, np.random.default_rng(1).permutation(map_xy), k=10, sample=800)
    assert faithful > 0.8 and shuffled < 0.6
    quality = map_fidelity(reduced, map_xy)
    assert quality["k"] == 10 and 0 < quality["knn_preservation"] <= 1


def test_the_subsampled_map_keeps_most_of_a_full_fit_quality(subsampled, embeddings):
    map_xy, pca, _ = subsampled
    full_xy, _, _ = fit_map(embeddings, pca_components=20, n_neighbors=15, min_dist=0.1, seed=0)
    reduced = pca.transform(embeddings)
    ours, full = map_fidelity(reduced, map_xy), map_fidelity(reduced, full_xy)
    assert ours["trustworthiness"] > full["trustworthiness"] - 0.1
