"""Paper 3's detector: AP by hand, the probability filter, flips, the input, and a tiny training run."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from explorer.core.detector import DetectorConfig, build_detector, detect, post_filter, render_input
from training import detection_eval, detector
from training.radio_fields import FIELD_PIXELS, Fields, fields_header
from training.simulate import write_fits_catalogue


def table(rows):
    return pd.DataFrame(rows, columns=["field", "x0", "y0", "x1", "y1", "det_class", *(["det_prob"] if len(rows[0]) > 6 else [])])


def test_average_precision_matches_a_hand_computation():
    truth = table([("a", 10, 10, 30, 30, "1C_1P"), ("b", 50, 50, 80, 80, "1C_1P"), ("b", 0, 0, 8, 8, "2C_2P")])
    detections = table([
        ("a", 11, 11, 31, 31, "1C_1P", 0.9),   # TP (IoU 0.82)
        ("a", 10, 10, 30, 30, "1C_1P", 0.8),   # FP: its truth is taken
        ("b", 90, 90, 99, 99, "1C_1P", 0.7),   # FP: nowhere
        ("b", 52, 50, 82, 80, "1C_1P", 0.6),   # TP (IoU 0.88)
        ("b", 50, 50, 80, 80, "2C_2P", 0.95),  # another class: not a 1C_1P detection, an FP of 2C_2P
    ])
    # Precision at the TPs: 1/1 and 2/4; |T| = 2.
    assert detection_eval.average_precision(detections, truth, "1C_1P") == pytest.approx((1 + 2 / 4) / 2)
    assert detection_eval.average_precision(detections, truth, "2C_2P") == 0.0
    assert np.isnan(detection_eval.average_precision(detections, truth, "3C_3P"))
    # An IoU of exactly 0.5 is not enough (paper: IoU > 0.5).
    half = table([("a", 10, 10, 30, 50, "1C_1P", 0.9)])
    assert detection_eval.iou(np.array([10, 10, 30, 30.]), np.array([[10, 10, 30, 50.]]))[0] == pytest.approx(0.5)
    assert detection_eval.average_precision(half, truth[:1], "1C_1P") == 0.0
    collapsed = detection_eval.components_only(detections)
    assert set(collapsed["det_class"]) == {"1C", "2C"}


def test_the_probability_filter_keeps_the_confident_or_else_the_best():
    found = pd.DataFrame({"det_class": ["1C_1P", "2C_2P", "1C_2P"], "det_prob": [0.5, 0.95, 0.81]})
    assert list(post_filter(found)["det_prob"]) == [0.95, 0.81]
    unsure = pd.DataFrame({"det_class": ["1C_1P", "2C_2P"], "det_prob": [0.3, 0.6]})
    assert list(post_filter(unsure)["det_prob"]) == [0.6]
    assert post_filter(unsure.iloc[:0]).empty


def test_a_flip_mirrors_the_image_and_its_boxes():
    image = torch.zeros(1, 8, 10)
    image[0, 2:4, 1:3] = 1.0                                   # pixels x = 1, 2: edges 1 to 3
    flipped, target = detector.flipped(image, {"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([1])})
    assert torch.equal(flipped[0, 2:4, 7:9], torch.ones(2, 2)) and flipped.sum() == 4
    assert target["boxes"].tolist() == [[7.0, 2.0, 9.0, 4.0]]


def test_the_d1_input_is_ds9_log_min_max():
    field = np.array([[0.0, 1.0], [3.0, np.nan]])
    out = render_input(field)
    assert out.shape == (1, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0].ravel(), [0.0, np.log10(1000 / 3 + 1) / np.log10(1001), 1.0, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown detector input"):
        render_input(field, "D9")


def test_d3_is_w1_and_the_radio_contours_at_5_10_20_sigma():
    from explorer.core.errors import InputError
    from explorer.core.islands import background_rms

    rng = np.random.default_rng(0)
    y, x = np.mgrid[:FIELD_PIXELS, :FIELD_PIXELS]
    radio = 100 * np.exp(-((x - 50) ** 2 + (y - 70) ** 2) / (2 * 6.0 ** 2)) + rng.standard_normal(x.shape)
    w1 = rng.standard_normal(x.shape) + 40 * np.exp(-((x - 90) ** 2 + (y - 30) ** 2) / 8)
    d3 = render_input(radio, "D3", infrared=w1)
    assert d3.shape == (2, FIELD_PIXELS, FIELD_PIXELS)
    np.testing.assert_allclose(d3[0], render_input(w1)[0])                 # W1 on D1's scale
    sigma = background_rms(radio)
    lines = d3[1] > 0
    levels = 5 * sigma * 2.0 ** np.arange(5)                               # 5 ... 80 sigma: the blob peaks at 100
    r = np.hypot(x - 50, y - 70)[lines]
    expected = 6.0 * np.sqrt(2 * np.log(100 / levels))
    # Every contour pixel is on one of the levels' circles, and every level is drawn.
    assert np.all(np.min(np.abs(r[:, None] - expected[None]), axis=1) < 1.5)
    assert all((np.abs(r - e) < 1.5).any() for e in expected)
    with pytest.raises(InputError, match="give a W1 image"):
        render_input(radio, "D3")
    with pytest.raises(InputError, match="W1 image is"):
        render_input(radio, "D3", infrared=w1[:10])


def test_d4_keeps_the_contours_convex_hull_and_fills_the_rest_with_the_training_mean():
    from explorer.core.detector import convex_hull_mask

    triangle = np.zeros((6, 6), bool)
    triangle[0, 0] = triangle[0, 4] = triangle[4, 0] = True
    hull = convex_hull_mask(triangle)
    assert hull[1, 1] and hull[2, 2] and not hull[4, 4] and not hull[3, 3] and hull.sum() == 15
    line = np.zeros((6, 6), bool)
    line[2, 1:4] = True
    assert convex_hull_mask(line).sum() == 3                               # flat: its bounding box
    y, x = np.mgrid[:FIELD_PIXELS, :FIELD_PIXELS]
    rng = np.random.default_rng(1)
    blobs = sum(50 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8) for cx, cy in ((30, 30), (90, 40)))
    radio = blobs + rng.standard_normal(x.shape)
    w1 = rng.standard_normal(x.shape)
    d3 = render_input(radio, "D3", infrared=w1)
    d4 = render_input(radio, "D4", infrared=w1, outside_fill=[0.25, 0.5])
    assert np.array_equal(d4[:, 35, 60], d3[:, 35, 60])                   # between the two sources: inside
    assert np.array_equal(d4[:, 100, 100], [0.25, 0.5]) and np.array_equal(d4[:, 5, 120], [0.25, 0.5])
    inside = np.all(d4 == d3, axis=0)
    assert 0.01 < inside.mean() < 0.2
    with pytest.raises(ValueError, match="D4 needs"):
        render_input(radio, "D4", infrared=w1)


def test_d4_training_inputs_fill_with_the_d3_mean_of_the_training_fields():
    from training.radio_fields import simulate_fields

    fields = simulate_fields(4, seed=4, progress=False)
    d3, none = detector.rendered_inputs(fields, "D3")
    d4, fill = detector.rendered_inputs(fields, "D4")
    assert none == [] and fill == pytest.approx(d3.mean(axis=(0, 2, 3)).tolist())
    changed = d4 != d3
    assert changed.any()
    for c in range(2):
        assert np.allclose(d4[:, c][changed[:, c]], fill[c])
    with pytest.raises(Exception, match="needs a W1 image of every field"):
        detector.rendered_inputs(Fields(fields.images, fields.catalog, fields.sources), "D3")


def test_anchors_are_square_and_scale_with_the_input_size():
    assert DetectorConfig(input_size=600).anchors == ((16, 32), (64, 128), (256, 512))
    assert DetectorConfig(input_size=300).anchors == ((8, 16), (32, 64), (128, 256))
    model = build_detector(DetectorConfig(input_size=132, fpn_channels=16, box_head=32))
    assert model.rpn.anchor_generator.aspect_ratios == ((1.0,),) * 3
    assert model.rpn._post_nms_top_n["testing"] == 5 and model.roi_heads.detections_per_img == 5


def compact_fields(n, seed):
    """Fields of one bright compact source each (1C_1P), a box of 12 px, beam-correlated noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:FIELD_PIXELS, :FIELD_PIXELS]
    images, sources = [], []
    for i in range(n):
        cx, cy = rng.uniform(20, FIELD_PIXELS - 20, 2)
        noise = ndimage.gaussian_filter(rng.standard_normal((FIELD_PIXELS, FIELD_PIXELS)), 1.5)
        images.append((60 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 2.5 ** 2)) + noise / noise.std()) * 1e-4)
        sources.append({"field": f"F{i}", "x0": cx - 6, "y0": cy - 6, "x1": cx + 6, "y1": cy + 6, "det_class": "1C_1P"})
    catalog = pd.DataFrame({"id": [f"F{i}" for i in range(n)], "ra": 150.0, "dec": 2.0, "n_sources": 1, "in_scope": True})
    return np.array(images, np.float32), catalog, pd.DataFrame(sources)


