"""Occlusion maps (issue 14): the map's arithmetic on hand-made scorers, its settings, the real band classifier and
frozen heads of a tiny band_prediction bundle, and the source panel's occlusion view."""
import base64
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.core import occlusion
from explorer.core.errors import InputError
from explorer.core.occlusion import occlusion_map


def blob(shape, centre, sigma=1.5, amplitude=1.0) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (amplitude * np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * sigma ** 2))).astype(
        np.float32)


def aperture_flux(centre, radius):
    """A hand-made 'model': the summed flux of channel 0 within ``radius`` px of ``centre``."""
    def score(images):
        rows, cols = np.indices(images.shape[-2:])
        inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2
        return images[:, 0][:, inside].sum(1)
    return score


# ----------------------------------------------------------------------------- the map on hand-made scorers


def test_masking_an_empty_region_changes_nothing_and_the_source_matters_most():
    """An off-diagonal source (so a transposed map fails), scored by the flux in an aperture around it."""
    centre = (12, 27)
    image = blob((40, 40), centre)[None]
    heat = occlusion_map(aperture_flux(centre, 7), image, patch=6, stride=2)
    assert heat.shape == (40, 40) and np.isfinite(heat).all()
    # Every patch covering these pixels lies outside the aperture: masking them changes the score by exactly 0.
    assert (heat[28:, :12] == 0).all() and (heat[:, :14] == 0).all()
    peak = np.unravel_index(heat.argmax(), heat.shape)
    assert np.hypot(peak[0] - centre[0], peak[1] - centre[1]) <= 1.5, peak
    assert heat.max() > 0.5 * image.sum() and heat.min() >= 0   # removing flux only ever lowers this score


def test_a_fixed_conv_net_sees_its_source_and_one_channel_can_be_masked_alone():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3),
                              torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten()).eval()
    with torch.no_grad():
        net[0].weight.abs_()            # positive filters: the net responds to flux
        net[2].weight.abs_()

    @torch.no_grad()
    def score(images):
        return net(torch.from_numpy(images))[:, 0].numpy()

    centre = (22, 9)
    image = np.stack([blob((32, 32), centre, amplitude=3.0), np.zeros((32, 32), np.float32)])
    heat = occlusion_map(score, image, patch=5, stride=1, batch_size=50)
    # Far from the source every pixel is 0, so masking there feeds the net the very same image.
    assert (heat[:12, 18:] == 0).all()
    peak = np.unravel_index(heat.argmax(), heat.shape)
    assert np.hypot(peak[0] - centre[0], peak[1] - centre[1]) <= 3, peak
    assert heat[centre] > 0
    # Masking only the empty second channel changes nothing anywhere; masking only the first is the full map.
    assert (occlusion_map(score, image, patch=5, stride=1, channel=1) == 0).all()
    np.testing.assert_allclose(occlusion_map(score, image, patch=5, stride=1, channel=0), heat, atol=1e-6)


def test_each_pixel_is_the_mean_drop_of_the_patches_covering_it_edges_included():
    total = lambda images: images.sum(axis=(1, 2, 3))                     # noqa: E731
    ones = np.ones((2, 11, 13), np.float32)
    # Masking any 4 x 4 patch of both channels removes 32 of the total: the mean over covering patches is 32.
    heat = occlusion_map(total, ones, patch=4, stride=3)
    np.testing.assert_array_equal(heat, np.full((11, 13), 32.0))
    np.testing.assert_array_equal(occlusion.patch_starts(11, 4, 3), [0, 3, 6, 7])   # the last patch is flush
    np.testing.assert_array_equal(occlusion.patch_starts(10, 4, 3), [0, 3, 6])
    assert occlusion.occluded_count((11, 13), 4, 3) == 4 * 4 and occlusion.occluded_count((11, 14), 4, 3) == 4 * 5
    # The bottom-right pixel alone: only the patches over it change it, and they cover a 4 x 4 corner.
    corner = lambda images: images[:, 0, -1, -1]                          # noqa: E731
    heat = occlusion_map(corner, ones[0], patch=4, stride=3, fill=-1.0)
    assert heat[-1, -1] == 2.0 and heat[-4:, -4:].min() > 0 and heat[:7, :9].max() == 0


