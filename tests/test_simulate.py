"""The simulated FIRST-like radio sky: physics of the images and catalogue, and the FITS catalogue directory.

Expected values are computed here independently (brute-force sizes, astropy cosmology and WCS,
FIRST's published beam and noise), not read back from the simulator's own helpers.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.cosmology import Planck18
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS
from scipy.spatial.distance import pdist

from explorer.core.errors import InputError
from training import simulate
from training.simulate import (CLASSES, COLUMNS, make_wcs, simulate_sources, simulate_to_directory,
                               write_fits_catalogue)

# FIRST: 1.8"/px, 5.4" FWHM circular beam, 0.15 mJy/beam rms.
PIXEL_ARCSEC, BEAM_FWHM_ARCSEC, NOISE_JY = 1.8, 5.4, 0.15e-3
BEAM_AREA_PX = np.pi * (BEAM_FWHM_ARCSEC / PIXEL_ARCSEC) ** 2 / (4 * np.log(2))
N, SEED = 60, 7


@pytest.fixture(scope="module")
def sky():
    images, catalogue = simulate_sources(N, SEED, progress=False)
    noise_free, same_catalogue = simulate_sources(N, SEED, noise=False, progress=False)
    pd.testing.assert_frame_equal(catalogue, same_catalogue)
    return images, noise_free, catalogue


def test_same_seed_gives_identical_bytes_and_another_seed_differs(sky):
    images, _, catalogue = sky
    again, catalogue_again = simulate_sources(N, SEED, progress=False)
    assert images.dtype == np.float32 and images.shape == (N, 150, 150)
    assert again.tobytes() == images.tobytes()
    assert catalogue_again.to_csv().encode() == catalogue.to_csv().encode()
    other, other_catalogue = simulate_sources(N, SEED + 1, progress=False)
    assert other.tobytes() != images.tobytes()
    assert not np.allclose(other_catalogue["ra"], catalogue["ra"])


def test_catalogue_columns_classes_and_footprint(sky):
    _, _, catalogue = sky
    assert list(catalogue.columns) == ["id", "ra", "dec", "morphology", "bent_type", "las_arcsec", "flux_mjy",
                                       "peak_snr", "z", "log_lum_1p4ghz", "position_angle_deg", "bend_angle_deg",
                                       "lobe_flux_ratio"]
    assert set(COLUMNS) == set(catalogue.columns)
    assert all(COLUMNS[c]["description"] for c in COLUMNS)
    counts = catalogue["morphology"].value_counts()
    assert set(counts.index) == set(CLASSES) and counts.min() == counts.max() == N // len(CLASSES)
    bent = catalogue["morphology"] == "bent-tail"
    assert set(catalogue.loc[bent, "bent_type"]) <= {"WAT", "NAT", "HT"}
    assert (catalogue.loc[~bent, "bent_type"] == "").all()
    assert (catalogue.loc[~bent, "bend_angle_deg"] == 0).all() and (catalogue.loc[bent, "bend_angle_deg"] > 10).all()
    assert (catalogue.loc[catalogue["morphology"] == "compact", "lobe_flux_ratio"] == 1).all()
    assert (catalogue["lobe_flux_ratio"] >= 1).all()
    assert catalogue["id"].is_unique
    assert catalogue["ra"].between(120, 240).all() and catalogue["dec"].between(0, 60).all()
    assert catalogue["z"].between(0.02, 1).all()
    assert catalogue["peak_snr"].between(3, 1100).all()


def test_bend_angles_order_the_bent_tail_subtypes():
    _, catalogue = simulate_sources(150, 1, progress=False)
    bend = catalogue[catalogue["morphology"] == "bent-tail"].groupby("bent_type")["bend_angle_deg"]
    assert bend.max()["WAT"] < bend.min()["NAT"] and bend.max()["NAT"] < bend.min()["HT"] + 10
    assert bend.min()["WAT"] > 20 and bend.max()["HT"] <= 180


def test_source_names_encode_their_positions(sky):
    _, _, catalogue = sky
    for name, ra, dec in catalogue[["id", "ra", "dec"]].itertuples(index=False):
        j = name.removeprefix("SIM J")
        sign = j[8]
        position = SkyCoord(f"{j[:2]}h{j[2:4]}m{j[4:8]}s {sign}{j[9:11]}d{j[11:13]}m{j[13:15]}s")
        assert position.separation(SkyCoord(ra * u.deg, dec * u.deg)) < 1.5 * u.arcsec


def test_sizes_match_the_rendered_extent(sky):
    """las_arcsec = largest distance between any two pixels >= 5% of the peak, found here by brute force."""
    _, noise_free, catalogue = sky
    for image, las in zip(noise_free, catalogue["las_arcsec"]):
        rows, cols = np.nonzero(image >= simulate.LAS_LEVEL * image.max())
        assert las == pytest.approx(pdist(np.column_stack([rows, cols])).max() * PIXEL_ARCSEC, abs=0.01)
    median = catalogue.groupby("morphology")["las_arcsec"].median()
    assert median["compact"] < 20 < median["FRI"] < median["FRII"] < median["double-double"]
    assert catalogue["las_arcsec"].between(5, 260).all()


def test_an_unresolved_source_is_as_large_as_the_beam_at_the_size_level():
    sigma_px = BEAM_FWHM_ARCSEC / PIXEL_ARCSEC / np.sqrt(8 * np.log(2))
    point = np.array([[[74.5, 74.5, 0.01, 1.0]]])             # x, y, sigma (px), flux
    image = simulate.render_model(point, beam=True)
    diameter = 2 * sigma_px * np.sqrt(2 * np.log(1 / simulate.LAS_LEVEL)) * PIXEL_ARCSEC
    measured = simulate.largest_angular_size(image)[0]
    assert diameter - 2 * PIXEL_ARCSEC < measured <= diameter


def test_beam_convolution_conserves_flux_and_gives_jy_per_beam(sky):
    _, noise_free, catalogue = sky
    flux_jy = noise_free.sum(axis=(1, 2), dtype=np.float64) / BEAM_AREA_PX
    np.testing.assert_allclose(flux_jy * 1e3, catalogue["flux_mjy"], rtol=1e-4, atol=1e-4)
    # A point source of S Jy centred on a pixel peaks at S Jy/beam.
    point = simulate.render_model(np.array([[[70.0, 80.0, 0.01, 0.5]]]), beam=True)
    assert point.max() == pytest.approx(0.5, rel=1e-3)
    assert point.sum() / BEAM_AREA_PX == pytest.approx(0.5, rel=1e-4)


def test_separable_beam_equals_the_2d_fft_convolution_of_the_sky_model(sky):
    _, _, catalogue = sky
    _, components = simulate.draw_sources(10, np.random.default_rng(3))
    direct = simulate.render_model(components, beam=True)
    on_field = components + np.array([simulate._MARGIN, simulate._MARGIN, 0, 0])
    via_2d = simulate.beam_convolve(simulate.render_model(on_field, simulate._FIELD))
    np.testing.assert_allclose(direct, via_2d, atol=1e-6 * direct.max())


def test_noise_is_first_like_in_empty_regions(sky):
    images, noise_free, catalogue = sky
    empty = noise_free < 1e-3 * NOISE_JY
    noise = (images - noise_free)[empty]
    assert noise.std() == pytest.approx(NOISE_JY, rel=0.03)
    assert abs(noise.mean()) < 0.05 * NOISE_JY
    _, _, clipped_std = sigma_clipped_stats(images[:, :30, :30])   # corners, as an observer would measure
    assert clipped_std == pytest.approx(NOISE_JY, rel=0.05)
    # Correlated on the beam scale: a beam-convolved field has correlation exp(-1 / (4 sigma^2)) at one pixel.
    field = images[:, :30, :60] - noise_free[:, :30, :60]
    lag1 = np.mean(field[:, :, 1:] * field[:, :, :-1]) / np.mean(field ** 2)
    sigma_px = BEAM_FWHM_ARCSEC / PIXEL_ARCSEC / np.sqrt(8 * np.log(2))
    assert lag1 == pytest.approx(np.exp(-1 / (4 * sigma_px ** 2)), abs=0.03)
    peak = images.max(axis=(1, 2)) / NOISE_JY
    np.testing.assert_allclose(peak, catalogue["peak_snr"], atol=0.006)


def test_luminosity_follows_from_redshift_and_flux(sky):
    _, _, catalogue = sky
    distance = Planck18.luminosity_distance(catalogue["z"].to_numpy())
    flux = catalogue["flux_mjy"].to_numpy() * u.mJy
    k_correction = (1 + catalogue["z"].to_numpy()) ** (0.7 - 1)          # S ~ nu^-0.7
    expected = np.log10((4 * np.pi * distance ** 2 * flux * k_correction).to_value(u.W / u.Hz))
    np.testing.assert_allclose(catalogue["log_lum_1p4ghz"], expected, atol=1e-3)


def _side_fluxes(image, position_angle_deg):
    """Flux on either side of the line through the centre perpendicular to the position angle."""
    y, x = np.mgrid[:150, :150] - 74.5
    pa = np.radians(position_angle_deg)
    along = -x * np.sin(pa) + y * np.cos(pa)                       # east is -x (CDELT1 < 0), north is +y
    return image[along > 0].sum(), image[along < 0].sum()


def test_position_angle_and_lobe_flux_ratio_are_what_the_image_shows(sky):
    _, noise_free, catalogue = sky
    wcs = make_wcs(180.0, 30.0)
    centre = wcs.pixel_to_world(74.5, 74.5)
    doubles = catalogue.index[catalogue["morphology"].isin(["FRII", "double-double"])]
    for i in doubles:
        source = catalogue.loc[i]
        one, other = _side_fluxes(noise_free[i], source["position_angle_deg"])
        assert max(one, other) / min(one, other) == pytest.approx(source["lobe_flux_ratio"], rel=0.12)
        if source["morphology"] == "FRII" and source["las_arcsec"] > 50:   # the brightest pixel is a hotspot
            y, x = np.unravel_index(noise_free[i].argmax(), noise_free[i].shape)
            hotspot_pa = centre.position_angle(wcs.pixel_to_world(x, y)).to_value(u.deg) % 180
            offset = (hotspot_pa - source["position_angle_deg"] + 90) % 180 - 90
            assert abs(offset) < 6


def test_wcs_puts_the_core_at_the_catalogue_position(sky, tmp_path):
    images, noise_free, catalogue = sky
    out = write_fits_catalogue(tmp_path / "cat", images[:10], catalogue.iloc[:10], progress=False)
    table = pd.read_csv(out / "catalog.csv", keep_default_na=False)
    for (_, row), model in zip(table.iterrows(), noise_free[:10]):
        header = fits.getheader(out / row["file"])
        wcs = WCS(header)
        assert wcs.has_celestial and wcs.wcs.ctype[0] == "RA---TAN" and wcs.wcs.ctype[1] == "DEC--TAN"
        x, y = wcs.world_to_pixel(SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg, frame="icrs"))
        assert (x, y) == pytest.approx((74.5, 74.5), abs=1e-6)
        if row["morphology"] == "compact" or row["bent_type"] == "HT":   # the core is the brightest part
            peak_y, peak_x = np.unravel_index(model.argmax(), model.shape)
            assert np.hypot(peak_x - x, peak_y - y) < 2.0
    # East is left: one pixel to lower x is east (larger RA), one pixel up is north.
    wcs = make_wcs(180.0, 30.0)
    centre = wcs.pixel_to_world(74.5, 74.5)
    assert centre.position_angle(wcs.pixel_to_world(73.5, 74.5)).to_value(u.deg) == pytest.approx(90, abs=0.01)
    assert centre.position_angle(wcs.pixel_to_world(74.5, 75.5)).to_value(u.deg) == pytest.approx(0, abs=0.01)
    assert centre.separation(wcs.pixel_to_world(75.5, 74.5)).to(u.arcsec).value == pytest.approx(1.8, rel=1e-4)


def test_fits_catalogue_directory_round_trips(sky, tmp_path):
    images, _, catalogue = sky
    out = write_fits_catalogue(tmp_path / "sky", images, catalogue, provenance={"n": N}, progress=False)
    assert not list(tmp_path.glob(".sky.*"))                     # the temporary folder was renamed into place
    table = pd.read_csv(out / "catalog.csv", keep_default_na=False)
    assert table.columns[0] == "file" and list(table.columns[1:]) == list(catalogue.columns)
    pd.testing.assert_frame_equal(table.drop(columns="file"), catalogue, check_dtype=False, check_exact=False,
                                  rtol=1e-12)
    for i, row in table.iterrows():
        with fits.open(out / row["file"]) as hdul:
            header, data = hdul[0].header, hdul[0].data
            assert data.dtype.kind == "f" and np.array_equal(data, images[i])
            assert header["BUNIT"] == "Jy/beam" and u.Unit(header["BUNIT"]) == u.Jy / u.beam
            assert header["BMAJ"] == header["BMIN"] == pytest.approx(5.4 / 3600)
            assert header["CDELT1"] == pytest.approx(-1.8 / 3600) and header["CDELT2"] == pytest.approx(1.8 / 3600)
            assert header["OBJECT"] == row["id"]
    described = yaml.safe_load((out / "columns.yaml").read_text())
    assert set(described) == set(catalogue.columns)
    assert described["las_arcsec"]["unit"] == "arcsec" and described["flux_mjy"]["unit"] == "mJy"
    assert json.loads((out / "provenance.json").read_text()) == {"n": N}


def test_writer_refuses_duplicate_ids(sky, tmp_path):
    images, _, catalogue = sky
    twins = catalogue.iloc[:2].assign(id=["SIM J1", "SIM J1"])
    with pytest.raises(ValueError, match="unique"):
        write_fits_catalogue(tmp_path / "twins", images[:2], twins, progress=False)
    assert not (tmp_path / "twins").exists()


def test_simulate_to_directory_reuses_a_complete_catalogue_and_protects_other_folders(tmp_path):
    out = simulate_to_directory(tmp_path / "sim", n=5, seed=1, progress=False)
    stamp = (out / "catalog.csv").stat().st_mtime_ns
    assert simulate_to_directory(out, n=5, seed=1, progress=False) == out
    assert (out / "catalog.csv").stat().st_mtime_ns == stamp
    simulate_to_directory(out, n=6, seed=1, progress=False)                  # other parameters: rebuilt
    assert len(pd.read_csv(out / "catalog.csv")) == 6
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a simulated catalogue"):
        simulate_to_directory(precious, n=5, seed=1, progress=False)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_cli_writes_a_catalogue_and_reports_bad_input_in_one_line(tmp_path, capsys):
    assert simulate.main(["--n", "5", "--seed", "2", "--out", str(tmp_path / "cli")]) == 0
    assert len(pd.read_csv(tmp_path / "cli" / "catalog.csv")) == 5
    capsys.readouterr()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")   # an empty folder may be used; this one may not
    assert simulate.main(["--n", "5", "--out", str(tmp_path / "taken")]) == 2
    assert simulate.main(["--n", "0", "--out", str(tmp_path / "none")]) == 2
    assert simulate.main(["--seed", "-1", "--out", str(tmp_path / "none")]) == 2
    assert simulate.main(["--examples", str(tmp_path / "cli" / "catalog.csv" / "x.png")]) == 2   # under a file
    err = capsys.readouterr().err.strip().splitlines()
    assert not (tmp_path / "none").exists()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err) and "Traceback" not in "".join(err)


def test_examples_figure_has_a_row_per_class(tmp_path):
    from PIL import Image

    path = simulate.render_examples(tmp_path / "examples.png", n=300)
    with Image.open(path) as image:
        width, height = image.size
    assert width > 600 and height > 600 and path.stat().st_size < 500_000
