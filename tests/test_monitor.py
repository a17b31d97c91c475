"""The representation monitor: probes that can tell learning from chance, collapse diagnostics, the
random-init baseline, and a training run that is monitored without being changed by it."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from explorer.core.heads import label_set, split_labels
from explorer.core.preprocess import Preprocessing
from training.config import TrainConfig, config_from_dict
from training.dataset import Cutouts
from training.methods.byol import BYOL
from training.monitor import Monitor, MonitorConfig
from training.quality import effective_rank, projection_spread, random_init_encoder
from training.train import BASELINES, BEST_CHECKPOINT, LOSS_LOG, load_checkpoint, train

PARAMS = Preprocessing(crop_pixels=16, input_pixels=16)


def toy_cutouts(n=240, classes=4, seed=0, shuffle=False):
    rng = np.random.default_rng(seed)
    kind = np.arange(n) % classes
    catalog = pd.DataFrame({"id": [f"s{i}" for i in range(n)], "ra": 0.0, "dec": 0.0,
                            "kind": np.array(list("abcd"))[rng.permutation(kind) if shuffle else kind]})
    images = rng.normal(0, 0.05, (n, 1, 24, 24)).astype(np.float32)
    return Cutouts(images, catalog, ["image"]), kind


def separable_features(kind, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (kind.max() + 1, 32))
    x = centres[kind] + rng.normal(0, 0.05, (len(kind), 32))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("shuffle", [False, True])
def test_probes_score_separable_features_near_one_and_shuffled_labels_near_chance(shuffle):
    data, kind = toy_cutouts(shuffle=shuffle)
    monitor = Monitor(MonitorConfig(label_column="kind"), data, PARAMS)
    scores = monitor.probe(separable_features(kind)[monitor.rows])
    if shuffle:
        assert scores["knn"] < 0.45 and scores["linear"] < 0.45   # chance is 0.25
    else:
        assert scores["knn"] > 0.97 and scores["linear"] > 0.97


def test_the_monitor_never_sees_the_evaluation_test_split():
    data, _ = toy_cutouts()
    data.catalog["confidence"] = np.where(np.arange(len(data)) % 3 == 0, "uncertain", "confident")
    config = MonitorConfig(label_column="kind", filter="confidence == 'confident'", test_fraction=0.25, split_seed=4)
    monitor = Monitor(config, data, PARAMS)
    labels = label_set(data.catalog, "kind", candidates=(data.catalog["confidence"] == "confident").to_numpy())
    pool, test = split_labels(labels, 0.25, 4)  # exactly as training.evaluate draws it
    assert set(monitor.rows) == set(labels.rows[pool]) and not set(monitor.rows) & set(labels.rows[test])


def test_collapse_diagnostics_detect_a_constant_encoder():
    assert effective_rank(np.ones((100, 16))) == 1.0 and projection_spread(np.ones((100, 16))) == pytest.approx(0)
    spread = np.random.default_rng(0).normal(size=(2000, 16))
    assert effective_rank(spread) > 14 and projection_spread(spread) > 0.9

    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.ones(8))

        def forward(self, x):
            return self.bias.expand(len(x), 8)

    data, _ = toy_cutouts()
    collapsed = Monitor(MonitorConfig(label_column="kind"), data, PARAMS).measure(BYOL(Constant(), 8))
    assert collapsed["effective_rank"] == pytest.approx(1.0) and collapsed["projection_spread"] == pytest.approx(0)
    assert collapsed["knn"] < 0.45  # constant features carry no class


def test_the_random_init_baseline_is_reproducible_and_leaves_the_callers_randomness_alone():
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    a = random_init_encoder("resnet18", 1, seed=3)
    assert torch.equal(torch.rand(1), expected_next)
    b, c = random_init_encoder("resnet18", 1, seed=3), random_init_encoder("resnet18", 1, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def tiny_recipe(**monitor) -> TrainConfig:
    return config_from_dict({"name": "t", "method": "byol", "preprocessing": {"input_pixels": 16},
                             "byol": {"projection_hidden": 32, "projection_dim": 16, "prediction_hidden": 32},
                             "optim": {"epochs": 2, "batch_size": 32, "warmup_epochs": 1}, "monitor": monitor})


def test_a_monitored_run_logs_scores_keeps_its_best_and_trains_exactly_as_an_unmonitored_one(tmp_path):
    spec = "sim:radio?n=96&seed=3"
    monitored = train(tiny_recipe(label_column="morphology", every=1, folds=3), spec, tmp_path / "m", device="cpu",
                      progress=False)
    plain = train(tiny_recipe(), spec, tmp_path / "p", device="cpu", progress=False)
    a, b = load_checkpoint(monitored)["model"], load_checkpoint(plain)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the monitor does not perturb the training
    log = pd.read_csv(tmp_path / "m" / LOSS_LOG)
    assert list(log["epoch"]) == [0, 1, 2] and log[["linear", "knn", "effective_rank"]].notna().all().all()
    assert np.isnan(log["loss"].iloc[0])  # epoch 0: the random-init encoder, before any step
    baselines = json.loads((tmp_path / "m" / BASELINES).read_text())
    assert baselines["random init"]["linear"] == pytest.approx(log["linear"].iloc[0])
    assert {"linear", "knn", "effective_rank"} <= set(baselines["pixels"])
    best = load_checkpoint(tmp_path / "m" / BEST_CHECKPOINT)
    assert best["history"][-1]["linear"] == max(log["linear"].iloc[1:])
    unmonitored = pd.read_csv(tmp_path / "p" / LOSS_LOG)
    assert "knn" in unmonitored and unmonitored["knn"].isna().all() or "knn" not in unmonitored


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / BASELINES).write_text("{}")  # all that a run killed during its first epoch leaves behind
    train(tiny_recipe(), "sim:radio?n=40&seed=3", run, device="cpu", progress=False)
    assert load_checkpoint(run)["epoch"] == 2 and json.loads((run / BASELINES).read_text())["random init"]
