"""AppTest of the Detect page: an uploaded real FIRST image gets boxes, classes, P and RA/Dec; the P filter."""
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.coordinates import SkyCoord
from streamlit.testing.v1 import AppTest

from explorer.app import detections, ui
from explorer.core.detector import FIELD_PIXELS, FIELD_SCALE_ARCSEC, DetectorConfig, build_detector
from explorer.core.sky.upload import read_uploaded_fits
from tests.sky_fixtures import MIRABEST, mirabest_file

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def page_env(synthetic_bundle, monkeypatch, tmp_path):
    """A bundle for the sidebar and one detector in $EXPLORER_HOME/detectors (random init: the page, not its skill)."""
    if not MIRABEST.is_dir():
        pytest.skip(f"real FIRST images not found at {MIRABEST}")
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(synthetic_bundle).parent))
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    run = tmp_path / "home" / "detectors" / "tiny-detector"
    run.mkdir(parents=True)
    torch.manual_seed(0)
    config = DetectorConfig(input_size=132, fpn_channels=16, box_head=32)
    torch.save({"detector": config.to_dict(), "model": build_detector(config).state_dict()}, run / "checkpoint.pt")
    (run / detections.MARKER).write_text("{}")
    return run


def detect_page(path: Path, confident: bool) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(ui.DETECT_PAGE)
    app.run()
    app.toggle(key="detect.filter").set_value(confident)
    app.file_uploader(key="detect.upload").set_value((path.name, path.read_bytes(), "application/fits"))
    return app.run()


def test_an_uploaded_first_image_shows_boxes_with_classes_and_sky_positions(page_env):
    path = mirabest_file(0)
    app = detect_page(path, confident=False)
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert len(table) == 5                                      # paper 3: 5 proposals kept at test time
    shapes = app.get("plotly_chart")[0].proto.spec
    assert shapes.count('"type":"rect"') == len(table)
    # Each row's RA/Dec is its box's centre on the uploaded image's sky: within the field around its centre.
    field, wcs = read_uploaded_fits(path.read_bytes(), path.name, expected_pixel_scale_arcsec=FIELD_SCALE_ARCSEC,
                                    resample=True, pixels=FIELD_PIXELS)
    centre = wcs.pixel_to_world((FIELD_PIXELS - 1) / 2, (FIELD_PIXELS - 1) / 2)
    positions = SkyCoord(table["ra"].to_numpy() * u.deg, table["dec"].to_numpy() * u.deg)
    assert (positions.separation(centre) < FIELD_PIXELS * FIELD_SCALE_ARCSEC / 2 * np.sqrt(2) * u.arcsec).all()
    assert set(table["det_class"]) <= set(DetectorConfig().classes)

    filtered = detect_page(path, confident=True).dataframe[0].value
    expected = (table["det_prob"] >= 0.8).sum() or 1
    assert len(filtered) == expected and filtered["det_prob"].max() == pytest.approx(table["det_prob"].max(), abs=1e-6)


def test_the_detect_page_without_a_detector_says_how_to_train_one(synthetic_bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(synthetic_bundle).parent))
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(detections, "REPO_ROOT", tmp_path)
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(ui.DETECT_PAGE)
    app.run()
    assert not app.exception
    assert any("python -m training.detector" in i.value for i in app.info)


def test_a_bad_upload_is_one_clear_message(page_env):
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(ui.DETECT_PAGE)
    app.run()
    app.file_uploader(key="detect.upload").set_value(("notes.fits", b"not a FITS file", "application/fits"))
    app.run()
    assert not app.exception and len(app.error) == 1 and "notes.fits" in app.error[0].value


@pytest.mark.browser
def test_in_a_real_browser_an_uploaded_fits_shows_boxes(page_env, synthetic_bundle):
    from benchmarks.browser import CHROMIUM, LAUNCH_ARGS, streamlit_app

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    path = mirabest_file(0)
    with streamlit_app(Path(synthetic_bundle).parent) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.get_by_role("link", name="Detect").click()
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
        page.wait_for_selector(".js-plotly-plot .shapelayer path", timeout=90_000)
        boxes = page.locator(".js-plotly-plot .shapelayer path").count()
        labels = page.locator(".js-plotly-plot .annotation-text").all_text_contents()
        out = Path(__file__).resolve().parents[1] / "test-artifacts"
        out.mkdir(exist_ok=True)
        page.screenshot(path=str(out / "detect_upload.png"), full_page=True)
        browser.close()
    assert boxes >= 1 and len(labels) == boxes, (boxes, labels)
    assert all(label.split()[1] in DetectorConfig().classes for label in labels), labels
    assert not errors, errors


@pytest.fixture(scope="module")
def mirabest_bundle(tmp_path_factory):
    if not MIRABEST.is_dir():
        pytest.skip(f"real FIRST images not found at {MIRABEST}")
    from tests.sky_fixtures import build_mirabest_bundle

    return build_mirabest_bundle(tmp_path_factory.mktemp("detect-bundles") / "mirabest-every60", every=60)


