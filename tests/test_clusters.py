"""The SDSS-like galaxy-cluster sky (paper 4): richness as the member count, the red sequence, flux and noise."""
import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.cosmology import Planck18

from explorer.core.errors import InputError
from training import clusters, seds
from training.bandpasses import ab_magnitudes, splus_bands

SDSS = [b for b in splus_bands() if b.name in "ugriz"]


@pytest.fixture(scope="module")
def pair():
    """The same 6 clusters with and without noise."""
    return (clusters.simulate_clusters(6, seed=3, progress=False),
            clusters.simulate_clusters(6, seed=3, noise=False, progress=False))


def lstar_model(z):
    """Magnitudes [n, 5] of an L* galaxy, by hand: M*_r + distance modulus + the redshifted E template's
    synthetic photometry through SDSS's curves minus its rest-frame r."""
    z = np.atleast_1d(z)
    rest_r = ab_magnitudes(seds.galaxy("E", 0.0), bands=SDSS)[0, 2]
    observed = ab_magnitudes(seds.galaxy("E", z), bands=SDSS)
    return clusters.M_STAR_R + Planck18.distmod(z).value[:, None] + observed - rest_r


def test_the_richness_is_the_member_count_inside_r_lambda_bcg_included(pair):
    sky = pair[0]
    members = sky.objects[sky.objects["kind"].isin(["bcg", "member"])]
    inside = members[members["radius_mpc"] < sky.catalog.loc[members["cluster"], "r_lambda_mpc"].to_numpy()]
    np.testing.assert_array_equal(inside.groupby("cluster").size().to_numpy(), sky.catalog["richness"])
    assert len(inside) == len(members)                                       # none drawn beyond R_λ
    bcg = sky.objects[sky.objects["kind"] == "bcg"]
    assert list(bcg["cluster"]) == list(range(6)) and (bcg["radius_mpc"] == 0).all()
    np.testing.assert_allclose(sky.catalog["r_lambda_mpc"], (sky.catalog["richness"] / 100) ** 0.2 / Planck18.h)
    np.testing.assert_allclose(sky.catalog["ln_richness"], np.log(sky.catalog["richness"]))
    # The profile is concentrated: far more members inside R_λ / 2 than its quarter of the area holds.
    assert (inside["radius_mpc"] < 0.5 * sky.catalog.loc[inside["cluster"], "r_lambda_mpc"].to_numpy()).mean() > 0.5


def test_member_colours_are_the_redshifted_e_template_within_the_red_sequence_width():
    rows, objects = zip(*(clusters.draw_cluster(np.random.default_rng([9, i]), 64) for i in range(20)))
    z = np.array([row["z"] for row in rows])
    members = pd.concat([o.assign(cz=zi) for o, zi in zip(objects, z)])
    members = members[members["kind"] == "member"]
    assert len(members) > 400
    model = lstar_model(z)
    expected = pd.DataFrame({"g-r": model[:, 1] - model[:, 2], "r-i": model[:, 2] - model[:, 3]}, index=z)
    for colour, (a, b) in {"g-r": ("g", "r"), "r-i": ("r", "i")}.items():
        offset = members[f"mag_{a}"] - members[f"mag_{b}"] - expected.loc[members["cz"], colour].to_numpy()
        assert abs(offset.mean()) < 0.02, colour
        assert offset.std() == pytest.approx(0.05 * np.sqrt(2), rel=0.15), colour
    # Members are brighter than 0.2 L*; the BCG is 3-5 L*, both through the same k-correction and distance.
    limit = pd.Series(model[:, 2] + 2.5 * np.log10(5), index=z)
    assert (members["mag_r"] < limit.loc[members["cz"]].to_numpy() + 0.2).all()
    bcg_offset = np.array([row["bcg_mag_r"] for row in rows]) - model[:, 2]
    assert (bcg_offset > -2.5 * np.log10(5) - 0.2).all() and (bcg_offset < -2.5 * np.log10(3) + 0.2).all()


