"""Few-label heads on frozen embeddings: learning, chance, metrics, label subsets, storage, bad input."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.core.bundle import Manifest
from explorer.core import heads
from explorer.core.bundle import load_bundle, write_bundle
from explorer.core.errors import InputError
from explorer.core.search import build_index


def clustered(n=600, dim=32, classes=3, seed=0, spread=1.0):
    """Embeddings in well separated class clusters, with a numeric target linear in the embedding."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, classes, n)
    x = (rng.normal(size=(classes, dim)) * 3.0)[codes] + spread * rng.normal(size=(n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    catalog = pd.DataFrame({"id": [f"s{i}" for i in range(n)], "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-30, 60, n),
                            "kind": np.array(["FRI", "FRII", "compact", "bent"])[codes],
                            "size": 10 ** (1.5 + 4.0 * (x @ rng.normal(size=dim) / np.sqrt(dim)))})
    return catalog, x


BANDS = 4   # the bandwise head reads the 32-d features as 4 bands of 8 (the others ignore it)


def shuffled(labels, seed=1):
    return heads.LabelSet(labels.task, labels.rows, np.random.default_rng(seed).permutation(labels.y))


@pytest.mark.parametrize("kind", heads.HEAD_KINDS)
def test_heads_learn_separable_classes_and_are_at_chance_on_shuffled_labels(kind):
    catalog, x = clustered(n=600, classes=3)
    labels = heads.label_set(catalog, "kind")
    pool, test = heads.split_labels(labels, 0.25)
    learned = heads.fit_head(kind, x, labels, pool, device="cpu", bands=BANDS)
    accuracy = heads.score(labels, test, learned.predict(x[labels.rows[test]]))["accuracy"]
    assert accuracy >= 0.98

    noise = shuffled(labels)
    chance = heads.fit_head(kind, x, noise, pool, device="cpu", bands=BANDS)
    shuffled_accuracy = heads.score(noise, test, chance.predict(x[noise.rows[test]]))["accuracy"]
    # 3 balanced classes: chance is 1/3; 150 test sources put 2.5 standard deviations at +/- 0.1
    assert abs(shuffled_accuracy - 1 / 3) < 0.1


@pytest.mark.parametrize("kind", heads.HEAD_KINDS)
def test_regression_heads_follow_a_smooth_target_and_not_a_shuffled_one(kind):
    catalog, x = clustered(n=800, classes=4, spread=2.0, seed=3)
    labels = heads.label_set(catalog, "size", log=True)
    assert labels.task.kind == "regression" and labels.task.target == "log10(size)"
    pool, test = heads.split_labels(labels, 0.25)
    r2 = heads.score(labels, test, heads.fit_head(kind, x, labels, pool, device="cpu", bands=BANDS,
                                                  loss="mse+scatter").predict(x[labels.rows[test]]))["r2"]
    noise = shuffled(labels)
    r2_noise = heads.score(noise, test, heads.fit_head(kind, x, noise, pool, device="cpu", bands=BANDS)
                           .predict(x[noise.rows[test]]))["r2"]
    assert r2 > 0.6 and r2_noise < 0.1


def test_regression_metrics_match_hand_computed_values():
    y, yhat = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0])
    m = heads.regression_metrics(y, yhat)
    # r = y - yhat = [-0.5, 0, 1, -1]
    assert m["mae"] == pytest.approx(2.5 / 4)
    assert m["rmse"] == pytest.approx(np.sqrt(2.25 / 4))
    assert m["r2"] == pytest.approx(1 - 2.25 / 5.0)            # sum (y - 2.5)^2 = 5
    assert m["bias"] == pytest.approx(-0.5 / 4)
    assert m["intrinsic_scatter"] == pytest.approx(np.sqrt(np.mean((np.array([-0.5, 0, 1, -1]) + 0.125) ** 2)))
    assert m["std_abs_residual"] == pytest.approx(np.std([0.5, 0, 1, 1]))


def test_classification_metrics_match_hand_computed_values():
    truth, predicted = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 1, 1])
    m = heads.classification_metrics(truth, predicted, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6) and m["error"] == pytest.approx(2 / 6)
    assert m["confusion"] == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "support": 3}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 4) and m["per_class"]["b"]["recall"] == 1.0
    assert m["per_class"]["c"] == {"precision": None, "recall": 0.0, "support": 1}


def test_regression_loss_adds_alpha_times_the_spread_of_absolute_residuals():
    pred, target = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 5.0])   # |r| = 0, 1, 2
    assert heads.regression_loss(pred, target, "mse").item() == pytest.approx(5 / 3)
    assert heads.regression_loss(pred, target, "mse+scatter", alpha=0.5).item() == pytest.approx(5 / 3 + 0.5 * np.std([0, 1, 2]))


