"""The whole training half on real (simulated-sky) data: simulate -> BYOL -> embed -> bundle."""
import subprocess
from pathlib import Path
import sys

import numpy as np
import pandas as pd
import pytest

from explorer.core.bundle import load_bundle
from explorer.core.config import REPO_ROOT
from training.config import load_config
from training.quality import knn_scores

pytestmark = pytest.mark.slow


def run_cli(*args, cwd=REPO_ROOT):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_map_is_organised_by_physics(small_demo):
    """Held-out k-NN scores far above chance, chance measured here by shuffling the labels."""
    b = load_bundle(small_demo["bundle"])
    size = np.log10(b.catalog["las_arcsec"].to_numpy())
    classes = b.catalog["morphology"].to_numpy(dtype=str)
    size_r2 = knn_scores(b.map_xy, size, classify=False, seed=1)
    accuracy = knn_scores(np.asarray(b.embeddings), classes, classify=True, seed=1)
    assert size_r2["score"] > 0.5 and size_r2["score"] > size_r2["chance"] + 0.4
    n_classes = len(set(classes))
    assert accuracy["score"] > 2.5 / n_classes and accuracy["score"] > accuracy["chance"] + 0.3


def test_bundle_from_the_pipeline_follows_the_contract(small_demo):
    b = load_bundle(small_demo["bundle"])
    m = b.manifest
    assert b.n == small_demo["n"] and b.dim == 512
    np.testing.assert_allclose(np.linalg.norm(b.embeddings, axis=1), 1, atol=1e-4)
    assert m.encoder.architecture == "resnet18" and len(m.encoder.checkpoint_sha256) == 64 and m.method == "byol"
    assert m.encoder.preprocessing["crop_pixels"] == 70 and m.data.bands == ["image"]
    assert m.encoder.preprocessing["scaling"] == "peak" and m.data.survey.startswith("simulated VLA FIRST-like")
    assert m.umap["metric"] == "cosine" and m.index["metric"] == "cosine"
    assert 0 < m.pca["total_explained_variance"] <= 1 and m.pca["n_components"] <= 200
    assert m.columns["las_arcsec"]["unit"] == "arcsec"
    assert {"log_size_r2_from_map", "class_accuracy_from_embeddings", "baselines"} <= set(m.quality)
    compared = m.quality["baselines"]  # the learned encoder beside random init and pixels, in the same build
    scores = {c["score"]: c for c in compared["comparison"]}
    assert set(scores) == {"log_size_r2_from_map", "class_accuracy_from_embeddings", "monitor_linear", "monitor_knn"}
    assert all(-1 <= c[k] <= 1 for c in scores.values() for k in ("learned", "random init"))
    assert compared["not_beaten"] == [s for s, c in scores.items() if c["learned"] <= c["random init"]]
    assert b.thumbnails.shape[1:] == (70, 70)
    # the stored encoder reproduces the stored embeddings
    from explorer.core.encoder import embed
    from explorer.core.preprocess import preprocess
    from training.data import load_data

    data = load_data(m.data.spec, progress=False)
    again = embed(b.encoder(), preprocess(data.images[:8], b.preprocessing()), b.preprocessing(), progress=False)
    np.testing.assert_allclose(again, b.embeddings[:8], atol=1e-4)


