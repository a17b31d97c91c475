"""The training data layer: scalings, the memory-mapped cutout cache, batches, multi-band data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.core.bundle import load_bundle
from explorer.core.errors import InputError
from explorer.core.preprocess import Preprocessing, preprocess
from training.config import config_from_dict
from training.data import load_data
from training.dataset import open_cutouts
from tests.sky_fixtures import MIRABEST, mirabest_catalog

SIM = "sim:radio?n=12&seed=4"


def test_peak_scales_each_band_by_its_own_peak():
    x = np.zeros((1, 2, 20, 20), np.float32)
    x[0, 0, 10, 10], x[0, 1, 5, 5], x[0, 1, 6, 6] = 4.0, 2.0, 1.0
    out = preprocess(x, Preprocessing(clip_sigma=0.0, crop_pixels=20))
    assert out[0, 0, 10, 10] == 1.0 and out[0, 1, 5, 5] == 1.0 and out[0, 1, 6, 6] == 0.5


def test_peak_all_bands_keeps_the_colours():
    x = np.zeros((1, 2, 20, 20), np.float32)
    x[0, 0, 10, 10], x[0, 1, 5, 5] = 4.0, 2.0
    out = preprocess(x, Preprocessing(clip_sigma=0.0, crop_pixels=20, scaling="peak_all_bands"))
    assert out[0, 0, 10, 10] == 1.0 and out[0, 1, 5, 5] == 0.5


def test_asinh_stretches_after_the_common_peak():
    x = np.zeros((1, 1, 20, 20), np.float32)
    x[0, 0, 10, 10], x[0, 0, 3, 3] = 1.0, 0.1
    out = preprocess(x, Preprocessing(clip_sigma=0.0, crop_pixels=20, scaling="asinh", asinh_softening=0.05))
    assert out[0, 0, 10, 10] == pytest.approx(1.0)
    assert out[0, 0, 3, 3] == pytest.approx(np.arcsinh(0.1 / 0.05) / np.arcsinh(1 / 0.05), rel=1e-6)


def test_calibrated_scaling_follows_paper_2_with_a_known_zero_point():
    # Eq. 3.2: x * 10^(5 - 0.4 zp) / ps^2. With zp = 25 the factor is 10^-5 / 0.55^2: 1e5 counts -> 1/0.3025.
    x = np.full((1, 2, 16, 16), 1e5, np.float32)
    params = Preprocessing(crop_pixels=16, scaling="calibrated", zero_points=(25.0, 20.0), pixel_scale_arcsec=0.55)
    out = preprocess(x, params)
    assert out[0, 0, 0, 0] == pytest.approx(1 / 0.3025, rel=1e-5)
    assert out[0, 1, 0, 0] == pytest.approx(1e5 * 10 ** (5 - 8) / 0.3025, rel=1e-5)
    per_source = preprocess(x, params, zero_points=np.array([[22.5, 22.5]]))  # a field's own zero points
    assert per_source[0, 0, 0, 0] == pytest.approx(1e5 * 10 ** (5 - 9) / 0.3025, rel=1e-5)


def test_calibrated_asinh_is_the_asinh_of_the_calibrated_flux_with_one_softening_for_every_band():
    x = np.zeros((1, 2, 16, 16), np.float32)
    x[0, :, 3, 3] = 1e5                      # 1/0.3025 in band 0 (zp 25), 100/0.3025 in band 1 (zp 20)
    x[0, :, 4, 4] = -1e2                     # a negative noise pixel stays negative: asinh is odd
    params = Preprocessing(crop_pixels=16, scaling="calibrated_asinh", zero_points=(25.0, 20.0),
                           pixel_scale_arcsec=0.55, asinh_softening=0.01)
    out = preprocess(x, params)
    assert out[0, 0, 3, 3] == pytest.approx(np.arcsinh(1 / 0.3025 / 0.01), rel=1e-5)
    assert out[0, 1, 3, 3] == pytest.approx(np.arcsinh(100 / 0.3025 / 0.01), rel=1e-5)
    assert out[0, 0, 4, 4] == pytest.approx(-np.arcsinh(1e-3 / 0.3025 / 0.01), rel=1e-5)
    with pytest.raises(InputError, match="calibrated scaling needs 1 zero point"):
        config_from_dict({"optim": {"epochs": 1}, "preprocessing": {"scaling": "calibrated_asinh",
                                                                    "pixel_scale_arcsec": 1.8}})


def test_calibrated_scaling_without_zero_points_is_refused_when_the_config_loads():
    with pytest.raises(InputError, match="calibrated scaling needs 1 zero point"):
        config_from_dict({"optim": {"epochs": 1}, "preprocessing": {"scaling": "calibrated", "pixel_scale_arcsec": 1.8}})
    with pytest.raises(InputError, match="unknown value 'log'"):
        config_from_dict({"optim": {"epochs": 1}, "preprocessing": {"scaling": "log"}})


def test_the_cache_gives_the_in_memory_preprocessing_and_is_reused(tmp_path, capsys):
    params = Preprocessing(crop_pixels=70, input_pixels=32)
    cached = open_cutouts(SIM, pixels=150, pixel_scale_arcsec=1.8, params=params, cache_root=tmp_path, progress=False)
    in_ram = preprocess(load_data(SIM, progress=False).images, params, margin_for_rotation=True)
    assert isinstance(cached.images, np.memmap) and np.array_equal(np.asarray(cached.images), in_ram)
    rows = torch.tensor([5, 0, 7])
    batch = cached.batch(rows, ("las_arcsec",))
    assert torch.equal(batch["images"], torch.from_numpy(in_ram[[5, 0, 7]]))
    assert batch["bands"] == ["image"] and torch.equal(batch["row"], rows)
    assert torch.allclose(batch["targets"]["las_arcsec"],
                          torch.tensor(cached.catalog["las_arcsec"].to_numpy()[[5, 0, 7]], dtype=torch.float32))
    stamp = (cached.path / "images.npy").stat().st_mtime_ns
    again = open_cutouts(SIM, pixels=150, pixel_scale_arcsec=1.8, params=params, cache_root=tmp_path, progress=False)
    assert again.path == cached.path and (again.path / "images.npy").stat().st_mtime_ns == stamp
    other = open_cutouts(SIM, pixels=150, pixel_scale_arcsec=1.8, params=Preprocessing(crop_pixels=64),
                         cache_root=tmp_path, progress=False)
    assert other.path != cached.path  # other preprocessing, another cache


def test_a_damaged_cache_is_rebuilt_with_a_message(tmp_path):
    params = Preprocessing(crop_pixels=70, input_pixels=32)
    first = open_cutouts(SIM, pixels=150, pixel_scale_arcsec=1.8, params=params, cache_root=tmp_path, progress=False)
    expected = np.asarray(first.images).copy()
    (first.path / "images.npy").write_bytes(b"\x93NUMPY garbage")
    said = []
    rebuilt = open_cutouts(SIM, pixels=150, pixel_scale_arcsec=1.8, params=params, cache_root=tmp_path,
                           progress=False, say=said.append)
    assert said and "damaged" in said[0] and "rebuilding" in said[0]
    assert np.array_equal(np.asarray(rebuilt.images), expected)


def test_a_missing_target_column_is_a_clear_message(tmp_path):
    cached = open_cutouts(SIM, pixels=150, pixel_scale_arcsec=1.8, params=Preprocessing(), cache_root=tmp_path,
                          progress=False)
    with pytest.raises(InputError, match="method 'magnitudes' needs the catalogue column.*mag_r"):
        cached.check_targets(("las_arcsec", "mag_r"), "magnitudes")
    with pytest.raises(InputError, match="needs numeric"):
        cached.check_targets(("morphology",), "magnitudes")


@pytest.fixture
def two_band_folder(tmp_path):
    """A FITS catalogue directory with two bands per source: the real FIRST image and a fainter copy."""
    if not MIRABEST.is_dir():
        pytest.skip(f"real FIRST images not found at {MIRABEST}")
    from astropy.io import fits

    rows = mirabest_catalog().iloc[:10].copy()
    folder = tmp_path / "two-band"
    (folder / "faint").mkdir(parents=True)
    for name in rows["file"]:
        with fits.open(MIRABEST / name) as hdul:
            hdu = fits.PrimaryHDU(hdul[0].data * 0.5, hdul[0].header)
            hdu.writeto(folder / "faint" / name.split("/")[-1].replace(".gz", ""), output_verify="ignore")
    table = rows.drop(columns=["file"])
    table.insert(0, "file_radio", [str(MIRABEST / f) for f in rows["file"]])
    table.insert(1, "file_faint", [f"faint/{f.split('/')[-1].replace('.gz', '')}" for f in rows["file"]])
    table.to_csv(folder / "catalog.csv", index=False)
    return folder


def test_a_two_band_catalogue_trains_and_embeds_with_its_band_names(two_band_folder, tmp_path):
    from training.embed import embed_to_bundle
    from training.train import train

    recipe = {"name": "two-band", "method": "byol", "encoder": {"in_channels": 2},
              "byol": {"projection_hidden": 64, "projection_dim": 32, "prediction_hidden": 64},
              "data": {"bands": ["radio", "faint"]},
              "preprocessing": {"input_pixels": 16, "scaling": "peak_all_bands"},
              "optim": {"epochs": 1, "batch_size": 4, "warmup_epochs": 0}}
    run = train(config_from_dict(recipe), str(two_band_folder), tmp_path / "run", progress=False)
    bundle = load_bundle(embed_to_bundle(run, str(two_band_folder), tmp_path / "bundle", progress=False))
    assert bundle.manifest.data.bands == ["radio", "faint"]
    assert bundle.manifest.data.band_pixel_scales_arcsec == {"radio": 1.8, "faint": 1.8}
    assert bundle.manifest.encoder.preprocessing["scaling"] == "peak_all_bands"
    assert bundle.n == 10 and bundle.manifest.encoder.in_channels == 2
    with pytest.raises(InputError, match=r"bands \(faint, radio\) differ from the data's \(radio, faint\)"):
        train(config_from_dict({**recipe, "data": {"bands": ["faint", "radio"]}}), str(two_band_folder),
              tmp_path / "run2", progress=False)


def test_the_baselines_are_scored_like_a_bundle(tmp_path):
    """A random-init encoder and the pixels, each with its own map, scored by the bundle's own measures."""
    from training.quality import baseline_organisation

    params = Preprocessing(crop_pixels=70, input_pixels=32)
    cutouts = open_cutouts("sim:radio?n=200&seed=6", pixels=150, pixel_scale_arcsec=1.8, params=params,
                           cache_root=tmp_path, progress=False)
    scores = baseline_organisation(cutouts.images, cutouts.catalog, params)
    assert set(scores) == {"random init", "pixels"}
    for name, quality in scores.items():
        assert set(quality) == {"log_size_r2_from_map", "class_accuracy_from_embeddings"}, name
        assert all(q["score"] > q["chance"] for q in quality.values()), (name, quality)