def test_class_weights_balance_the_classes():
    codes = np.array([0] * 8 + [1] * 2)
    w = heads.class_weights(codes, 3)
    assert w.tolist() == pytest.approx([10 / (3 * 8), 10 / (3 * 2), 0.0])
    assert w[0] * 8 == pytest.approx(w[1] * 2)  # each present class carries the same total weight


def test_class_weights_lift_the_recall_of_a_rare_class():
    rng = np.random.default_rng(5)
    n_common, n_rare, dim = 950, 50, 16
    x = np.r_[rng.normal(0, 1, (n_common, dim)), rng.normal(0.6, 1, (n_rare, dim))].astype(np.float32)
    catalog = pd.DataFrame({"c": ["common"] * n_common + ["rare"] * n_rare})
    labels = heads.label_set(catalog, "c")
    everything = np.arange(len(labels))
    recall = {}
    for weighted in (False, True):
        head = heads.fit_head("linear", x, labels, everything, device="cpu", weighted=weighted)
        recall[weighted] = heads.score(labels, everything, head.predict(x))["per_class"]["rare"]["recall"]
    assert recall[True] > recall[False] + 0.2


def test_stratified_order_gives_nested_proportional_subsets():
    strata = np.array([0] * 700 + [1] * 280 + [2] * 20)
    order = heads.stratified_order(strata, seed=4)
    assert sorted(order) == list(range(1000))
    for n in (36, 72, 145, 291):
        counts = np.bincount(strata[order[:n]], minlength=3)
        assert np.all(np.abs(counts - n * np.array([0.7, 0.28, 0.02])) <= 1.0 + 1e-9), (n, counts)
    assert not np.array_equal(order, heads.stratified_order(strata, seed=5))
    catalog, _ = clustered(n=300)
    labels = heads.label_set(catalog, "kind")
    pool, _ = heads.split_labels(labels, 0.2)
    small, large = heads.budget_subset(labels, pool, 30, seed=2), heads.budget_subset(labels, pool, 90, seed=2)
    assert set(small) <= set(large) and set(large) <= set(pool)


def test_the_held_out_split_is_fixed_disjoint_and_stratified():
    catalog, _ = clustered(n=500)
    labels = heads.label_set(catalog, "kind")
    pool, test = heads.split_labels(labels, 0.2)
    again_pool, again_test = heads.split_labels(labels, 0.2)
    assert np.array_equal(test, again_test) and not set(pool) & set(test) and len(pool) + len(test) == 500
    share = np.bincount(labels.y[test], minlength=3) / len(test)
    assert np.allclose(share, np.bincount(labels.y, minlength=3) / 500, atol=0.02)


@pytest.mark.parametrize("column, kwargs, message", [
    ("one", {}, "has only the class 'FRI'; a classifier needs at least two classes"),
    ("mixed", {"kind": "regression"}, "non-numeric value(s) (e.g. 'n/a')"),
    ("value", {"log": True}, "needs positive values"),
    ("absent", {}, "no column 'absent'"),
])
def test_bad_label_columns_get_clear_messages(column, kwargs, message):
    catalog = pd.DataFrame({"one": ["FRI", "FRI", None, "FRI"], "mixed": ["1.5", "n/a", "2", ""],
                            "value": [1.0, -2.0, 3.0, np.nan]})
    with pytest.raises(InputError, match=re.escape(message)):
        heads.label_set(catalog, column, **kwargs)


