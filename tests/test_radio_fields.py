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
    images, catalogue, sources = fields
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
    _, catalogue, sources = fields
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