def test_a_mixed_spec_joins_real_and_simulated_sources_with_their_origin(tmp_path):
    catalog = mirabest_catalog()
    spec = f"{MIRABEST} + sim:radio?n=20&seed=2"
    mixed = load_data(spec, progress=False)
    assert len(mixed.catalog) == len(catalog) + 20 - len(mixed.skipped)
    assert mixed.images.shape[1:] == (1, 150, 150)
    assert mixed.catalog["dataset"].value_counts().to_dict() == {"mirabest": len(catalog) - len(mixed.skipped),
                                                                 "sim:radio": 20}
    simulated = load_data("sim:radio?n=20&seed=2", progress=False)
    np.testing.assert_array_equal(mixed.images[-20:], simulated.images)
    assert mixed.catalog["fr_class"].iloc[-20:].isna().all()  # real labels stay with the real sources
    cached = open_cutouts(spec, pixels=150, pixel_scale_arcsec=1.8, params=Preprocessing(), cache_root=tmp_path,
                          progress=False)
    other = open_cutouts(f"{MIRABEST} + sim:radio?n=20&seed=3", pixels=150, pixel_scale_arcsec=1.8,
                         params=Preprocessing(), cache_root=tmp_path, progress=False)
    assert cached.path != other.path  # each part's identity is in the cache key


@pytest.mark.parametrize("spec, message", [
    ("sim:radio?n=4 + ", "joins an empty spec"),
    ("sim:radio?n=4 + no/such/folder", "unknown data spec"),
])
def test_a_bad_mixed_spec_is_a_clear_message(spec, message):
    with pytest.raises(InputError, match=message):
        load_data(spec, progress=False)
