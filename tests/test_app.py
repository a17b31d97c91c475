"""Streamlit AppTest of each page: colour columns, map selections, coordinate queries, bad input.

AppTest cannot click the WebGL map, so a selection is fed in the way the page receives it: the
component's callback stores ``views.focus_from_map(event)`` under ``ui.FOCUS_KEY``; the test builds
that from a real-shaped event (a clicked row, or a lasso's vertices). The browser side is in
``test_browser.py``.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.app import ui, views
from tests.app_helpers import galleries, map_data
from explorer.core.bundle import load_bundle
from explorer.app.latent_map import LatentMap
from explorer.core.filters import is_numeric
from explorer.core.search import neighbours_of_row

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60


@pytest.fixture
def bundle(synthetic_bundle, monkeypatch):
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(synthetic_bundle).parent))
    return load_bundle(synthetic_bundle)


def run_app(page=None, state=None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page:
        app.switch_page(page)
    for key, value in (state or {}).items():
        app.session_state[key] = value
    return app.run() if page or state else app


def assert_no_exception(app):
    assert not app.exception, [e.value for e in app.exception]


def selectbox(app, label):
    return next(w for w in app.sidebar.selectbox if w.label == label)


def text_input(block, label):
    return next(w for w in block.text_input if w.label == label)


def click(bundle, row) -> views.Focus:
    """What the map's callback makes of a click on ``row``."""
    return views.focus_from_map({"clicked": row}, LatentMap(bundle), Path(bundle.path).resolve())


def test_without_a_bundle_the_app_says_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_BUNDLES", str(tmp_path / "empty"))
    app = run_app()
    assert_no_exception(app)
    message = app.info[0].value
    assert "make run" in message and "python -m training.demo" in message and str(tmp_path / "empty") in message


def test_explore_page_draws_the_map_coloured_by_any_column(bundle):
    app = run_app()
    assert_no_exception(app)
    assert selectbox(app, "Bundle").value == Path(bundle.path)
    categorical = next(c for c in bundle.property_columns if not is_numeric(bundle.catalog[c]))
    assert selectbox(app, "Colour by").value == categorical
    legend = map_data(app)["legend"]
    assert {(i["label"], i["count"]) for i in legend["items"]} == set(bundle.catalog[categorical].value_counts().items())

    numeric = "bend_angle_deg"
    selectbox(app, "Colour by").set_value(numeric).run()
    assert_no_exception(app)
    legend = map_data(app)["legend"]
    assert legend["kind"] == "numeric" and legend["max"] == bundle.catalog[numeric].max() and not legend["items"]
    app.sidebar.toggle[0].set_value(True).run()  # log scale: zero bend angles drawn apart
    assert_no_exception(app)
    zero = int((bundle.catalog[numeric] <= 0).sum())
    assert [i["label"] for i in map_data(app)["legend"]["items"]] == [
        f"bend_angle_deg ≤ 0 or missing (no log): {zero:,}"]
    assert map_data(app)["pointSize"] == 4.0


def test_a_click_shows_the_source_its_neighbours_and_highlights_them(bundle):
    row, k = 77, 12
    app = run_app(state={ui.FOCUS_KEY: click(bundle, row)})
    assert_no_exception(app)
    expected = neighbours_of_row(bundle, row, k)
    expected_ids = bundle.catalog["id"].iloc[expected.rows].tolist()
    (gallery,) = galleries(app)
    assert gallery.count("<figure") == k + 1
    for source_id, similarity in zip(expected_ids, expected.similarity):
        assert source_id in gallery and f"cos {similarity:.3f}" in gallery
    marks = map_data(app)["marks"]
    assert marks["source"] == row and marks["neighbours"] == expected.rows.tolist()
    assert app.image[0].captions == [bundle.catalog["id"].iat[row]] and app.get("download_button")
    assert f"{k} nearest neighbours of {bundle.catalog['id'].iat[row]}" in app.subheader[0].value

    app.slider(key="explore.k").set_value(5).run()  # k is adjustable
    assert galleries(app)[0].count("<figure") == 6
    app.toggle(key="explore.dedup").set_value(True).run()
    assert_no_exception(app)
    assert any("duplicates within 30″ merged" in c.value for c in app.caption)


def test_a_box_selection_shows_a_capped_gallery_and_a_download(bundle):
    rows = list(range(0, 300, 5))  # 60 sources, more than the gallery shows
    focus = views.Focus(str(Path(bundle.path).resolve()), "selection", tuple(rows))
    app = run_app(state={ui.FOCUS_KEY: focus})
    assert_no_exception(app)
    assert app.subheader[0].value == f"Selection: {len(rows)} sources"
    assert galleries(app)[0].count("<figure") == views.SELECTION_GALLERY_CAP
    assert any(f"first {views.SELECTION_GALLERY_CAP} of {len(rows)}" in c.value for c in app.caption)
    assert app.get("download_button")
    marks = map_data(app)["marks"]
    assert marks["source"] is None and marks["selection"] == rows