@pytest.fixture
def real_env(page_env, mirabest_bundle, monkeypatch):
    """The Detect page over a bundle of real FIRST images (built from a local FITS folder)."""
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(mirabest_bundle).parent))
    return mirabest_bundle


def within_field(table, centre: SkyCoord) -> bool:
    positions = SkyCoord(table["ra"].to_numpy() * u.deg, table["dec"].to_numpy() * u.deg)
    return bool((positions.separation(centre) < FIELD_PIXELS * FIELD_SCALE_ARCSEC / 2 * np.sqrt(2) * u.arcsec).all())


def test_one_click_on_a_detection_searches_the_bundle_with_its_cutout(real_env):
    from explorer.app import views
    from explorer.core.bundle import load_bundle
    from explorer.core.sky.upload import read_uploaded_image
    from tests.app_helpers import galleries

    path = mirabest_file(3)
    app = detect_page(path, confident=True)
    table = app.dataframe[0].value
    app.button(key="detect.search.1").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert galleries(app) and "query" in galleries(app)[0]
    neighbours = app.dataframe[-1].value
    assert len(neighbours) == views.DEFAULT_K
    # The same neighbours as cutting detection 1 out of the upload at the bundle's scale and searching it.
    bundle = load_bundle(real_env)
    image, wcs = read_uploaded_image(path.read_bytes(), path.name)
    expected = detections.search_detection(bundle, detections.field_from_image(image, wcs, path.name), table.iloc[0],
                                           views.DEFAULT_K)
    assert list(neighbours["id"]) == list(bundle.catalog["id"].to_numpy()[expected.neighbours.rows])
    # The search stays on screen through other reruns (here: the filter toggled off and on).
    app.toggle(key="detect.filter").set_value(False).run()
    app.toggle(key="detect.filter").set_value(True).run()
    assert len(app.dataframe[-1].value) == views.DEFAULT_K


def test_a_field_by_coordinates_is_fetched_from_the_survey_and_detected(real_env, monkeypatch):
    from tests.sky_fixtures import mirabest_catalog
    from tests.survey_server import SurveyServer

    target = mirabest_catalog().iloc[5]
    with SurveyServer() as server:
        monkeypatch.setenv("EXPLORER_HIPS2FITS_URL", server.hips2fits_url)
        app = AppTest.from_file(APP, default_timeout=120).run()
        app.switch_page(ui.DETECT_PAGE)
        app.run()
        app.button_group(key="detect.mode").set_value("Name or coordinates").run()
        source = next(s for s in app.selectbox if s.label == "Radio image from")
        source.set_value(next(o for o in source.options if "hips2fits" in o)).run()
        next(w for w in app.main.text_input if w.key == "detect.position").input(f"{target.ra} {target.dec}")
        app.run()
        assert sum(v for k, v in server.hits.items() if k.startswith("hips")) >= 1
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert within_field(app.dataframe[0].value, SkyCoord(target.ra * u.deg, target.dec * u.deg))


def test_a_field_from_the_bundles_local_collection_is_detected(real_env):
    from explorer.core.fitsio import catalogue_files

    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(ui.DETECT_PAGE)
    app.run()
    app.button_group(key="detect.mode").set_value("Local collection").run()
    app.selectbox(key="detect.local_source").set_value(2).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    rows = catalogue_files(Path(real_env).parent / f".{Path(real_env).name}-catalogue")[0]
    table = app.dataframe[0].value
    assert within_field(table, SkyCoord(rows["ra"][2] * u.deg, rows["dec"][2] * u.deg))
    assert rows["id"][2] in app.get("plotly_chart")[0].proto.spec


def test_sending_detections_over_samp_without_a_hub_says_so(page_env, monkeypatch, tmp_path):
    monkeypatch.setenv("SAMP_HUB", "std-lockurl:file://" + str(tmp_path / "no-hub-here"))
    app = detect_page(mirabest_file(0), confident=True)
    next(b for b in app.button if b.label.startswith("Send to TOPCAT")).click().run()
    assert not app.exception
    assert app.error[0].value == "no SAMP hub is running; start TOPCAT or Aladin"
    assert app.get("plotly_chart")                                   # the detections stay on screen


def test_a_field_from_a_folder_of_images_in_the_collections_is_found_by_position(page_env, tmp_path):
    import shutil

    from tests.sky_fixtures import mirabest_catalog

    row = mirabest_catalog().iloc[7]
    mosaic = tmp_path / "home" / "collections" / "first-tiles"         # a plain folder of images, no catalog.csv
    mosaic.mkdir(parents=True)
    shutil.copy(MIRABEST / row["file"], mosaic / Path(row["file"]).name)
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(ui.DETECT_PAGE)
    app.run()
    app.button_group(key="detect.mode").set_value("Local collection").run()
    assert app.selectbox(key="detect.collection").value == "first-tiles (collections)"
    next(w for w in app.main.text_input if w.key == "detect.position").input(f"{row.ra} {row.dec}")
    app.run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert within_field(app.dataframe[0].value, SkyCoord(row.ra * u.deg, row.dec * u.deg))