def test_richness_follows_its_power_law_within_20_to_150_and_z_its_range(pair):
    rng = np.random.default_rng(0)
    draws = np.array([clusters._richness(rng) for _ in range(4000)])
    assert draws.min() >= 20 and draws.max() <= 150 and draws.dtype.kind == "i"
    values = np.arange(20, 151)
    p = values ** -2.5 / np.sum(values ** -2.5)
    for cut in (25, 40, 80):
        assert (draws < cut).mean() == pytest.approx(p[values < cut].sum(), abs=0.025), cut
    catalog = pair[0].catalog
    assert catalog["z"].between(*clusters.Z_RANGE).all() and catalog["richness"].between(20, 150).all()


def test_the_renderer_conserves_flux_and_places_the_source(pair):
    cluster = pair[1].catalog.iloc[0]
    point = pd.DataFrame({"x_mpc": [0.27], "y_mpc": [-0.4], "r_half_arcsec": [0.0],
                          **{f"mag_{b}": [18.0] for b in clusters.BANDS}})
    for size in (0.0, 3.0):
        image = clusters.render(point.assign(r_half_arcsec=size), cluster, 64)
        expected = 10 ** (-0.4 * (18.0 - cluster[[f"zp_{b}" for b in clusters.BANDS]].to_numpy(float)))
        np.testing.assert_allclose(image.sum(axis=(1, 2)), expected, rtol=0.01)
        # [band, y, x]: the pixel holding (x, y) = (0.27, -0.4) Mpc is row 0.6 x 32, column 1.27 x 32.
        assert np.unravel_index(np.argmax(image[2]), (64, 64)) == (19, 40)
    # The noiseless simulation is exactly its objects rendered.
    sky = pair[1]
    for i in range(2):
        objects = sky.objects[sky.objects["cluster"] == i]
        np.testing.assert_allclose(sky.images[i], clusters.render(objects, sky.catalog.iloc[i], 64), rtol=1e-5,
                                   atol=1e-6 * sky.images[i].max())


def test_the_noise_is_each_bands_depth_on_native_pixels_summed_onto_the_grid(pair):
    noisy, clean = pair
    catalog = clean.catalog
    # The pixel scale: 2 physical Mpc at the cluster's z over 64 px.
    radians = 2 * u.Mpc / Planck18.angular_diameter_distance(catalog["z"].to_numpy())
    np.testing.assert_allclose(catalog["pixel_scale_arcsec"], np.degrees(radians.decompose().value) * 3600 / 64,
                               rtol=2e-3)
    native_sigma_px = 1.3 / 2.3548 / 0.396                                   # 1.3″ seeing on 0.396″ pixels
    for i in range(3):
        row = catalog.iloc[i]
        for b, band in enumerate(clusters.BANDS):
            depth_flux = 10 ** (-0.4 * (clusters.DEPTHS_5SIGMA[band] - row[f"zp_{band}"]))
            expected = depth_flux / (5 * np.sqrt(4 * np.pi) * native_sigma_px) * row["pixel_scale_arcsec"] / 0.396
            residual = noisy.images[i, b] - clean.images[i, b]
            assert residual.std() == pytest.approx(expected, rel=0.05), (i, band)
            assert abs(residual.mean()) < 4 * expected / 64
    zps = catalog[[f"zp_{b}" for b in clusters.BANDS]]
    assert np.ptp(zps.iloc[0].to_numpy()) > 1.5 and (zps.std() > 0.01).all()     # per band and per cluster
    fwhm = catalog[[f"fwhm_{b}" for b in clusters.BANDS]].to_numpy()
    assert (np.diff(fwhm, axis=1) < 0).all() and catalog["seeing_r_arcsec"].between(1.0, 1.6).all()


