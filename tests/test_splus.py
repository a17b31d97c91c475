"""The 12-band S-PLUS-like sky (paper 2): class mix, zero points per band and field, sep's AUTO magnitudes."""
import numpy as np
import pytest

from training import splus
from training.bandpasses import BANDS


@pytest.fixture(scope="module")
def noiseless(request):
    """30 sources over 6 fields (5 each), so seeing and zero points vary."""
    patch = pytest.MonkeyPatch()
    patch.setattr(splus, "FIELD_SIZE", 5)
    sky = splus.simulate_sky(30, seed=2, noise=False, progress=False)
    patch.undo()
    return sky


def test_the_class_mix_is_paper_2s():
    table = splus.draw_sources(3000, np.random.default_rng(0))
    share = table["class"].value_counts(normalize=True)
    for cls, expected in splus.CLASS_MIX.items():
        assert share[cls] == pytest.approx(expected, abs=0.03)
    assert table["r_true"].between(*splus.R_RANGE).all()
    assert (table.loc[table["class"] == "star", "z"] == 0).all()
    assert table.loc[table["class"] == "quasar", "z"].between(*splus.QUASAR_Z).all()
    # Fainter galaxies lie further away.
    galaxies = table[table["class"] == "galaxy"]
    assert galaxies["z"].corr(galaxies["r_true"]) > 0.3


def test_zero_points_vary_per_band_and_per_field_and_set_the_adu(noiseless):
    catalog, images = noiseless.catalog, noiseless.images
    zps = catalog.groupby("field")[[f"zp_{b}" for b in BANDS]].first()
    assert len(zps) == 6 and (zps.std() > 0.03).all()                      # per field
    assert zps.iloc[0].std() > 0.5                                        # per band
    for i in range(5):                                                    # m = zp - 2.5 log10(ADU), all flux drawn
        true = catalog.loc[i, [f"mag_true_{b}" for b in BANDS]].to_numpy(float)
        zp = catalog.loc[i, [f"zp_{b}" for b in BANDS]].to_numpy(float)
        expected = 10 ** (-0.4 * (true - zp))
        np.testing.assert_allclose(images[i].sum(axis=(1, 2)), expected, rtol=0.03 if catalog["class"][i] == "galaxy" else 1e-3)  # wings beyond 35″


def test_sep_auto_magnitudes_of_noiseless_point_sources_are_the_true_ones_within_0_05(noiseless):
    catalog = noiseless.catalog
    points = catalog[catalog["class"] != "galaxy"]
    assert len(points) >= 10 and points["field"].nunique() >= 3
    for band in BANDS:
        assert (points[f"mag_{band}"] - points[f"mag_true_{band}"]).abs().max() < 0.05, band
    # A point source's size is its Moffat PSF's 2 r_50: r_50 = α sqrt(2^(1/(β-1)) - 1), FWHM = 2α sqrt(2^(1/β) - 1).
    beta = splus.MOFFAT_BETA
    ratio = np.sqrt(2 ** (1 / (beta - 1)) - 1) / np.sqrt(2 ** (1 / beta) - 1)
    # The 0.55″ pixels widen it a little more: a few % at 1.6″ seeing, 10 % at 1.1″.
    excess = points["fwhm_arcsec"] / (ratio * points["fwhm_r"]) - 1
    assert excess.between(0.0, 0.12).all() and excess.corr(points["fwhm_r"]) < 0
    galaxies = catalog[catalog["class"] == "galaxy"]
    assert galaxies["fwhm_arcsec"].median() > points["fwhm_arcsec"].median()


def test_the_sky_noise_is_each_bands_depth():
    sky = splus.simulate_sky(3, seed=3, noise=True, progress=False)
    row = sky.catalog.iloc[0]
    for b, band in enumerate(BANDS):
        corner = sky.images[0, b, :12, :12]                              # far from the source
        expected = splus.noise_adu(splus.DEPTHS_5SIGMA[band], row[f"zp_{band}"], row[f"fwhm_{band}"])
        assert corner.std() == pytest.approx(expected, rel=0.25), band
    assert np.isfinite(sky.catalog["mag_r"]).all() and (sky.catalog["mag_err_r"] > 0).all()
    with pytest.raises(Exception, match="at least 1"):
        splus.simulate_sky(0)