def test_training_resumes_from_the_last_checkpoint(small_demo, tmp_path):
    run = tmp_path / "run"
    args = ["training.train", "--config", "configs/demo.yaml", "--data", small_demo["sky"], "--out", str(run)]
    first = run_cli(*args, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    second = run_cli(*args, "--epochs", "2")
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stdout and "from epoch 1" in second.stdout
    log = pd.read_csv(run / "loss.csv")
    assert list(log["epoch"]) == [0, 1, 2] and np.isfinite(log["loss"].iloc[1:]).all()
    assert log["linear"].notna().all()  # random init, then each run's last epoch (1 of 1, then 2 of 2)
    third = run_cli(*args, "--epochs", "2")
    assert "already trained for 2 epochs" in third.stdout


@pytest.mark.parametrize("args, message", [
    (["training.train", "--config", "configs/demo.yaml", "--data", "sim:galaxies?n=3", "--out", "x"], "unknown simulation"),
    (["training.train", "--config", "configs/demo.yaml", "--data", "no/such/folder", "--out", "x"], "unknown data spec"),
    (["training.train", "--config", "configs/demo.yaml", "--data", "sim:radio?n=ten", "--out", "x"], "n must be a whole number"),
    (["training.train", "--config", "configs/nope.yaml", "--data", "sim:radio", "--out", "x"], "config file not found"),
    (["training.train", "--config", "configs/demo.yaml", "--data", "sim:radio?n=4", "--out", "x", "--device", "cuda:0"],
     "CUDA was requested"),
    (["training.embed", "--checkpoint", "no/run", "--data", "sim:radio", "--out", "x"], "no checkpoint"),
])
def test_cli_bad_input_is_one_clear_line(args, message, tmp_path):
    if "--device" in args and __import__("torch").cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    result = run_cli(*[str(tmp_path / a) if a == "x" else a for a in args])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_typos_are_rejected(tmp_path):
    from explorer.core.errors import InputError

    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {epochz: 3}\n")
    with pytest.raises(InputError, match="unknown key.*epochz"):
        load_config(bad)


def test_the_mirabest_recipe_trains_and_embeds_real_first_images(tmp_path):
    """configs/mirabest_byol.yaml on a slice of the real MiraBest folder -> a bundle the explorer opens."""
    from tests.sky_fixtures import MIRABEST, mirabest_catalog

    if not MIRABEST.is_dir():
        pytest.skip(f"real FIRST images not found at {MIRABEST}")
    subset = tmp_path / "mirabest-slice"
    subset.mkdir()
    rows = mirabest_catalog().iloc[::25].copy()
    rows["file"] = [str(MIRABEST / f) for f in rows["file"]]
    rows.to_csv(subset / "catalog.csv", index=False)
    trained = run_cli("training.train", "--config", "configs/mirabest_byol.yaml", "--data", str(subset),
                      "--out", str(tmp_path / "run"), "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    embedded = run_cli("training.embed", "--checkpoint", str(tmp_path / "run"), "--data", str(subset),
                       "--out", str(tmp_path / "bundle"))
    assert embedded.returncode == 0, embedded.stderr
    b = load_bundle(tmp_path / "bundle")
    assert b.n == len(rows) and {"fr_class", "confidence", "morphology", "z"} <= set(b.catalog.columns)
    assert b.manifest.data.pixel_scale_arcsec == 1.8
    assert set(b.catalog["id"]) == set(rows["file"].map(lambda f: Path(f).name.split(".fits")[0]))


def test_every_bundle_gets_anomaly_and_crop_columns_and_its_neighbourhood(small_demo):
    b = load_bundle(small_demo["bundle"])
    assert {"anomaly_knn", "extends_past_crop"} <= set(b.catalog.columns)
    crop_arcsec = 70 * 1.8
    np.testing.assert_array_equal(b.catalog["extends_past_crop"], b.catalog["las_arcsec"] > crop_arcsec)
    percentiles = b.manifest.quality["neighbourhood"]["nearest_similarity_percentiles"]
    assert len(percentiles) == 101 and percentiles == sorted(percentiles) and percentiles[-1] <= 1.0001
    odd = int(np.argmax(b.catalog["anomaly_knn"]))
    from explorer.core.search import neighbours_of_row

    typical = int(np.argmin(b.catalog["anomaly_knn"]))
    assert neighbours_of_row(b, odd, 10).similarity.mean() < neighbours_of_row(b, typical, 10).similarity.mean()


def test_queries_from_another_survey_are_less_typical_than_new_simulated_sources(small_demo, tmp_path):
    """Typicality (the percentile of a query's best similarity among the catalogue's own nearest-neighbour
    similarities) of real FIRST images (MiraBest) against the simulated demo, beside fresh simulated sources.

    The suite's demo encoder has trained for two epochs only, so the separation is statistical rather than
    per image: fresh simulations sit in the middle of the catalogue's range and are never flagged; the real
    images score far lower and are flagged more often."""
    from astropy.io import fits

    from explorer.app.query import query_by_image
    from explorer.core.sky.upload import read_uploaded_fits
    from tests.sky_fixtures import MIRABEST, mirabest_catalog
    from training.simulate import simulate_to_directory

    b = load_bundle(small_demo["bundle"])
    fresh = simulate_to_directory(tmp_path / "fresh", n=20, seed=99, progress=False)
    simulated = [query_by_image(b, fits.getdata(fresh / f).astype(np.float32), 8)
                 for f in pd.read_csv(fresh / "catalog.csv")["file"]]
    real = [query_by_image(b, *read_uploaded_fits((MIRABEST / name).read_bytes(), name,
                                                  expected_pixel_scale_arcsec=1.8)[:1], 8)
            for name in mirabest_catalog()["file"][:20]]
    typical = np.median([r.typicality for r in simulated])
    assert 20 < typical < 80 and not any(r.unlike_the_bundle for r in simulated)
    assert np.median([r.typicality for r in real]) < typical / 2
    assert sum(r.unlike_the_bundle for r in real) >= 2


def test_the_demo_build_reports_its_map_and_its_baselines(small_demo):
    from training.demo import quality_lines

    lines = quality_lines(small_demo["bundle"])
    assert lines[0].startswith("log_size_r2_from_map (las_arcsec):") and "vs chance" in lines[0]
    assert any(line.startswith("representation quality") for line in lines)
    assert any(line.startswith("monitor_linear (morphology)") for line in lines)
