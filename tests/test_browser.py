"""The real app in a real browser: ``streamlit run app.py`` on a free port, driven by headless Chromium.

The map is the WebGL component (``explorer/app/frontend``). Tests find a source on screen through the
component's own camera (``positionOf``), then hover, click, zoom and lasso with the real mouse.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks.browser import (CHROMIUM, LAUNCH_ARGS, REPO, VIEW, click_source, lasso_rows, map_ready,
                                screen_positions, streamlit_app)
from explorer.app import views
from explorer.core.bundle import load_bundle
from explorer.core.search import neighbours_of_row

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
MAP = "explore.map"


def isolated_row(page, key=MAP, clearance=14.0) -> tuple[int, float, float]:
    """A drawn source with no other within ``clearance`` px, so the mouse cannot land on a neighbour."""
    xy = screen_positions(page, key)
    shown = np.flatnonzero(np.isfinite(xy[:, 0]))
    # keep clear of the legend (top right) and the toolbar
    box = page.evaluate(f"() => window.__explorerMaps['{key}'].legend.getBoundingClientRect().toJSON()")
    for row in shown:
        x, y = xy[row]
        if box["left"] - 20 <= x <= box["right"] + 20 and y <= box["bottom"] + 20:
            continue
        distance = np.hypot(*(xy[shown] - xy[row]).T)
        if np.sort(distance)[1] > clearance:
            return int(row), float(x), float(y)
    raise AssertionError("no isolated source on the map")


@pytest.fixture(scope="module")
def app_url(synthetic_bundle, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`) to run browser tests")
    from tests.survey_server import SurveyServer

    # names resolve through a real Sesame-speaking server on 127.0.0.1; caches go to a fresh home
    with SurveyServer() as survey, pytest.MonkeyPatch.context() as env:
        env.setenv("EXPLORER_SESAME_URL", survey.sesame_url)
        env.setenv("EXPLORER_HOME", str(tmp_path_factory.mktemp("browser-home")))
        with streamlit_app(Path(synthetic_bundle).parent) as url:
            yield url


def _browser_page(app_url, args=LAUNCH_ARGS):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = browser.new_page(viewport={"width": 1440, "height": 1600})
        errors, outside = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))

        def offline(route):  # nothing outside the app: the component must come from the committed build
            if route.request.url.startswith(app_url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", offline)
        page.goto(app_url)
        yield page
        browser.close()
        assert not errors, errors


@pytest.fixture
def page(app_url):
    yield from _browser_page(app_url)


def test_the_map_loads_from_the_committed_build_with_no_network(page):
    scripts = []
    page.on("response", lambda r: scripts.append(r.url) if "/explorer/map/script/" in r.url else None)
    page.reload()
    page.wait_for_function(map_ready(MAP), timeout=60_000)
    assert scripts and all(r.startswith(page.url.split("/?")[0].rstrip("/")) for r in scripts)
    assert page.evaluate(f"() => window.__explorerMaps['{MAP}'].status.textContent").startswith("600 of 600")


def test_hover_shows_the_thumbnail_and_properties(page, synthetic_bundle):
    page.wait_for_function(map_ready(MAP), timeout=60_000)
    row, x, y = isolated_row(page)
    page.mouse.move(x - 6, y - 6)
    page.mouse.move(x, y, steps=3)
    tip = page.locator(f".xmap-tip[data-row='{row}']")
    tip.wait_for(state="visible", timeout=10_000)
    assert tip.locator("img").get_attribute("src").startswith("data:image/png;base64,")
    assert load_bundle(synthetic_bundle).catalog["id"].iat[row] in tip.inner_text()


def test_zoom_survives_a_click_and_a_colour_change_and_the_gallery_shows_the_source(page, synthetic_bundle):
    page.wait_for_function(map_ready(MAP), timeout=60_000)
    box = page.locator(".xmap-gl").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(600)
    zoomed = page.evaluate(VIEW, MAP)
    assert zoomed[0] > 1.2  # really zoomed in
    row, x, y = isolated_row(page)
    click_source(page, x, y)
    gallery = page.locator(".explorer-gallery figure")
    k = views.DEFAULT_K
    gallery.nth(k).wait_for(timeout=30_000)
    bundle = load_bundle(synthetic_bundle)
    expected = neighbours_of_row(bundle, row, k)
    captions = gallery.locator("figcaption b").all_inner_texts()
    assert captions == [bundle.catalog["id"].iat[row], *bundle.catalog["id"].iloc[expected.rows]]
    page.wait_for_function(f"() => window.__explorerMaps['{MAP}'].data.marks.source === {row}", timeout=30_000)
    assert np.allclose(page.evaluate(VIEW, MAP), zoomed), "the zoom was reset by the click"
    page.get_by_label("Colour by").click()  # a colour change keeps the view too
    page.get_by_role("option", name="flux_mjy").click()
    page.wait_for_function(f"() => window.__explorerMaps['{MAP}'].data.legend.kind === 'numeric'", timeout=30_000)
    assert np.allclose(page.evaluate(VIEW, MAP), zoomed), "the zoom was reset by a colour change"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explore_click.png"), full_page=True)


def test_a_lasso_lists_exactly_the_sources_inside_it(page, synthetic_bundle):
    page.wait_for_function(map_ready(MAP), timeout=60_000)
    box = page.locator(".xmap-gl").bounding_box()
    cx, cy = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.45
    angles = np.linspace(0, 2 * np.pi, 40)
    polygon = np.column_stack([cx + 110 * np.cos(angles), cy + 80 * np.sin(angles) * (1 + 0.3 * np.cos(3 * angles))])
    page.locator(".xmap-bar button[data-action='lasso']").click()
    page.mouse.move(*polygon[0])
    page.mouse.down()
    for x, y in polygon[1:]:
        page.mouse.move(x, y, steps=2)
    page.mouse.up()
    inside, edge = lasso_rows(page, polygon)
    assert 5 < len(inside) < views.SELECTION_GALLERY_CAP
    selection = re.compile(r"Selection: (\d+) sources")
    heading = page.get_by_text(selection).first
    heading.wait_for(timeout=30_000)
    count = int(selection.search(heading.inner_text()).group(1))
    gallery = page.locator(".explorer-gallery figure[data-row]")  # the summary's median tiles have no row
    gallery.nth(count - 1).wait_for(timeout=30_000)
    rows = {int(r) for r in gallery.evaluate_all("tiles => tiles.map(t => t.dataset.row)")}
    # the catalogue decides: every source whose map position falls inside the drawn polygon (those within
    # 2 px of its edge either way)
    assert len(rows) == count and rows ^ inside <= edge


def test_hiding_a_class_in_the_legend_hides_its_points(page, synthetic_bundle):
    page.wait_for_function(map_ready(MAP), timeout=60_000)
    catalog = load_bundle(synthetic_bundle).catalog
    page.locator(".xmap-legend .xmap-item", has_text="compact").click()
    visible = page.evaluate(f"() => window.__explorerMaps['{MAP}'].scatterplot.get('filteredPoints').length")
    assert visible == int((catalog["morphology"] != "compact").sum())
    hidden = np.flatnonzero(catalog["morphology"].to_numpy() == "compact")
    assert np.isnan(screen_positions(page)[hidden, 0]).all()


def test_without_webgl_the_map_says_so_and_shows_the_density_image(app_url):
    for page in _browser_page(app_url, args=[*LAUNCH_ARGS, "--disable-3d-apis"]):
        page.wait_for_function(map_ready(MAP), timeout=60_000)
        note = page.locator(".xmap-note")
        assert "no WebGL" in note.inner_text()
        assert page.locator(".xmap-density").is_visible()


def test_coordinate_search_in_the_browser(page, synthetic_bundle):
    bundle = load_bundle(synthetic_bundle)
    row = 200
    page.get_by_role("link", name="Similarity search").click()
    box = page.get_by_label("Object name or sky position")
    box.wait_for(timeout=60_000)
    box.fill(f"{bundle.catalog.ra[row]:.6f} {bundle.catalog.dec[row]:+.6f}")
    box.press("Enter")
    page.locator(".explorer-gallery figure").nth(views.DEFAULT_K).wait_for(timeout=30_000)
    assert bundle.catalog["id"].iat[row] in page.locator("[data-testid='stAlertContentSuccess']").inner_text()
    box.fill("3C 273")  # a name: resolved by Sesame, then matched against the catalogue
    box.press("Enter")
    page.get_by_text("12:29:06.7").wait_for(timeout=30_000)
    page.get_by_text("no catalogue source within 10").wait_for(timeout=30_000)
    box.fill("12 95")
    box.press("Enter")
    page.get_by_text("out of range").wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search_bad_coordinates.png"), full_page=True)


def test_walk_the_space_by_clicking_thumbnails_go_back_and_reopen_the_link(page, app_url, synthetic_bundle):
    bundle = load_bundle(synthetic_bundle)
    start = 42
    start_id = bundle.catalog["id"].iat[start]
    page.goto(f"{app_url}/?bundle={bundle.name}&source={start_id}")
    first_caption = page.locator(".explorer-gallery figure figcaption b").first
    page.locator(".explorer-gallery figure").nth(views.DEFAULT_K).wait_for(timeout=60_000)
    assert first_caption.inner_text() == start_id
    neighbour = int(neighbours_of_row(bundle, start, views.DEFAULT_K).rows[2])
    neighbour_id = bundle.catalog["id"].iat[neighbour]
    expect = pytest.importorskip("playwright.sync_api").expect
    page.locator(f".explorer-gallery figure[data-row='{neighbour}']").click()
    expect(first_caption).to_have_text(neighbour_id, timeout=30_000)
    expected = bundle.catalog["id"].iloc[neighbours_of_row(bundle, neighbour, views.DEFAULT_K).rows].tolist()
    captions = page.locator(".explorer-gallery figure figcaption b").all_inner_texts()
    assert captions == [neighbour_id, *expected]
    page.wait_for_function(f"() => window.location.search.includes('source={neighbour_id}')", timeout=30_000)
    link = page.url
    page.get_by_role("button", name="Back").click()
    expect(first_caption).to_have_text(start_id, timeout=30_000)
    reopened = page
    reopened.goto(link)  # a fresh session: only the link carries the view
    reopened.locator(".explorer-gallery figure").nth(views.DEFAULT_K).wait_for(timeout=60_000)
    assert reopened.locator(".explorer-gallery figure figcaption b").first.inner_text() == neighbour_id
    ARTIFACTS.mkdir(exist_ok=True)
    reopened.screenshot(path=str(ARTIFACTS / "walk_reopened.png"), full_page=True)