def test_a_bad_bundle_path_is_an_error_and_the_app_keeps_working(bundle, tmp_path):
    app = run_app()
    text_input(app.sidebar, "…or open a bundle folder").input("nope").run()
    assert_no_exception(app)
    assert "no bundle named 'nope' in the bundle folder" in app.sidebar.error[0].value
    assert map_data(app)  # still showing the listed bundle
    broken = bundle.path.parent / f"broken-{tmp_path.name}"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")
    text_input(app.sidebar, "…or open a bundle folder").input(broken.name).run()
    error = app.sidebar.error[0].value
    assert "is not a complete bundle: missing" in error and str(bundle.path.parent) not in error
    assert map_data(app)
    for outside in (str(tmp_path / "nope"), "/etc", "../.."):  # existing or not: the same words, no server path
        text_input(app.sidebar, "…or open a bundle folder").input(outside).run()
        assert "only bundles inside the explorer's bundle folder" in app.sidebar.error[0].value


def test_a_search_result_can_be_shown_on_the_map(bundle):
    row = 321
    app = run_app(page=ui.SEARCH_PAGE)
    text_input(app.main, "Object name or sky position").input(f"{bundle.catalog.ra[row]} {bundle.catalog.dec[row]}").run()
    next(b for b in app.button if b.label == "Show on the map").click().run()
    assert_no_exception(app)
    assert map_data(app)["marks"]["source"] == row  # now on the Explore page, the source highlighted
    assert f"nearest neighbours of {bundle.catalog['id'].iat[row]}" in app.subheader[0].value


def with_quality(bundle_path: Path, folder: Path, not_beaten: list[str]) -> Path:
    """A copy of a bundle whose manifest carries a learned-vs-baselines comparison, as training.embed writes it."""
    import shutil

    copy = folder / "compared"
    shutil.copytree(bundle_path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["quality"] = {"baselines": {"comparison": [
        {"score": "class_accuracy_from_embeddings", "column": "morphology", "learned": 0.71, "random init": 0.83,
         "pixels": 0.80, "chance": 0.25, "sources": 600},
        {"score": "monitor_linear", "column": "morphology", "learned": 0.90, "random init": 0.75, "pixels": 0.70,
         "epoch": 6}], "not_beaten": not_beaten}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("losing", [True, False])
def test_the_bundle_panel_flags_an_encoder_that_does_not_beat_random_init(synthetic_bundle, tmp_path, monkeypatch,
                                                                          losing):
    copy = with_quality(Path(synthetic_bundle), tmp_path, ["class_accuracy_from_embeddings"] if losing else [])
    monkeypatch.setenv("EXPLORER_BUNDLES", str(tmp_path))
    app = run_app()
    assert_no_exception(app)
    warnings = [w.value for w in app.sidebar.warning]
    if losing:
        assert any("no better than a random-init encoder" in w and "class accuracy, k-NN on the embeddings" in w
                   for w in warnings), warnings
    else:
        assert not any("random-init" in w for w in warnings)
    (table,) = [d for d in app.sidebar.dataframe if "random init" in d.value.columns]
    assert list(table.value["learned"]) == [0.71, 0.90] and copy.name in str(selectbox(app, "Bundle").value)


def test_the_log_switch_belongs_to_its_column(bundle):
    app = run_app()
    selectbox(app, "Colour by").set_value("bend_angle_deg").run()
    app.sidebar.toggle[0].set_value(True).run()
    selectbox(app, "Colour by").set_value("ra").run()
    assert_no_exception(app)
    assert app.sidebar.toggle[0].value is False  # RA is not drawn on a log scale because bend angle was


def test_sources_without_map_coordinates_are_left_out_and_the_page_says_how_many(synthetic_bundle, tmp_path,
                                                                               monkeypatch):
    import hashlib
    import shutil

    copy = shutil.copytree(synthetic_bundle, tmp_path / "bundles" / "unplaced")
    map_xy = np.load(copy / "map.npy")
    map_xy[[3, 30, 300]] = np.nan
    np.save(copy / "map.npy", map_xy)
    manifest = json.loads((copy / "manifest.json").read_text())
    data = (copy / "map.npy").read_bytes()
    manifest["files"]["map.npy"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("EXPLORER_BUNDLES", str(copy.parent))
    app = run_app()
    assert_no_exception(app)
    n = len(map_xy)
    assert any(f"3 of {n:,} sources have no map coordinates" in c.value for c in app.caption)
    assert map_data(app)["shown"] == n - 3
