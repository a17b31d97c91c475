"""Paper 4 (OWG): band-prediction batches, the Table S2 richness head, k-fold label fractions, the study."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from explorer.core.errors import InputError
from explorer.core.heads import (BandwiseHead, LabelSet, Task, fit_head, frozen_head_kinds, head_metadata,
                                 stratified_folds)


def test_every_image_of_a_band_prediction_batch_carries_the_label_of_its_band():
    from training.config import config_from_dict
    from training.views import make_views

    config = config_from_dict({"method": "band_prediction", "encoder": {"architecture": "resnet18-bandwise",
                                                                         "in_channels": 5},
                               "preprocessing": {"scaling": "calibrated", "zero_points": [0.0] * 5,
                                                 "pixel_scale_arcsec": 1.0, "crop_pixels": 8, "input_pixels": 8},
                               "optim": {"epochs": 1}})
    # band b of source s is filled with 10 s + b, so every single-band image says where it came from
    images = (10 * torch.arange(3.0)[:, None] + torch.arange(5.0)[None])[..., None, None].expand(3, 5, 8, 8)
    batch = make_views("single_bands")({"images": images.clone()}, config, torch.Generator(), slice(0, 3), 3)
    (singles,) = batch["views"]
    assert singles.shape == (15, 1, 8, 8)
    value = (singles[:, 0, 4, 4] / singles[1, 0, 4, 4]).numpy()   # the encoder's scale divided out: 10 s + b
    np.testing.assert_allclose(value, 10 * np.repeat(np.arange(3), 5) + batch["band_labels"].numpy(), rtol=1e-5)
    np.testing.assert_array_equal(batch["band_labels"].numpy(), np.tile(np.arange(5), 3))


def test_dihedral_gives_the_eight_symmetries_of_the_grid_exactly():
    from training.augment import dihedral

    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = dihedral(image.expand(8, 1, 4, 4), torch.arange(8))
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8            # all distinct
    torch.testing.assert_close(out[0], image[0])
    torch.testing.assert_close(out[1], image[0].rot90(1, (-2, -1)))
    torch.testing.assert_close(out[6], image[0].rot90(2, (-2, -1)).flip(-1))
    assert all(sorted(o.flatten().tolist()) == list(range(16)) for o in out)  # pixels moved, none resampled


def test_turned_band_images_keep_their_labels_and_a_share_draws_its_rows_of_the_global_batch():
    from training.config import config_from_dict
    from training.views import make_views

    config = config_from_dict({"method": "band_prediction", "band_prediction": {"dihedral": True},
                               "encoder": {"architecture": "resnet18-bandwise", "in_channels": 5},
                               "preprocessing": {"scaling": "calibrated", "zero_points": [0.0] * 5,
                                                 "pixel_scale_arcsec": 1.0, "crop_pixels": 8, "input_pixels": 8},
                               "optim": {"epochs": 1}})
    # band b of source s: 10 s + b plus a tilt that shows the orientation
    tilt = torch.arange(64.0).reshape(8, 8) / 1000
    images = (10 * torch.arange(4.0)[:, None] + torch.arange(5.0)[None])[..., None, None] + tilt
    views = make_views("single_bands")
    whole = views({"images": images.clone()}, config, torch.Generator().manual_seed(3), slice(0, 4), 4)
    (singles,) = whole["views"]
    base = views({"images": images.clone()}, config_from_dict({**config.to_dict(), "band_prediction": {}}),
                 torch.Generator(), slice(0, 4), 4)["views"][0]
    np.testing.assert_array_equal(whole["band_labels"].numpy(), np.tile(np.arange(5), 4))
    for turned, plain in zip(singles, base):   # same pixels, maybe moved: the band's value travels with it
        torch.testing.assert_close(turned.flatten().sort().values, plain.flatten().sort().values)
    assert (singles != base).any(dim=(1, 2, 3)).sum() >= 10    # most of the 20 are turned (7 in 8 on average)
    half = views({"images": images[2:].clone()}, config, torch.Generator().manual_seed(3), slice(2, 4), 4)
    torch.testing.assert_close(half["views"][0], singles[10:])


def test_the_band_prediction_loss_is_cross_entropy_over_the_bands():
    from explorer.core.encoder import build_encoder
    from training.methods import method_class

    torch.manual_seed(0)
    encoder, dim = build_encoder("resnet18-bandwise", 5)
    method = method_class("band_prediction")(encoder, dim, method_class("band_prediction").Config())
    x = torch.rand(10, 1, 16, 16)
    labels = torch.arange(10) % 5
    method.eval()
    expected = nn.functional.cross_entropy(method.logits(x), labels)
    assert method.loss({"views": (x,), "band_labels": labels}).item() == pytest.approx(expected.item())
    assert method.classifier[-1].out_features == 5 and method.classifier[0].out_features == 512
    with pytest.raises(InputError, match="band-wise encoder"):
        method_class("band_prediction")(*build_encoder("resnet18", 5), method_class("band_prediction").Config())


def test_the_richness_head_has_table_s2s_layers_on_a_512_by_5_map():
    head = BandwiseHead(512, 5, 1)
    convs = [m for m in head.convs if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == \
        [(512, 64, (1, 1)), (64, 16, (3, 3)), (16, 64, (3, 3))]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in head.convs) == 3
    assert sum(isinstance(m, nn.ReLU) for m in head.convs) == 3
    linears = [m for m in head.fc if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in linears] == [(64 * 5, 1024), (1024, 512), (512, 1)]
    head.eval()
    x = torch.randn(4, 5 * 512)
    assert head(x).shape == (4, 1)
    # the convolutions see bands as positions: swapping two bands' features changes the answer
    swapped = x.reshape(4, 5, 512)[:, [1, 0, 2, 3, 4]].reshape(4, -1)
    assert not torch.allclose(head(x), head(swapped))


def test_the_bandwise_head_needs_a_bandwise_embedding_and_learns_on_one():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 5 * 8)).astype(np.float32)
    y = features.reshape(500, 5, 8)[:, 2, 0] * 3 + 1                 # a function of band 2's first feature
    labels = LabelSet(Task("richness", "regression"), np.arange(500), y.astype(np.float64))
    with pytest.raises(InputError, match="band-wise embedding"):
        fit_head("bandwise", features, labels, np.arange(400), device="cpu")
    head = fit_head("bandwise", features, labels, np.arange(400), device="cpu", bands=5, loss="mse+scatter", alpha=0.5)
    error = np.abs(head.predict(features[400:]).value - y[400:]).mean()
    assert error < 0.5 * np.abs(y[400:] - y[:400].mean()).mean()
    assert head.config["bands"] == 5 and head.config["regression_loss"] == "mse+scatter"


def test_only_a_bandwise_bundle_offers_the_bandwise_head():
    from explorer.core.bundle import EncoderInfo

    assert "bandwise" not in frozen_head_kinds(EncoderInfo("resnet18", 5))
    assert "bandwise" in frozen_head_kinds(EncoderInfo("resnet18-bandwise", 5))


def test_folds_are_disjoint_stratified_and_cover_every_label():
    y = np.repeat(np.arange(4.0), 25) + np.random.default_rng(1).random(100) * 0.1
    labels = LabelSet(Task("richness", "regression"), np.arange(100), y)
    folds = stratified_folds(labels, 5, seed=3)
    together = np.concatenate(folds)
    assert sorted(together) == list(range(100)) and len(set(together)) == 100
    strata = labels.strata()
    for fold in folds:   # each fold holds every stratum in proportion (10 strata of 10 over 5 folds: 2 ± 1 each)
        counts = np.bincount(strata[fold], minlength=10)
        assert len(fold) == 20 and counts.min() >= 1 and counts.max() <= 3
    with pytest.raises(InputError, match="cannot be split into 101 folds"):
        stratified_folds(labels, 101)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """configs/owg_study.yaml, shrunk: simulate -> band pretext -> embed -> alpha -> frozen and fine-tuned sweeps."""
    from training.owg_study import OwgStudyConfig, run_study

    config = OwgStudyConfig(clusters=60, validation_clusters=30, pixels=16, pretext_epochs=1, folds=2,
                            fractions="50,100", repeats=1, alphas="0,1", finetune_fractions="100", finetune_epochs=1)
    out = tmp_path_factory.mktemp("owg") / "study"
    return config, out, run_study(config, out, device="cpu", progress=False)


def test_the_study_runs_end_to_end_on_a_tiny_sky_and_resumes(study):
    from training.owg_study import markdown, run_study

    config, out, results = study
    assert set(results["models"]) == {"OWG, frozen", "random init, frozen", "pixels, MLP", "OWG, fine-tuned",
                                      "no pre-training (from scratch)"}
    frozen = results["models"]["OWG, frozen"]
    assert [r["fraction"] for r in frozen] == [50.0, 100.0] and [r["labels"] for r in frozen] == [15, 30]
    assert all(r["seeds"] == 2 and r["mae"] > 0 and r["intrinsic_scatter"] > 0 for r in frozen)  # 2 folds x 1 draw
    assert results["alpha"]["alpha"] in (0.0, 1.0) and set(results["alpha"]["scores"]) == {"0", "1"}
    pretext = results["pretext"]
    assert pretext["bands"] == ["u", "g", "r", "i", "z"] and pretext["images"] == 30 * 5
    assert np.sum(pretext["confusion"]) == 150 and 0 <= pretext["noise_statistics_accuracy"] <= 1
    cells = json.loads((out / "evaluations" / "frozen" / "cells.json").read_text())["cells"]
    assert sorted({c["fold"] for c in cells}) == [0, 1]
    assert {c["metrics"]["n"] for c in cells} == {30}         # each fold's test clusters, the other fold trains
    text = (out / "results" / "results.md").read_text()
    assert text == markdown(results) and "| OWG, frozen | MAE |" in text and "2.392" in text
    assert (out / "results" / "richness.png").stat().st_size > 0
    floors = results["constant_predictors"]
    assert 0 < floors["median"]["mae"] != floors["mean"]["mae"] and "mean λ" in text and "median λ" in text
    stamp = (out / "evaluations" / "finetune" / "cells.json").stat().st_mtime_ns
    assert run_study(config, out, device="cpu", progress=False)["models"] == results["models"]   # resumed
    assert (out / "evaluations" / "finetune" / "cells.json").stat().st_mtime_ns == stamp


def test_a_study_with_a_recipe_that_is_not_band_prediction_is_refused(tmp_path):
    from training.owg_study import load_study, study_recipe

    path = tmp_path / "study.yaml"
    path.write_text("recipe: configs/demo.yaml\n")
    with pytest.raises(InputError, match="band-prediction pretext"):
        study_recipe(load_study(path))
    path.write_text("folds: 1\n")
    with pytest.raises(InputError, match="folds"):
        load_study(path)


@pytest.mark.parametrize("name", ["owg_study.yaml", "owg_study_gpu.yaml"])
def test_the_cpu_and_gpu_studies_predict_five_bands_with_one_shared_extractor(name):
    from training.config import REPO_ROOT
    from training.owg_study import load_study, study_recipe

    config = load_study(REPO_ROOT / "configs" / name)
    recipe = study_recipe(config)
    assert recipe.method == "band_prediction" and recipe.encoder.architecture == "resnet18-bandwise"
    assert list(recipe.data.bands) == ["u", "g", "r", "i", "z"] and recipe.encoder.in_channels == 5
    assert recipe.data.pixels == recipe.preprocessing.crop_pixels == config.pixels
    assert "1" in config.fractions.split(",") and "100" in config.fractions.split(",")


def test_a_richness_head_with_the_scatter_loss_trains_from_the_fine_tune_page(study, monkeypatch):
    from explorer.core.bundle import list_bundles
    from tests.test_finetune_page import colour_options, no_exception, open_page, wait_for_job

    _, out, _ = study
    monkeypatch.setenv("EXPLORER_BUNDLES", str(out / "bundles"))
    app = open_page()
    chooser = app.selectbox(key="sidebar.bundle")
    chooser.set_value(next(p for p in list_bundles(out / "bundles") if p.name == "clusters")).run()
    no_exception(app)
    assert app.selectbox(key="sidebar.bundle").value.name == "clusters"
    app.selectbox(key="finetune.column").set_value("richness").run()
    assert "Band-wise conv head (paper 4)" in app.selectbox(key="finetune.head").options
    app.selectbox(key="finetune.head").set_value("bandwise").run()
    app.selectbox(key="finetune.loss").set_value("mse+scatter").run()
    app.number_input(key="finetune.alpha").set_value(0.5).run()
    app.button(key="finetune.train").click().run()
    wait_for_job(app)
    no_exception(app)
    assert {"richness_bandwise_pred", "richness_bandwise_residual"} <= set(colour_options(app))
    meta = head_metadata(out / "bundles" / "clusters", "richness_bandwise")
    assert meta["config"]["regression_loss"] == "mse+scatter" and meta["config"]["alpha"] == 0.5
    assert meta["config"]["bands"] == 5