def test_calibration_removes_each_fields_zero_point(noiseless):
    """Eq. 3.2 by hand: a source of magnitude m sums to 10^(5 - 0.4 m) / ps² whatever its field's zero point."""
    catalog = noiseless.catalog
    points = catalog.index[catalog["class"] != "galaxy"][:6]
    zps = catalog.loc[points, [f"zp_{b}" for b in BANDS]].to_numpy(float)
    assert np.ptp(zps[:, BANDS.index("r")]) > 0.05                         # different fields, different zero points
    calibrated = splus.calibrate(noiseless.images[points], zps)
    true = catalog.loc[points, [f"mag_true_{b}" for b in BANDS]].to_numpy(float)
    np.testing.assert_allclose(calibrated.sum(axis=(2, 3)) * splus.PIXEL_SCALE_ARCSEC ** 2, 10 ** (5 - 0.4 * true),
                               rtol=1e-3)
    # The same by hand for one band: r = 17 at zp 23.5 is 10^(0.4 * 6.5) ADU; calibrated, 10^(5 - 6.8) / 0.55².
    assert splus.calibrate(np.full((1, 12, 1, 1), 10 ** 2.6), np.full((1, 12), 23.5))[0, 7, 0, 0] == \
        pytest.approx(10 ** -1.8 / 0.3025, rel=1e-6)


def test_rgb_composites_sum_the_bands_into_their_channel_with_one_stretch():
    stamp = np.zeros((2, 12, 4, 4), np.float32)
    stamp[0, BANDS.index("u"), 1, 1] = 1e-2                                 # only the bluest band
    stamp[1, BANDS.index("F660"), 2, 2] = 1.0                               # far past saturation, in R
    rgb = splus.rgb_composite(stamp)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 4, 4)
    assert rgb[0, 2, 1, 1] > 0 and rgb[0, :2].max() == 0                  # u lands in B only
    assert rgb[1, 0, 2, 2] == 255 and rgb[1, 1:].max() == 0
    # Fixed levels: twice the flux is brighter, never renormalised per stamp.
    assert splus.rgb_composite(stamp * 2)[0, 2, 1, 1] > rgb[0, 2, 1, 1]


def test_the_crop_is_32_px_or_three_fwhm_resized_to_32_when_larger():
    from explorer.core.preprocess import centre_crop, fwhm_crop

    y, x = np.mgrid[:64, :64]
    blob = np.exp(-((x - 31.5) ** 2 + (y - 31.5) ** 2) / (2 * 6.0 ** 2)).astype(np.float32)
    images = np.stack([blob, blob])[:, None]
    scale = splus.PIXEL_SCALE_ARCSEC
    small, large = 2.0, 16 * scale          # 3 x FWHM: 10.9 px (under 32: plain crop) and 48 px (resized)
    out = fwhm_crop(images, [small, large], scale)
    assert out.shape == (2, 1, 32, 32)
    np.testing.assert_allclose(out[0], centre_crop(images[0], 32), atol=1e-6)

    def sigma(image):                       # the blob's width from its second moment (it is centred)
        yy, xx = np.mgrid[:32, :32] - 15.5
        return np.sqrt(np.sum(image * xx ** 2) / np.sum(image))

    assert sigma(out[1, 0]) == pytest.approx(6.0 * 32 / 48, rel=0.05)
    # Never beyond the stamp: a huge FWHM takes the whole 64 px.
    assert sigma(fwhm_crop(images[:1], [100.0], scale)[0, 0]) == pytest.approx(6.0 * 32 / 64, rel=0.1)


def test_the_12_band_sky_is_a_data_spec_with_every_column_described():
    from explorer.core.errors import InputError
    from training.data import load_data

    data = load_data("sim:splus?n=4&seed=5", pixels=48, pixel_scale_arcsec=0.55, progress=False)
    assert data.images.shape == (4, 12, 48, 48) and data.images.dtype == np.float32
    assert list(data.catalog.columns[:3]) == ["id", "ra", "dec"] and data.catalog["id"].is_unique
    assert data.catalog.attrs["bands"] == list(BANDS)
    assert set(data.catalog.columns) <= set(data.columns)
    assert data.catalog["ra"].between(0, 360).all() and data.catalog["dec"].abs().max() <= 1.25
    with pytest.raises(InputError, match="0.55"):
        load_data("sim:splus?n=4&seed=5", pixels=48, pixel_scale_arcsec=1.8, progress=False)


def test_a_brighter_limit_draws_the_same_counts_laws_and_class_mix_to_r_max():
    table = splus.draw_sources(3000, np.random.default_rng(0), r_max=18.0)
    assert table["r_true"].between(splus.R_RANGE[0], 18.0).all() and table["r_true"].max() > 17.9
    share = table["class"].value_counts(normalize=True)
    for cls, expected in splus.CLASS_MIX.items():
        assert share[cls] == pytest.approx(expected, abs=0.03)
    # Rising counts: more sources in the faintest magnitude than in the brightest.
    assert (table["r_true"] > 17).sum() > 3 * (table["r_true"] < 15).sum()


