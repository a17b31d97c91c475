"""Paper 2's three inputs, its fine-tuning schedule and the one-command study (training.splus_study)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.core.errors import InputError
from training import splus
from training.bandpasses import BANDS


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    return splus.cached_sky(24, seed=11, progress=False, root=tmp_path_factory.mktemp("cache"))


def test_a_cached_sky_is_read_back_and_a_damaged_one_rendered_again(tmp_path):
    first = splus.cached_sky(3, seed=4, progress=False, root=tmp_path)
    folder = next((tmp_path / "splus").iterdir())
    again = splus.cached_sky(3, seed=4, progress=False, root=tmp_path)
    assert isinstance(again.images, np.memmap)                             # read, not rendered
    np.testing.assert_array_equal(again.images, first.images)
    assert again.catalog.equals(first.catalog) and again.catalog.attrs["bands"] == list(BANDS)
    (folder / "stamps.npy").write_bytes(b"not an array")
    repaired = splus.cached_sky(3, seed=4, progress=False, root=tmp_path)
    np.testing.assert_array_equal(repaired.images, first.images)


def test_the_three_inputs_are_the_bands_the_broad_bands_and_the_composite(sky):
    from explorer.core.preprocess import fwhm_crop

    twelve, bands12 = splus.observe(sky, "12band")
    five, bands5 = splus.observe(sky, "5band")
    rgb, channels = splus.observe(sky, "rgb")
    assert bands12 == list(BANDS) and bands5 == ["u", "g", "r", "i", "z"] and channels == ["R", "G", "B"]
    assert twelve.shape == (24, 12, 32, 32) and five.shape == (24, 5, 32, 32) and rgb.shape == (24, 3, 32, 32)
    np.testing.assert_array_equal(five, twelve[:, [BANDS.index(b) for b in bands5]])
    assert rgb.min() >= 0 and rgb.max() <= 255 and rgb.max() > 100
    # Paper 2's crop: the largest source is 3 x FWHM resized, not the central 32 px.
    fwhm = sky.catalog["fwhm_arcsec"].to_numpy()
    big = int(np.nanargmax(fwhm))
    assert 3 * fwhm[big] / splus.PIXEL_SCALE_ARCSEC > 32
    np.testing.assert_allclose(twelve[big], fwhm_crop(sky.images[big:big + 1], fwhm[big:big + 1], 0.55)[0])
    assert not np.allclose(twelve[big], sky.images[big, :, 16:48, 16:48])
    # The composite is of the calibrated bands: the same source in a field with zero points 0.5 mag higher
    # (ADU 10^0.2 brighter) is the same colour image.
    shifted = splus.Sky(np.asarray(sky.images) * 10 ** 0.2, sky.catalog.assign(
        **{f"zp_{b}": sky.catalog[f"zp_{b}"] + 0.5 for b in BANDS}))
    np.testing.assert_allclose(splus.observe(shifted, "rgb")[0], rgb, atol=1.01)
    with pytest.raises(InputError, match="12band, 5band, rgb"):
        splus.observe(sky, "4band")


def test_the_inputs_are_data_specs_and_a_bad_one_is_named():
    from training.data import load_data, parse_sim_spec

    assert parse_sim_spec("sim:splus?n=3")["input"] == "12band"
    data = load_data("sim:splus?n=3&seed=5&input=rgb", pixels=32, pixel_scale_arcsec=0.55, progress=False)
    assert data.images.shape == (3, 3, 32, 32) and data.catalog.attrs["bands"] == ["R", "G", "B"]
    with pytest.raises(InputError, match="input must be one of 12band, 5band, rgb"):
        parse_sim_spec("sim:splus?n=3&input=ugriz")


def test_uint8_scaling_divides_by_255_and_keeps_each_images_stretch():
    from explorer.core.preprocess import Preprocessing, preprocess

    x = np.zeros((2, 3, 8, 8), np.float32)
    x[0, 0, 4, 4], x[1, 2, 4, 4] = 51.0, 255.0
    out = preprocess(x, Preprocessing(scaling="uint8", crop_pixels=8, input_pixels=8))
    assert out[0, 0, 4, 4] == pytest.approx(0.2) and out[1, 2, 4, 4] == 1.0     # not each image's own peak


@pytest.fixture(scope="module")
def five_band(tmp_path_factory):
    """A real 5-band bundle: configs/splus_magnitudes_5band.yaml for one epoch on 16 sources, embedded."""
    from explorer.core.bundle import load_bundle
    from training.config import load_config
    from training.embed import embed_to_bundle
    from training.train import train

    folder = tmp_path_factory.mktemp("five-band")
    config = load_config("configs/splus_magnitudes_5band.yaml")
    config.optim.epochs, config.optim.batch_size, config.options.hidden = 1, 8, 8
    spec = "sim:splus?n=16&seed=9&input=5band"
    run = train(config, spec, folder / "run", progress=False)
    return config, spec, load_bundle(embed_to_bundle(run, spec, folder / "bundles" / "five-band", progress=False))


def test_fine_tuned_images_are_calibrated_with_each_sources_own_field_zero_points(five_band):
    """The images fine-tuning and the test set see match the cutouts the encoder was trained and embedded on."""
    from explorer.core.preprocess import centre_crop
    from training.dataset import open_cutouts
    from training.finetune import bundle_images

    config, spec, bundle = five_band
    trained = open_cutouts(spec, pixels=32, pixel_scale_arcsec=0.55, params=config.preprocessing, progress=False)
    images = bundle_images(bundle, progress=False).numpy()
    size = images.shape[-1]
    np.testing.assert_allclose(images, centre_crop(np.asarray(trained.images), size), rtol=1e-6)
    nominal = np.array(config.preprocessing.zero_points)
    zps = trained.catalog[[f"zp_{b}" for b in "ugriz"]].to_numpy()
    assert np.abs(zps - nominal).max() > 0.05                              # the field values differ from nominal


def test_a_multi_band_bundle_keeps_each_band_and_the_source_panel_switches_between_them(five_band, monkeypatch):
    from explorer.app import ui, views
    from explorer.core.preprocess import asinh_stretch
    from tests.test_app import assert_no_exception, run_app

    _, _, bundle = five_band
    assert bundle.band_thumbnails.shape == (16, 5, 32, 32)
    assert views.band_choices(bundle) == [views.COMPOSITE, "u", "g", "r", "i", "z"]
    # Each band is stretched to its own peak: the brightest pixel of every band is white.
    assert (bundle.band_thumbnails.reshape(16, 5, -1).max(-1) == 255).all()
    np.testing.assert_array_equal(views.band_thumbnail(bundle, 3), bundle.thumbnails[3])
    r = views.band_thumbnail(bundle, 3, "r")
    assert r.shape == (32, 32) and asinh_stretch(np.array([1.0]))[0] == 1.0
    assert not np.array_equal(r, views.band_thumbnail(bundle, 3, "u"))

    monkeypatch.setenv("EXPLORER_BUNDLES", str(bundle.path.parent))
    focus = views.Focus(str(bundle.path.resolve()), "source", (3,))
    app = run_app(state={ui.FOCUS_KEY: focus})
    assert_no_exception(app)
    band = next(w for w in app.selectbox if w.label == "Band")
    assert band.value == views.COMPOSITE
    band.set_value("r").run()
    assert_no_exception(app)
    captions = [c for image in app.image for c in image.captions]
    assert f"{bundle.catalog['id'].iat[3]} · r" in captions


def _toy_model(outputs=3):
    from explorer.core.encoder import build_encoder
    from training.finetune import FinetuneModel

    torch.manual_seed(0)
    encoder, _ = build_encoder("resnet18", 2)
    return FinetuneModel(encoder, outputs, trainable=None)


def test_paper_2s_schedule_trains_the_head_alone_first_then_every_layer():
    from explorer.core.heads import LabelSet, Task
    from explorer.core.preprocess import Preprocessing
    from training.finetune import FinetuneRecipe, finetune

    params = Preprocessing(scaling="max", crop_pixels=16, input_pixels=16)
    images = torch.rand(32, 2, 24, 24)
    labels = LabelSet(Task("c", "classification", ("a", "b", "c")), np.arange(32), np.arange(32) % 3)
    train = np.arange(32)

    def weights(model):
        return {k: v.clone() for k, v in model.state_dict().items()}

    seen = []
    head_only = FinetuneRecipe(stages=5, lr_decay=1.0, batch_size=16, epochs=1, head_epochs=2, head_lr=1e-2)
    model = _toy_model()
    before = weights(model)

    def spy(epoch, total, loss):
        seen.append((epoch, total))
        if epoch == 2:  # the end of the head phase: only the head has moved, BatchNorm statistics included
            now = weights(model)
            moved = {k for k in now if not torch.equal(now[k], before[k])}
            assert moved and all(k.startswith("head.") for k in moved), moved
    finetune(model, images, params, labels, train, head_only, device=torch.device("cpu"), on_epoch=spy,
             progress=False)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    after = weights(model)
    assert not torch.equal(after["stages.stem.0.weight"], before["stages.stem.0.weight"])   # then every layer
    assert model.frozen == model.fixed == [] and all(p.requires_grad for p in model.parameters())


def test_binned_accuracy_sorts_and_cuts_bins_of_the_given_size():
    from training.splus_study import binned_accuracy

    by = np.array([5.0, 1.0, np.nan, 3.0, 2.0, 4.0, 6.0])
    correct = np.array([1, 0, 1, 1, 0, 1, 0], bool)
    bins = binned_accuracy(correct, by, 2)          # sorted: 1 (0), 2 (0) | 3 (1), 4 (1) | 5 (1), 6 (0)
    assert bins == [{"median": 1.5, "accuracy": 0.0, "n": 2}, {"median": 3.5, "accuracy": 1.0, "n": 2},
                    {"median": 5.5, "accuracy": 0.5, "n": 2}]


def test_the_study_runs_end_to_end_on_a_tiny_sky_and_resumes(tmp_path):
    """configs/splus_study.yaml, shrunk: every input pre-trained, embedded, evaluated frozen and fine-tuned."""
    from training.splus_study import INPUTS, SplusStudyConfig, markdown, run_study

    study = SplusStudyConfig(train_sources=96, test_sources=40, unlabelled_sources=96, unlabelled_test_sources=40,
                             pretext_epochs=1, labels="12,24", frozen_seeds=2, finetune_labels="24", head_epochs=1,
                             finetune_epochs=1, bin_size=10)
    out = tmp_path / "study"
    results = run_study(study, out, device="cpu", progress=False)
    for name in [f"{i} {kind}" for i in INPUTS for kind in ("frozen", "fine-tuned", "random-init frozen")] + \
            ["pixels frozen", "12band from scratch"]:
        model = results["models"][name]
        assert 0 <= model["accuracy"] <= 1 and sum(map(sum, model["confusion"])) == 40 * model["seeds"], name
    assert results["models"]["12band frozen"]["labels"] == 24 and results["models"]["12band frozen"]["seeds"] == 2
    assert [r["labels"] for r in results["curves"]["5band frozen"]] == [12, 24]
    assert set(results["pretext"]["5band"]["per_band_mag"]) == {"u", "g", "r", "i", "z"}
    assert len(results["pretext"]["12band"]["per_band_mag"]) == 12 and results["pretext_labelled_test"]["rgb"]["n"] == 40
    # The pretext learns and is scored on paper 2's X_u: bright sources measured within 0.05 mag in every band.
    from training.splus import cached_sky, well_measured
    unlabelled_test = well_measured(cached_sky(40, study.unlabelled_test_seed, r_max=18.0, progress=False), 0.05)
    assert 0 < results["pretext"]["rgb"]["n"] == len(unlabelled_test.catalog) < 40
    unlabelled = well_measured(cached_sky(96, study.unlabelled_seed, r_max=18.0, progress=False), 0.05)
    epochs = pd.read_csv(out / "runs" / "12band" / "loss.csv").dropna(subset=["images"])
    assert (epochs["images"] == len(unlabelled.catalog)).all() and len(unlabelled.catalog) < 96
    assert "12band random-init frozen" in results["accuracy_by_r"]  # the pretext against random init, by r
    for bins in [*results["accuracy_by_r"].values(), *results["accuracy_by_fwhm"].values()]:  # sources without
        assert len(bins) in (3, 4) and all(b["n"] == 10 for b in bins)                    # an r are left out
    # The cells' per-source predictions are the accuracy the table reports.
    cells = json.loads((out / "evaluations" / "rgb-finetune" / "cells.json").read_text())["cells"]
    assert len(cells[0]["predicted"]) == 40
    text = (out / "results" / "results.md").read_text()
    assert text == markdown(results) and "| 12band |" in text and "0.9367" in text
    assert (out / "results" / "few_labels.png").stat().st_size > 0
    assert (out / "results" / "accuracy_r_fwhm.png").stat().st_size > 0
    stamp = (out / "evaluations" / "12band-frozen" / "cells.json").stat().st_mtime_ns
    assert run_study(study, out, device="cpu", progress=False)["models"] == results["models"]      # resumed
    assert (out / "evaluations" / "12band-frozen" / "cells.json").stat().st_mtime_ns == stamp


def test_a_study_config_with_a_wrong_recipe_is_refused(tmp_path):
    from training.splus_study import load_study, study_recipes

    path = tmp_path / "study.yaml"
    path.write_text("recipe_rgb: configs/demo.yaml\n")
    with pytest.raises(InputError, match="magnitude pretext"):
        study_recipes(load_study(path))
    path.write_text("frozen_head: svm\n")
    with pytest.raises(InputError, match="frozen_head"):
        load_study(path)


@pytest.mark.parametrize("study", ["splus_study.yaml", "splus_study_gpu.yaml"])
def test_the_cpu_and_gpu_studies_regress_12_5_and_12_magnitudes_from_12_5_and_3_channels(study):
    from training.config import REPO_ROOT
    from training.splus_study import load_study, study_recipes

    config = load_study(REPO_ROOT / "configs" / study)
    recipes = study_recipes(config)
    assert {i: (r.encoder.in_channels, len(r.options.columns)) for i, r in recipes.items()} == \
        {"12band": (12, 12), "5band": (5, 5), "rgb": (3, 12)}
    assert {r.optim.epochs for r in recipes.values()} == {config.pretext_epochs}
    assert {r.preprocessing.scaling for r in recipes.values()} == {"calibrated", "uint8"}
    assert max(map(int, config.labels.split(","))) == 2000 and config.head_epochs == 10
