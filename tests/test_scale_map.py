"""A map that scales: 50,500 sources, every one drawn and selectable, the page's data still small."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.synthetic import synthetic_bundle
from explorer.app import ui, views
from explorer.app.latent_map import LatentMap
from explorer.core.bundle import load_bundle
from tests.app_helpers import map_data

APP = str(Path(__file__).resolve().parents[1] / "app.py")
N = 50_500


@pytest.fixture(scope="module")
def large_bundle(tmp_path_factory):
    """Past where the Plotly map turned into a density image plus a 10k sample."""
    return synthetic_bundle(tmp_path_factory.mktemp("large") / "survey", n=N, dim=16, pixels=16, seed=4, survey=True)


def test_the_app_draws_every_source_and_lists_a_large_selection(large_bundle, monkeypatch):
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(large_bundle).parent))
    bundle = load_bundle(large_bundle)
    app = AppTest.from_file(APP, default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    data = map_data(app)
    assert data["n"] == data["shown"] == N and data["keep"] is None  # every source, no sample
    assert sum(i["count"] for i in data["legend"]["items"]) == N
    assert len(json.dumps(data)) < 5_000  # positions and colours are not in the rerun's message

    rows = LatentMap(bundle).rows_in_polygon([-1, 0, 0, -1], [-1, -1, 1, 1])
    assert len(rows) > 10_000
    app.session_state[ui.FOCUS_KEY] = views.Focus(str(Path(large_bundle).resolve()), "selection", tuple(rows.tolist()))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.subheader[0].value == f"Selection: {len(rows):,} sources"
    assert len(map_data(app)["marks"]["selection"]) == views.SELECTION_OVERLAY_CAP  # ringed in part
    assert app.get("download_button")


@pytest.mark.browser
def test_a_box_dragged_in_the_browser_lists_every_source_inside_it(large_bundle):
    """The real app in headless Chromium: a box dragged with the mouse is every catalogue source inside it."""
    from benchmarks.browser import CHROMIUM, LAUNCH_ARGS, streamlit_app
    from benchmarks.map_drivers import ComponentMap

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with streamlit_app(Path(large_bundle).parent) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(url)
        component = ComponentMap()
        page.wait_for_function(component.painted, timeout=120_000)
        result = component.box(page, 0.15, 0.85)
        browser.close()
    assert result["box_listed"] == result["box_inside"] > 1_000
