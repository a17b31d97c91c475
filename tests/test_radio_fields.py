"""Paper 3's labels: islands and peaks (iC_jP), simulated fields, and boxes on the sky."""
import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy import ndimage

from explorer.core.detector import box_to_sky, sky_to_box
from explorer.core.islands import CLASSES, OUT_OF_SCOPE, background_rms, find_islands, morphology_class
from training import radio_fields, simulate

SIZE = 132


def gaussian(x0, y0, sigma, amplitude):
    y, x = np.mgrid[:SIZE, :SIZE]
    return amplitude * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma ** 2))


@pytest.fixture(scope="module")
def noise():
    """Unit-rms noise correlated over a beam, like a radio image's."""
    field = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal((SIZE, SIZE)), 1.6)
    return field / field.std()


@pytest.mark.parametrize("blobs, components, peaks", [
    ([(66, 66, 2.0, 30)], 1, 1),                                           # a compact source
    ([(60, 66, 3.0, 30), (70, 66, 3.0, 25)], 1, 2),                       # two peaks joined above 4 sigma
    ([(40, 66, 2.5, 30), (92, 66, 2.5, 30)], 2, 2),                       # a classical double
    ([(30, 66, 2.5, 30), (66, 66, 2.5, 15), (102, 66, 2.5, 30)], 3, 3),   # core and two lobes apart
    ([(56, 66, 3.0, 30), (66, 66, 3.0, 22), (76, 66, 3.0, 30)], 1, 3),   # core and lobes in one island
    ([(66, 66, 9.0, 40)], 1, 1),                                           # a broad lobe: ripples are no peaks
])
def test_islands_and_peaks_count_the_components_and_summits_that_were_drawn(noise, blobs, components, peaks):
    image = sum(gaussian(*b) for b in blobs) + noise
    islands = find_islands(image)
    assert len(islands) == components
    assert sum(len(i.peaks) for i in islands) == peaks
    drawn = {(y, x) for x, y, *_ in blobs}
    found = {p for i in islands for p in i.peaks}
    assert all(min(np.hypot(y - fy, x - fx) for fy, fx in found) <= 1.5 for y, x in drawn)


def test_faint_islands_need_a_seed_pixel_and_sigma_is_measured_from_the_image(noise):
    assert background_rms(3.0 * noise + gaussian(66, 66, 2.0, 60)) == pytest.approx(3.0, rel=0.05)
    # A 4.5-sigma blob floods above 4 sigma but has no 5-sigma seed: not a component.
    assert find_islands(gaussian(66, 66, 3.0, 4.5) + 0.01 * noise, sigma=1.0) == []
    with pytest.raises(ValueError, match="positive"):
        find_islands(noise, sigma=0.0)


