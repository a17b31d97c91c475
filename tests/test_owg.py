"""Paper 4 (OWG): band-prediction batches, the Table S2 richness head, k-fold label fractions."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from explorer.core.errors import InputError
from explorer.core.heads import BandwiseHead, Task, LabelSet, fit_head, frozen_head_kinds, stratified_folds
from explorer.core.preprocess import Preprocessing


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
