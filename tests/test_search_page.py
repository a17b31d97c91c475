"""AppTest of the Similarity search page: coordinates, names, fetched cutouts and uploads, with bad input."""
from pathlib import Path

import astropy.units as u
import pytest
from streamlit.testing.v1 import AppTest

from explorer.app import map_server, ui, views
from tests.app_helpers import galleries, map_data
from explorer.core.bundle import load_bundle
from explorer.core.search import neighbours_of_row
from tests.sky_fixtures import MIRABEST, build_mirabest_bundle, mirabest_catalog, mirabest_file
from tests.survey_server import SurveyServer

APP = str(Path(__file__).resolve().parents[1] / "app.py")
POSITION = "Object name or sky position"
needs_mirabest = pytest.mark.skipif(not MIRABEST.is_dir(), reason=f"real FIRST images not found at {MIRABEST}")


@pytest.fixture
def bundle(synthetic_bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(synthetic_bundle).parent))
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    return load_bundle(synthetic_bundle)


@pytest.fixture(scope="module")
def mirabest_bundle(tmp_path_factory):
    if not MIRABEST.is_dir():
        pytest.skip(f"real FIRST images not found at {MIRABEST}")
    return build_mirabest_bundle(tmp_path_factory.mktemp("search-bundles") / "mirabest-every11")


@pytest.fixture
def real_bundle(mirabest_bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(mirabest_bundle).parent))
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    return load_bundle(mirabest_bundle)


@pytest.fixture
def server(monkeypatch):
    with SurveyServer() as s:
        monkeypatch.setenv("EXPLORER_SESAME_URL", s.sesame_url)
        monkeypatch.setenv("EXPLORER_SKYVIEW_URL", s.skyview_url)
        monkeypatch.setenv("EXPLORER_HIPS2FITS_URL", s.hips2fits_url)
        yield s


def search_page() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(ui.SEARCH_PAGE)
    return app.run()


def upload(name: str, data: bytes) -> AppTest:
    """The search page with a file uploaded."""
    app = search_page()
    app.button_group(key="search.mode").set_value("Upload a FITS cutout").run()
    app.file_uploader(key="search.upload").set_value((name, data, "application/fits"))
    return app.run()


def type_query(app, text, survey=None) -> AppTest:
    if survey is not None:
        next(s for s in app.selectbox if s.label.startswith("When no catalogue source")).set_value(survey)
    next(w for w in app.main.text_input if w.label == POSITION).input(text)
    return app.run()


def assert_no_exception(app):
    assert not app.exception, [e.value for e in app.exception]


def test_typed_coordinates_find_the_catalogue_source_and_its_neighbours(bundle):
    row = 123
    source = views.catalog_coords(bundle)[row]
    typed = source.directional_offset_by(45 * u.deg, 2 * u.arcsec).to_string("hmsdms", sep=":", precision=3)
    app = type_query(search_page(), typed)
    assert_no_exception(app)
    success = app.success[0].value
    assert bundle.catalog["id"].iat[row] in success and "2.00″" in success
    gallery = galleries(app)[0]
    expected = neighbours_of_row(bundle, row, views.DEFAULT_K)
    assert all(i in gallery for i in bundle.catalog["id"].iloc[expected.rows])
    labels = {b.label for b in app.get("download_button")}
    assert {"CSV", "VOTable"} <= labels
    table = app.dataframe[-1].value
    assert table["simbad"].str.startswith("https://simbad").all() and table["ned"].str.contains("ned.ipac").all()


@pytest.mark.parametrize("typed, message", [
    ("206.4 95", "out of range"),
    ("25:00:00 +10:00:00", "out of range"),
])
def test_bad_coordinates_are_explained(bundle, typed, message):
    app = type_query(search_page(), typed)
    assert_no_exception(app)
    assert message in app.error[0].value
    assert not galleries(app)


def test_nothing_within_the_radius_is_said_plainly(bundle):
    app = type_query(search_page(), "0.0 -80.0")
    assert_no_exception(app)
    assert "no catalogue source within 10" in app.error[0].value and not galleries(app)


def test_object_names_resolve_through_sesame(bundle, server):
    app = type_query(search_page(), "3C 273")
    assert_no_exception(app)
    assert any("12:29:06.7" in c.value for c in app.main.caption)  # the resolved position is shown
    assert server.hits["sesame"] == 1
    unknown = type_query(app, "no such object xyz")
    assert "unknown name: no such object xyz" in unknown.error[0].value