def test_field_galaxies_and_stars_have_survey_densities_and_the_counts_add_up(pair):
    sky = pair[0]
    half_arcmin = sky.catalog["r_lambda_mpc"] * sky.catalog["pixel_scale_arcsec"] * 64 / 2 / 60   # sampled square
    area_deg2 = float(np.sum((2 * half_arcmin / 60) ** 2))
    objects = sky.objects
    bright_field = ((objects["kind"] == "field") & (objects["mag_r"] < 22.5)).sum()
    assert bright_field / area_deg2 == pytest.approx(1e4, rel=0.1)
    stars = ((objects["kind"] == "star") & (objects["mag_r"] < 22)).sum()
    assert 0.3 * 0.8 < stars / (area_deg2 * 3600) < 1.0 * 1.2
    inside = (objects[["x_mpc", "y_mpc"]].abs() < 1).all(axis=1)
    for kind, column in (("field", "n_field"), ("star", "n_stars")):
        counted = objects[inside & (objects["kind"] == kind)].groupby("cluster").size()
        np.testing.assert_array_equal(counted.reindex(range(6), fill_value=0), sky.catalog[column])
    # Interlopers: field galaxies inside R_λ brighter than 0.2 L* of the cluster's redshift.
    limit = lstar_model(sky.catalog["z"].to_numpy())[:, 2] + 2.5 * np.log10(5)
    field = objects[objects["kind"] == "field"]
    c = field["cluster"].to_numpy()
    counted = ((field["radius_mpc"] < sky.catalog["r_lambda_mpc"].to_numpy()[c]) & (field["mag_r"] < limit[c]))
    np.testing.assert_allclose(counted.groupby(c).sum().to_numpy(), sky.catalog["interlopers"], atol=1)
    assert set(sky.catalog.columns) == set(clusters.columns()) and sky.catalog.attrs["bands"] == list("ugriz")


def test_clusters_are_deterministic_per_cluster_and_cached(tmp_path):
    small = clusters.simulate_clusters(3, seed=5, pixels=16, progress=False)
    large = clusters.simulate_clusters(6, seed=5, pixels=16, progress=False)
    assert small.images.tobytes() == large.images[:3].tobytes()
    pd.testing.assert_frame_equal(small.catalog, large.catalog.iloc[:3])
    pd.testing.assert_frame_equal(small.objects, large.objects[large.objects["cluster"] < 3])
    assert clusters.simulate_clusters(3, seed=6, pixels=16, progress=False).images.tobytes() != small.images.tobytes()

    first = clusters.cached_clusters(3, seed=5, pixels=16, progress=False, root=tmp_path)
    again = clusters.cached_clusters(3, seed=5, pixels=16, progress=False, root=tmp_path)
    assert isinstance(again.images, np.memmap) and again.images.tobytes() == small.images.tobytes()
    pd.testing.assert_frame_equal(again.catalog, small.catalog)
    pd.testing.assert_frame_equal(again.objects, small.objects)
    assert again.catalog.attrs["bands"] == list("ugriz") and first.images.tobytes() == small.images.tobytes()
    folder = tmp_path / "clusters" / f"v{clusters.SIMULATOR_VERSION}-n3-seed5-px16"
    (folder / "images.npy").write_bytes(b"damaged")
    repaired = clusters.cached_clusters(3, seed=5, pixels=16, progress=False, root=tmp_path)
    assert repaired.images.tobytes() == small.images.tobytes()
    assert np.load(folder / "images.npy").tobytes() == small.images.tobytes()
    with pytest.raises(InputError, match="at least 1"):
        clusters.simulate_clusters(0)


def test_the_cluster_sky_is_a_data_spec_with_every_column_described():
    from training.data import load_data

    data = load_data("sim:clusters?n=4&seed=1", pixels=32, pixel_scale_arcsec=0.396, progress=False)
    assert data.images.shape == (4, 5, 32, 32) and data.images.dtype == np.float32
    assert data.catalog.attrs["bands"] == ["u", "g", "r", "i", "z"]
    assert list(data.catalog.columns[:3]) == ["id", "ra", "dec"] and data.catalog["id"].is_unique
    assert set(data.catalog.columns) <= set(data.columns)
    assert data.catalog["ra"].between(120, 250).all() and data.catalog["dec"].between(0, 60).all()
    for pixels in (8, 600):
        with pytest.raises(InputError, match="data.pixels"):
            load_data("sim:clusters?n=4&seed=1", pixels=pixels, progress=False)
    with pytest.raises(InputError, match="unknown parameter"):
        load_data("sim:clusters?n=4&input=rgb", pixels=32, progress=False)