def test_classes_are_paper_3s_six_and_the_rest_is_out_of_scope():
    assert [morphology_class(c, p) for c, p in [(1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]] == list(CLASSES)
    assert morphology_class(2, 4) == OUT_OF_SCOPE and morphology_class(4, 4) == OUT_OF_SCOPE


def test_a_box_goes_to_the_sky_and_back_within_half_a_pixel():
    wcs = radio_fields.field_wcs(150.1, 2.2)
    boxes = np.array([[10.0, 20.0, 40.0, 50.0], [100.5, 3.25, 130.0, 32.75], [60.0, 60.0, 70.0, 70.0]])
    centre, side = box_to_sky(boxes, wcs)
    assert side.unit == u.arcsec
    np.testing.assert_allclose(side.value, (boxes[:, 2] - boxes[:, 0]) * radio_fields.FIELD_SCALE_ARCSEC, rtol=1e-3)
    # A box's centre is where the WCS puts that pixel: compare with a SkyCoord offset from the field centre.
    middle = SkyCoord(150.1 * u.deg, 2.2 * u.deg)
    x, y = wcs.world_to_pixel(middle)
    assert (x, y) == pytest.approx(((SIZE - 1) / 2, (SIZE - 1) / 2))
    back = sky_to_box(centre, side, wcs)
    assert np.abs(back - boxes).max() < 0.5


@pytest.fixture(scope="module")
def fields():
    return radio_fields.simulate_fields(40, seed=3, progress=False)


def test_field_sources_are_labelled_by_the_island_code_run_on_the_field(fields):
    images, catalogue, sources = fields.images, fields.catalog, fields.sources
    assert images.shape == (40, SIZE, SIZE) and images.dtype == np.float32
    assert list(catalogue["id"]) == list(dict.fromkeys(sources["field"]))
    assert (sources.groupby("field").size().reindex(catalogue["id"]).to_numpy() == catalogue["n_sources"]).all()
    for f in range(len(catalogue)):
        mine = sources[sources["field"] == catalogue["id"][f]]
        islands = find_islands(images[f])
        assert mine["components"].sum() == len(islands)              # every island goes to one source
        assert mine["peaks"].sum() == sum(len(i.peaks) for i in islands)
        expected = [morphology_class(c, p) if c else OUT_OF_SCOPE for c, p in zip(mine["components"], mine["peaks"])]
        assert list(mine["det_class"]) == expected
        assert catalogue["in_scope"][f] == (OUT_OF_SCOPE not in expected)


def test_field_boxes_are_squares_of_side_las_inside_the_field_and_apart(fields):
    catalogue, sources = fields.catalog, fields.sources
    side = sources["x1"] - sources["x0"]
    np.testing.assert_allclose(side, sources["y1"] - sources["y0"], atol=1e-6)
    np.testing.assert_allclose(side * radio_fields.FIELD_SCALE_ARCSEC,
                               np.maximum(sources["las_arcsec"], radio_fields.FIELD_SCALE_ARCSEC), atol=0.01)
    assert (sources[["x0", "y0"]] >= -0.5).all().all() and (sources[["x1", "y1"]] <= SIZE - 0.5).all().all()
    for _, mine in sources.groupby("field"):
        boxes = mine[["x0", "y0", "x1", "y1"]].to_numpy()
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                overlap_x = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                overlap_y = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                assert min(overlap_x, overlap_y) < 1.0
    # Each source's sky position is its box centre through the field's WCS.
    for _, row in sources.iterrows():
        field = catalogue.set_index("id").loc[row["field"]]
        centre, _ = box_to_sky(row[["x0", "y0", "x1", "y1"]].to_numpy(float),
                                            radio_fields.field_wcs(field["ra"], field["dec"]))
        assert centre.separation(SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)) < 0.01 * u.arcsec
    assert set(sources["det_class"]) - {OUT_OF_SCOPE} >= {"1C_1P", "2C_2P"}


def test_field_catalogue_directory_is_kept_when_complete_and_readable(tmp_path):
    out = radio_fields.simulate_fields_to_directory(tmp_path / "fields", n=6, seed=1, progress=False)
    table = pd.read_csv(out / "catalog.csv")
    sources = radio_fields.read_sources(out)
    assert len(table) == 6 and (out / table["file"][0]).is_file()
    stamp = (out / "catalog.csv").stat().st_mtime_ns
    radio_fields.simulate_fields_to_directory(out, n=6, seed=1, progress=False)
    assert (out / "catalog.csv").stat().st_mtime_ns == stamp
    from astropy.io import fits
    with fits.open(out / table["file"][0]) as hdul:
        assert hdul[0].data.shape == (SIZE, SIZE) and hdul[0].header["BUNIT"] == "Jy/beam"
    assert set(sources["field"]) == set(table["id"])
    assert simulate.NOISE_JY_PER_BEAM == pytest.approx(background_rms(fits.getdata(out / table["file"][0])), rel=0.3)