def test_class_probabilities_are_scored_at_the_class_of_the_unoccluded_image():
    left, right = blob((24, 24), (12, 5)), blob((24, 24), (12, 18), amplitude=2.0)
    image = (left + right)[None]

    def proba(images):
        flux = np.stack([images[:, 0, :, :12].sum((1, 2)), images[:, 0, :, 12:].sum((1, 2))], 1)
        e = np.exp(flux - flux.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    heat, baseline, column = occlusion.explain(proba, image, patch=4, stride=2)
    assert column == 1 and baseline == pytest.approx(proba(image[None])[0, 1])
    assert heat[12, 18] > 0 > heat[12, 5]     # masking the right source lowers P(right); the left one raises it


@pytest.mark.parametrize("patch, stride, message", [
    (0, 1, "patch must be a whole number"), (4, 0, "stride must be a whole number"), (2.5, 1, "patch must be"),
    (True, 1, "patch must be"), (17, 2, "does not fit the 16x20 px image; use at most 16"),
    (4, 5, "must not exceed the patch")])
def test_bad_patch_or_stride_is_refused_with_a_clear_message(patch, stride, message):
    with pytest.raises(InputError, match=message):
        occlusion_map(lambda images: images.sum((1, 2, 3)), np.zeros((1, 16, 20), np.float32), patch=patch,
                      stride=stride)
    with pytest.raises(InputError, match="channel 3"):
        occlusion_map(lambda images: images.sum((1, 2, 3)), np.zeros((2, 8, 8)), patch=2, stride=1, channel=3)


def test_default_settings_fit_the_cost_budget():
    assert occlusion.default_settings(32) == (8, 2)
    patch, stride = occlusion.default_settings(64, trunk_passes=5)
    assert patch == 16 and occlusion.occluded_count((64, 64), patch, stride) * 5 * 64 ** 2 <= occlusion.COST_BUDGET
    assert occlusion.default_settings(4) == (1, 1)


# ----------------------------------------------------------------------------- a real band_prediction bundle


@pytest.fixture(scope="module")
def bp_bundle(tmp_path_factory):
    """Paper 4's recipe for one epoch on 16 five-band sources, embedded, with a regression and a class head."""
    from explorer.core.bundle import load_bundle
    from explorer.core.heads import HeadSpec, train_frozen_head
    from training.config import config_from_dict
    from training.embed import embed_to_bundle
    from training.train import train

    tmp = tmp_path_factory.mktemp("occlusion")
    cfg = config_from_dict({
        "name": "bp", "method": "band_prediction", "encoder": {"architecture": "resnet18-bandwise", "in_channels": 5},
        "data": {"pixels": 32, "pixel_scale_arcsec": 0.55},
        "preprocessing": {"scaling": "max", "crop_pixels": 32, "input_pixels": 32},
        "optim": {"epochs": 1, "batch_size": 8, "base_lr": 0.1, "warmup_epochs": 0}})
    spec = "sim:splus?n=16&seed=9&input=5band"
    bundle = load_bundle(embed_to_bundle(train(cfg, spec, tmp / "run", progress=False), spec, tmp / "bundles" / "bp",
                                         progress=False))
    train_frozen_head(bundle, HeadSpec("r_true", "rmag", curve_points=0, device="cpu"))
    train_frozen_head(bundle, HeadSpec("class", "kind", head="mlp", curve_points=0, device="cpu"))
    return bundle


def test_the_band_classifier_map_of_a_real_source(bp_bundle):
    assert occlusion.occlusion_models(bp_bundle) == [occlusion.BAND_CLASSIFIER, "kind", "rmag"]
    assert occlusion.unavailable(bp_bundle) is None
    result = occlusion.source_occlusion(bp_bundle, 3, occlusion.BAND_CLASSIFIER, band=2)
    assert result.map.shape == (32, 32) and np.isfinite(result.map).all() and result.map.any()
    assert (result.patch, result.stride, result.images) == (8, 2, 13 * 13) and "band r" in result.caption
    # The baseline is the classifier's probability of band r for the unoccluded r image, whichever way it is fed.
    scorer = occlusion.band_classifier_score(bp_bundle, 2)
    image = occlusion.source_image(bp_bundle, 3)
    assert result.baseline == pytest.approx(float(scorer(image[None])[0]), rel=1e-5)
    assert scorer(image[None]) == pytest.approx(scorer(image[None, 2:3]))
    assert 0 < result.baseline < 1 and result.threads <= 2
    with pytest.raises(InputError, match="needs a band"):
        occlusion.source_occlusion(bp_bundle, 3, occlusion.BAND_CLASSIFIER)


@pytest.mark.parametrize("head", ["rmag", "kind"])
def test_a_frozen_heads_map_starts_from_its_bundle_prediction(bp_bundle, head):
    from explorer.core.heads import load_head

    result = occlusion.source_occlusion(bp_bundle, 5, head, patch=8, stride=4)
    assert result.map.shape == (32, 32) and np.isfinite(result.map).all() and result.images == 7 * 7
    # Re-embedding the stored encoder input reproduces the bundle's embedding, so the unoccluded score is the
    # head's prediction for the source.
    prediction = load_head(bp_bundle.path, head).predict(np.asarray(bp_bundle.embeddings[5:6]))
    if prediction.value is not None:
        assert result.baseline == pytest.approx(float(prediction.value[0]), rel=1e-4)
        assert result.scored_class is None and "predicted r_true" in result.caption
    else:
        code = int(prediction.codes[0])
        assert result.baseline == pytest.approx(float(prediction.proba[0, code]), rel=1e-4)
        assert result.scored_class == load_head(bp_bundle.path, head).task.classes[code]


def test_a_bundle_without_its_encoder_inputs_says_how_to_get_them(bp_bundle):
    old = replace(bp_bundle, encoder_inputs=None)
    assert "python -m training.embed" in occlusion.unavailable(old)
    with pytest.raises(InputError, match="python -m training.embed"):
        occlusion.source_occlusion(old, 0, "rmag")


# ----------------------------------------------------------------------------- the source panel


def occlusion_figures(app) -> list[dict]:
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return [c for c in charts if [t["type"] for t in c["data"]] == ["image", "heatmap"]]


def test_the_source_panel_draws_an_occlusion_map_when_asked(bp_bundle, monkeypatch):
    from explorer.app import ui, views
    from tests.test_app import assert_no_exception, run_app

    monkeypatch.setenv("EXPLORER_BUNDLES", str(bp_bundle.path.parent))
    app = run_app(state={ui.FOCUS_KEY: views.Focus(str(bp_bundle.path.resolve()), "source", (3,))})
    assert_no_exception(app)
    model = next(w for w in app.selectbox if w.label == "Model")
    assert model.options == ["band classifier", "head: kind", "head: rmag"]
    assert not occlusion_figures(app)                   # nothing is computed until the button is pressed
    next(w for w in app.selectbox if w.label == "Band").set_value("r").run()
    next(b for b in app.button if b.key == "source.occlusion.run").click().run()
    assert_no_exception(app)
    [figure] = occlusion_figures(app)
    heat = figure["data"][1]["z"]                       # Plotly's typed array: base64 bytes and a shape
    assert heat["shape"] == "32, 32" and heat["dtype"] == "f8"
    assert np.isfinite(np.frombuffer(base64.b64decode(heat["bdata"]), np.float64)).all()
    assert any(c.value.startswith("Score: band classifier's probability of band r") for c in app.caption)

    next(w for w in app.selectbox if w.label == "Model").set_value("rmag").run()
    assert_no_exception(app)
    assert not occlusion_figures(app)                   # the map shown belongs to the settings it was made with
    next(w for w in app.number_input if w.label == "Stride (px)").set_value(4).run()
    next(b for b in app.button if b.key == "source.occlusion.run").click().run()
    assert_no_exception(app)
    assert len(occlusion_figures(app)) == 1
    assert any("head rmag's predicted r_true" in c.value and "49 occluded images" in c.value for c in app.caption)

    next(w for w in app.number_input if w.label == "Stride (px)").set_value(20).run()
    assert_no_exception(app)
    assert any("must not exceed the patch" in e.value for e in app.error)


def test_a_bundle_without_encoder_inputs_shows_a_note_not_a_traceback(synthetic_bundle, monkeypatch):
    from explorer.app import ui, views
    from explorer.core.bundle import load_bundle
    from tests.test_app import assert_no_exception, run_app

    assert load_bundle(synthetic_bundle).encoder_inputs is None
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(synthetic_bundle).parent))
    app = run_app(state={ui.FOCUS_KEY: views.Focus(str(Path(synthetic_bundle).resolve()), "source", (0,))})
    assert_no_exception(app)
    assert any("python -m training.embed" in i.value for i in app.info)