def test_the_unlabelled_cut_keeps_only_sources_measured_within_the_error_in_every_band():
    import pandas as pd

    errors = np.full((4, len(BANDS)), 0.01)
    errors[1, 3] = 0.06                   # one band too uncertain
    errors[2, 0] = np.nan                 # one band undetected: no magnitude, dropped as paper 2 drops them
    errors[3, :] = 0.05                   # exactly at the cut: kept
    catalog = pd.DataFrame(errors, columns=[f"mag_err_{b}" for b in BANDS]).assign(id=["a", "b", "c", "d"])
    catalog.attrs["bands"] = list(BANDS)
    images = np.arange(4, dtype=np.float32)[:, None, None, None] * np.ones((4, len(BANDS), 2, 2), np.float32)
    kept = splus.well_measured(splus.Sky(images, catalog), 0.05)
    assert list(kept.catalog["id"]) == ["a", "d"] and kept.images[:, 0, 0, 0].tolist() == [0.0, 3.0]
    assert kept.catalog.attrs["bands"] == list(BANDS)
    assert splus.well_measured(splus.Sky(images, catalog), np.inf).catalog is catalog


@pytest.mark.parametrize("query, message", [("r_max=25", "r_max must be above 14 and at most 21"),
                                            ("r_max=bright", "r_max must be a number"),
                                            ("max_mag_err=0", "max_mag_err must be a positive number"),
                                            ("n=3&max_mag_err=1e-6", "no source has every magnitude error")])
def test_bad_unlabelled_cuts_are_clear_messages(query, message):
    from explorer.core.errors import InputError
    from training.data import load_data

    with pytest.raises(InputError, match=message):
        load_data(f"sim:splus?seed=5&{query}", pixels=32, pixel_scale_arcsec=0.55, progress=False)


def test_a_tiny_magnitude_pretext_run_learns_the_magnitudes_and_resumes(tmp_path):
    """configs/splus_magnitudes.yaml, shrunk: 12-band calibrated cutouts -> 12 magnitudes; the loss falls."""
    from explorer.core.encoder import build_encoder
    from training.config import load_config
    from training.methods import method_class
    from training.train import load_checkpoint, train

    config = load_config("configs/splus_magnitudes.yaml")
    assert config.method == "magnitudes" and config.optim.optimizer == "adam"
    config.optim.epochs, config.optim.batch_size, config.options.hidden = 6, 16, 64
    config.optim.base_lr = 0.016                                          # Adam at 1e-3 for a short run
    spec = "sim:splus?n=48&seed=7"
    run = tmp_path / "run"
    train(config, spec, run, progress=False)
    state = load_checkpoint(run / "checkpoint.pt")
    losses = [h["loss"] for h in state["history"] if "loss" in h]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0], losses
    model = method_class("magnitudes")(*build_encoder("resnet18", 12), config.options)
    model.load_state_dict(state["model"])
    assert model.head[-1].out_features == 12


def test_thumbnails_of_bands_with_g_r_i_are_lupton_composites_of_i_r_g():
    from explorer.core.preprocess import to_thumbnails

    cube = np.zeros((3, 12, 8, 8), np.float32)
    cube[0, BANDS.index("i"), 4, 4] = 1.0                                  # red only
    cube[1, BANDS.index("g"), 4, 4] = 1.0                                  # blue only
    cube[2, BANDS.index("u"), 4, 4] = 1.0                                  # no g, r or i light: black
    rgb = to_thumbnails(cube, BANDS)
    assert rgb.shape == (3, 8, 8, 3) and rgb.dtype == np.uint8
    assert rgb[0, 4, 4, 0] > 0 and rgb[0, 4, 4, 1:].max() == 0
    assert rgb[1, 4, 4, 2] > 0 and rgb[1, 4, 4, :2].max() == 0
    assert rgb[2].max() == 0
    # Without band names (or without g, r, i) the first three channels show, as before.
    assert to_thumbnails(cube)[2, 4, 4, 0] > 0


def test_rendering_in_parallel_gives_the_same_sky(monkeypatch):
    monkeypatch.setattr(splus, "FIELD_SIZE", 2)
    monkeypatch.setattr(splus, "PARALLEL_MIN_SOURCES", 10 ** 9)
    serial = splus.simulate_sky(8, seed=3, progress=False)
    monkeypatch.setattr(splus, "PARALLEL_MIN_SOURCES", 4)                # two processes, four fields
    parallel = splus.simulate_sky(8, seed=3, progress=False)
    np.testing.assert_array_equal(parallel.images, serial.images)
    assert parallel.catalog.equals(serial.catalog)