def test_each_field_has_a_w1_image_with_the_host_at_every_radio_core_and_w1_noise(fields):
    from training import infrared

    assert fields.infrared.shape == fields.images.shape and fields.infrared.dtype == np.float32
    # The noise: W1's per-pixel rms, which makes a 16.9 mag point source a 5 sigma detection.
    rms = np.median([background_rms(w) for w in fields.infrared])
    assert rms == pytest.approx(infrared.NOISE_DN, rel=0.1)
    # Bright hosts sit at their radio source's core: a PSF-sized aperture there holds the host's flux.
    y, x = np.mgrid[:SIZE, :SIZE]
    ratios = []
    for f, field_id in enumerate(fields.catalog["id"]):
        for _, s in fields.boxes(f).iterrows():
            if s["w1_host_mag"] > 15:
                continue
            aperture = (x - s["core_x"]) ** 2 + (y - s["core_y"]) ** 2 <= (3 * infrared.PSF_SIGMA_PX) ** 2
            ratios.append(fields.infrared[f][aperture].sum() / infrared.flux_dn(s["w1_host_mag"]))
    assert len(ratios) >= 10
    assert 0.9 < np.median(ratios) < 1.2, ratios           # 0.99 of a Gaussian lies inside 3 sigma; neighbours add
    # ... and the cores are where the radio is: a compact source peaks on its core.
    compact = fields.sources[(fields.sources["morphology"] == "compact") & (fields.sources["det_class"] == "1C_1P")]
    assert len(compact) >= 3
    for _, s in compact.iterrows():
        image = fields.images[list(fields.catalog["id"]).index(s["field"])]
        near = np.where(np.hypot(x - s["core_x"], y - s["core_y"]) < 6, image, -np.inf)
        cy, cx = np.unravel_index(np.argmax(near), near.shape)
        assert np.hypot(cx - s["core_x"], cy - s["core_y"]) < 2


def test_w1_images_go_to_the_w1_extension_and_come_back(tmp_path):
    from astropy.io import fits

    out = radio_fields.simulate_fields_to_directory(tmp_path / "fields", n=3, seed=2, progress=False)
    direct = radio_fields.simulate_fields(3, seed=2, progress=False)
    again = radio_fields.open_fields(str(out), progress=False)
    np.testing.assert_array_equal(again.infrared, direct.infrared)
    np.testing.assert_array_equal(again.images, direct.images)
    with fits.open(out / again.catalog["file"][0]) as hdus:
        assert hdus["W1"].header["BUNIT"] == "DN" and hdus["W1"].header["MAGZP"] == 20.5
        assert hdus["W1"].header["CRVAL1"] == hdus[0].header["CRVAL1"] == pytest.approx(again.catalog["ra"][0])
    assert again.in_scope().infrared.shape[0] == int(again.catalog["in_scope"].sum())


def test_the_paper_mix_draws_fields_towards_paper_3s_class_counts(fields):
    target = pd.Series(radio_fields.PAPER_TRAIN_MIX) / sum(radio_fields.PAPER_TRAIN_MIX.values())

    def distance(f):
        share = f.sources["det_class"].value_counts(normalize=True).reindex(target.index, fill_value=0)
        return float((share - target).abs().sum())

    mixed = radio_fields.paper_mix(fields, 12, seed=0)
    assert len(mixed.catalog) == 12 and mixed.catalog["in_scope"].all()
    assert distance(mixed) < distance(fields.in_scope())
    assert list(mixed.catalog["id"]) == list(radio_fields.paper_mix(fields, 12, seed=0).catalog["id"])
    rows = [list(fields.catalog["id"]).index(i) for i in mixed.catalog["id"]]
    np.testing.assert_array_equal(mixed.images, fields.images[rows])
    np.testing.assert_array_equal(mixed.infrared, fields.infrared[rows])


def test_an_unknown_class_mix_is_one_clear_message(tmp_path):
    from explorer.core.errors import InputError

    with pytest.raises(InputError, match="class mix must be one of simulated, paper"):
        radio_fields.simulate_fields_to_directory(tmp_path / "f", n=2, seed=0, mix="balanced")