def test_a_tiny_training_run_finds_an_isolated_bright_compact_source_and_resumes(tmp_path):
    images, catalog, sources = compact_fields(48, seed=0)
    write_fits_catalogue(tmp_path / "fields", images, catalog, header=fields_header(), tables={"sources.csv": sources},
                         progress=False)
    recipe = detector.DetectorRecipe(
        name="tiny", detector=detector.NetworkRecipe(input_size=264, fpn_channels=32, box_head=64),
        data=detector.DataRecipe(train=str(tmp_path / "fields"), test=str(tmp_path / "fields")),
        optim=detector.OptimRecipe(epochs=1, batch_size=4, lr=0.01, warmup_steps=10, decay_at=0.9))
    run = tmp_path / "run"
    detector.train_detector(recipe, run, device="cpu", progress=False)
    first = torch.load(run / "checkpoint.pt", weights_only=True)["history"]
    recipe.optim.epochs = 12
    detector.train_detector(recipe, run, device="cpu", progress=False)      # resumes from epoch 1
    history = torch.load(run / "checkpoint.pt", weights_only=True)["history"]
    assert history[0] == first[0] and [h["epoch"] for h in history] == list(range(1, 13))
    assert history[-1]["loss"] < history[0]["loss"]

    model, config = detector.load_detector(run)
    test_images, test_catalog, test_sources = compact_fields(10, seed=1)
    found = detect(model, config, list(test_images))
    hits = [len(f) and f["det_class"][0] == "1C_1P"
            and detection_eval.iou(f[detection_eval.BOX].to_numpy()[0], s[detection_eval.BOX].to_numpy(float))[0] > 0.5
            for f, (_, s) in zip(found, test_sources.iterrows())]
    assert sum(hits) >= 8, f"the top detection found the source in {sum(hits)} of 10 fields"
    result = detection_eval.evaluate(model, config, Fields(test_images, test_catalog, test_sources))
    assert result["ap"]["1C_1P"] > 0.7 and result["seconds_per_field"] > 0