def test_fewer_labels_than_requested_is_a_clear_error():
    catalog, _ = clustered(n=50)
    labels = heads.label_set(catalog, "kind")
    pool, _ = heads.split_labels(labels, 0.2)
    with pytest.raises(InputError, match="145 labels were requested but only 40 labelled sources are available"):
        heads.budget_subset(labels, pool, 145, seed=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_but_absent_is_a_clear_error():
    catalog, x = clustered(n=60)
    labels = heads.label_set(catalog, "kind")
    with pytest.raises(InputError, match="CUDA was requested but no CUDA GPU is available"):
        heads.fit_head("linear", x, labels, np.arange(40), device="cuda")


def test_task_detection_and_empty_cells():
    catalog = pd.DataFrame({"text": ["a", " ", None, "b"], "number": [1.0, np.nan, 2.0, 3.0], "flag": [True, False, True, False]})
    assert heads.detect_task_kind(catalog["text"]) == "classification"
    assert heads.detect_task_kind(catalog["number"]) == "regression"
    assert heads.detect_task_kind(catalog["flag"]) == "classification"
    assert heads.label_set(catalog, "text").rows.tolist() == [0, 3]
    assert heads.label_set(catalog, "number").rows.tolist() == [0, 2, 3]


@pytest.fixture
def bundle(tmp_path):
    catalog, x = clustered(n=300, classes=3, seed=7)
    catalog.loc[::10, "kind"] = None        # unlabelled sources
    write_bundle(tmp_path / "b", manifest=Manifest(columns={"size": {"unit": "arcsec", "description": "size"}}),
                 catalog=catalog, embeddings=x, map_xy=x[:, :2], thumbnails=np.zeros((300, 4, 4), np.uint8),
                 index=build_index(x)[0], pca_mean=x.mean(0), pca_components=np.eye(32, dtype=np.float32)[:2])
    return load_bundle(tmp_path / "b")


def test_a_trained_head_writes_prediction_columns_for_every_source_and_round_trips(bundle):
    spec = heads.HeadSpec("kind", "kind_lin", "linear", budget=60, curve_points=3, curve_seeds=2, device="cpu")
    report = heads.train_frozen_head(bundle, spec)
    assert report.metrics["accuracy"] >= 0.95 and report.n_train == 60
    assert [r["labels"] for r in report.curve] == heads.curve_counts(60, 3, 3) and report.curve[0]["seeds"] == 2

    reloaded = load_bundle(bundle.path)
    cat = reloaded.catalog
    assert {"kind_lin_class", "kind_lin_prob", "kind_lin_correct", "kind_lin_split"} <= set(cat.columns)
    assert cat["kind_lin_class"].notna().all() and len(cat) == bundle.n
    assert cat.loc[cat["kind"].isna(), "kind_lin_correct"].isna().all()
    assert (cat["kind_lin_split"] == "train").sum() == 60
    assert (cat["kind_lin_split"] == "unlabelled").sum() == 30
    assert reloaded.column_description("kind_lin_prob").endswith("probability of the predicted class")

    head = heads.load_head(bundle.path, "kind_lin")
    again = head.predict(np.asarray(bundle.embeddings))
    assert np.array_equal(np.asarray(head.task.classes)[again.codes], cat["kind_lin_class"].to_numpy(dtype=str))
    assert np.allclose(again.confidence, cat["kind_lin_prob"], atol=1e-6)
    files = sorted(p.name for p in (bundle.path / "heads" / "kind_lin").iterdir())
    assert files == ["head.json", "head.safetensors"]
    meta = json.loads((bundle.path / "heads" / "kind_lin" / "head.json").read_text())
    assert meta["task"]["classes"] == ["FRI", "FRII", "compact"] and len(meta["train_ids"]) == 60


def test_knn_and_regression_heads_round_trip_through_the_bundle(bundle):
    heads.train_frozen_head(bundle, heads.HeadSpec("size", "size_knn", "knn", log=True, curve_points=0, device="cpu"))
    cat = load_bundle(bundle.path).catalog
    meta = heads.head_metadata(bundle.path, "size_knn")
    head = heads.load_head(bundle.path, "size_knn")
    assert np.allclose(head.predict(np.asarray(bundle.embeddings)).value, cat["size_knn_pred"])
    truth, predicted = heads.held_out_values(cat, meta)
    assert len(truth) == 60 and np.allclose(truth - predicted, cat.loc[cat["size_knn_split"] == "test", "size_knn_residual"])
    assert (cat["size_knn_uncertainty"] > 0).all()
    assert load_bundle(bundle.path).column_unit("size_knn_pred") == "log10(arcsec)"


def test_prediction_names_never_overwrite_catalogue_columns(bundle):
    with pytest.raises(InputError, match="use a letter then letters"):
        heads.train_frozen_head(bundle, heads.HeadSpec("kind", "../evil", device="cpu"))
    with pytest.raises(InputError, match="reserved"):
        heads.check_name("user_label")
    table = pd.DataFrame({"kind": ["x"] * bundle.n})
    with pytest.raises(InputError, match="already exist in the bundle"):
        heads.write_predictions(bundle.path, "clash", table, {})
    assert not (bundle.path / "predictions" / "clash.parquet").exists()


def test_a_cancelled_head_writes_nothing(bundle):
    import threading

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(heads.Cancelled):
        heads.train_frozen_head(bundle, heads.HeadSpec("kind", "never", device="cpu"), cancel=cancel)
    assert not (bundle.path / "predictions").exists() and not (bundle.path / "heads").exists()