def test_offline_name_resolution_is_a_clear_message(bundle, monkeypatch):
    from tests.survey_server import closed_port_url

    monkeypatch.setenv("EXPLORER_SESAME_URL", closed_port_url("/sesame/"))
    app = type_query(search_page(), "M 87")
    assert_no_exception(app)
    assert app.error[0].value == "offline: cannot resolve names; enter coordinates"


@needs_mirabest
@pytest.mark.parametrize("survey_label", ["this bundle's FITS images", "from SkyView"])
def test_a_position_outside_the_catalogue_is_searched_with_a_fetched_cutout(real_bundle, server, survey_label):
    from astropy.coordinates import SkyCoord

    catalog = mirabest_catalog()
    if "SkyView" in survey_label:
        target = catalog.iloc[5]  # every 11th row is in the bundle, so row 5 is not; the survey has it
        typed = f"{target.ra} {target.dec}"
    else:  # 40" from a bundle source: outside the match radius, inside that source's own FITS image
        centre = SkyCoord(catalog.ra.iloc[0] * u.deg, catalog.dec.iloc[0] * u.deg)
        shifted = centre.directional_offset_by(90 * u.deg, 40 * u.arcsec)
        typed = f"{shifted.ra.deg} {shifted.dec.deg}"
    app = search_page()
    survey = next(o for o in next(s for s in app.selectbox if s.label.startswith("When no")).options if survey_label in o)
    app = type_query(app, typed, survey=survey)
    assert_no_exception(app)
    assert "Searching with the cutout from" in app.warning[0].value
    assert galleries(app) and "query" in galleries(app)[0]
    assert len(app.dataframe[-1].value) == views.DEFAULT_K
    if "SkyView" in survey_label:
        assert server.hits["skyview-query"] >= 1


@needs_mirabest
def test_an_uploaded_fits_cutout_is_embedded_and_searched(real_bundle):
    path = mirabest_file(7)
    app = upload(path.name, path.read_bytes())
    assert_no_exception(app)
    assert galleries(app) and "query" in galleries(app)[0]
    table = app.dataframe[-1].value
    assert len(table) == views.DEFAULT_K
    # drawn on the map where search placed it: the similarity-weighted mean of its neighbours' positions
    import numpy as np

    data = map_data(app, "search.map")
    star = map_server.served(data["token"]).from_ndc(*data["marks"]["placed"])
    rows = [int(np.flatnonzero(real_bundle.catalog["id"].to_numpy() == i)[0]) for i in table["id"]]
    weights = table["cosine_similarity"].to_numpy()  # rounded to 4 decimals in the table
    expected = (real_bundle.map_xy[rows] * weights[:, None]).sum(0) / weights.sum()
    np.testing.assert_allclose(star, expected, rtol=1e-3, atol=1e-3)


@needs_mirabest
def test_an_upload_that_is_not_fits_is_rejected_clearly(real_bundle):
    app = upload("notes.fits", b"this is not a FITS file")
    assert_no_exception(app)
    assert "notes.fits" in app.error[0].value and not galleries(app)


def test_sending_results_over_samp_without_a_hub_says_so(bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:file://" + str(tmp_path / "no-hub-here"))  # never a running hub
    row = 42
    app = type_query(search_page(), f"{bundle.catalog.ra[row]} {bundle.catalog.dec[row]}")
    next(b for b in app.button if b.label.startswith("Send to TOPCAT")).click().run()
    assert_no_exception(app)
    assert app.error[0].value == "no SAMP hub is running; start TOPCAT or Aladin"
    assert galleries(app)  # the results stay on screen


@needs_mirabest
def test_an_upload_unlike_the_bundle_is_warned_about(mirabest_bundle, tmp_path, monkeypatch):
    """The typicality warning on the page: a bundle whose sources all have a near-twin (nearest-neighbour
    similarity percentiles at 0.9999) makes any real upload less typical than 99 % of them."""
    import json
    import shutil

    copy = tmp_path / "bundles" / "twins"
    shutil.copytree(mirabest_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["quality"]["neighbourhood"] = {**manifest["quality"].get("neighbourhood", {}),
                                            "nearest_similarity_percentiles": [0.9999] * 101}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("EXPLORER_BUNDLES", str(copy.parent))
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    path = mirabest_file(7)
    app = upload(path.name, path.read_bytes())
    assert_no_exception(app)
    assert any("This query is unlike anything in" in w.value for w in app.warning), [w.value for w in app.warning]