def test_a_detector_run_refuses_a_different_recipe_and_bad_recipes_are_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("detector: {input: D7}\n")
    with pytest.raises(Exception, match="detector.input: unknown value 'D7'"):
        detector.load_recipe(path)
    path.write_text("optim: {epochs: 0}\n")
    with pytest.raises(Exception, match="epochs must be at least 1"):
        detector.load_recipe(path)
    with pytest.raises(Exception, match="no detector checkpoint"):
        detector.load_detector(tmp_path)


def test_the_real_first_check_resamples_mirabest_onto_the_field_and_scores_against_rgz(tmp_path):
    from tests.sky_fixtures import MIRABEST

    rgz = MIRABEST / "rgz_components.csv"
    if not rgz.is_file():
        pytest.skip(f"the Radio Galaxy Zoo consensus of MiraBest is not at {rgz} (../shared/data/mirabest)")
    rows = pd.read_csv(rgz)
    few = rows[rows["rgz_class"].isin(["1C_1P", "2C_2P", "3C_3P"])].groupby("rgz_class").head(2)
    subset = tmp_path / "rgz.csv"
    few.assign(file=[str(MIRABEST / f) for f in few["file"]]).to_csv(subset, index=False)
    config = DetectorConfig(input_size=132, fpn_channels=16, box_head=32)
    torch.manual_seed(0)
    result = detection_eval.real_first_check(build_detector(config), config, subset, progress=False)
    assert result["sources"] == len(few) == 6
    assert sum(sum(r.values()) for r in result["confusion"].values()) == 6
    assert 0 <= result["components_inside_box"] <= 1 and 0 <= result["accuracy_3class"] <= 1
    assert result["majority_baseline"] == pytest.approx(2 / 6)
    text = detection_eval.markdown({"simulated": {"test_fields": 1, "test_sources": 1, "ap": {c: 0.5 for c in config.classes},
                                                  "map": 0.5, "ap_3class": {"1C": 0.5, "2C": 0.5, "3C": 0.5},
                                                  "map_3class": 0.5, "width_correlation": {}, "seconds_per_field": 0.1},
                                    "real_first": result})
    assert "Real FIRST check (6 MiraBest sources" in text and "| 1C_1P | 0.500 | 0.858 |" in text


@pytest.mark.parametrize("argv, message", [
    (["training.detection_eval", "--run", "{tmp}", "--out", "{tmp}/eval"], "no detector checkpoint"),
    (["training.detector", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/run"], "detector recipe not found"),
    (["training.radio_fields", "--n", "0", "--out", "{tmp}/fields"], "--n"),
])
def test_detector_clis_answer_bad_input_in_one_line(tmp_path, argv, message):
    import subprocess
    import sys
    from pathlib import Path

    argv = [a.format(tmp=tmp_path) for a in argv]
    done = subprocess.run([sys.executable, "-m", *argv], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_results_table_sits_beside_the_papers_column_for_its_input():
    sim = {"test_fields": 2, "test_sources": 3, "ap": {c: 0.5 for c in DetectorConfig().classes}, "map": 0.5,
           "ap_3class": {"1C": 0.5, "2C": 0.5, "3C": 0.5}, "map_3class": 0.5, "width_correlation": {},
           "seconds_per_field": 0.1, "map_several_sources": 0.25, "fields_several_sources": 1}
    d3 = detection_eval.markdown({"simulated": sim, "input": "D3"})
    assert "radio contours over W1" in d3 and "| 1C_1P | 0.500 | 0.849 |" in d3 and "| mAP | 0.500 | 0.826 |" in d3
    assert "Fields with several sources (1): mAP 0.250" in d3
    assert "| 3C_3P | 0.500 | 0.927 |" in detection_eval.markdown({"simulated": sim, "input": "D4"})
