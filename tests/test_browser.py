"""The real app in a real browser: ``streamlit run app.py`` on a free port, driven by headless Chromium.

Clicking a WebGL point: plotly's scattergl hit-tests mouse events at the point's pixel,
so the test reads the point's data coordinates from the plot and converts them with
plotly's own axis mapping (``_fullLayout.xaxis.l2p``).
"""
from pathlib import Path

import pytest

from benchmarks.browser import CHROMIUM, LAUNCH_ARGS, MAP_PAINTED, REPO, streamlit_app
from explorer.app import views
from explorer.core.bundle import load_bundle
from explorer.core.search import neighbours_of_row

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
# The position of a trace's point in page pixels, and the bundle row it carries.
POINT_ON_PAGE = """([trace, index]) => {
  const plot = document.querySelector('.js-plotly-plot');
  const layout = plot._fullLayout, box = plot.getBoundingClientRect(), data = plot._fullData[trace];
  return {x: box.left + layout._size.l + layout.xaxis.l2p(data.x[index]),
          y: box.top + layout._size.t + layout.yaxis.l2p(data.y[index]),
          row: Math.round(data.customdata[index][0])};
}"""
# A point with no other point within 12 px, so a click cannot land on a neighbour.
ISOLATED_POINT = """() => {
  const plot = document.querySelector('.js-plotly-plot');
  const layout = plot._fullLayout, data = plot._fullData[0];
  const px = Array.from(data.x, v => layout.xaxis.l2p(v)), py = Array.from(data.y, v => layout.yaxis.l2p(v));
  for (let i = 0; i < px.length; i++) {
    let alone = true;
    for (const t of plot._fullData) for (let j = 0; j < t.x.length && alone; j++) {
      const dx = layout.xaxis.l2p(t.x[j]) - px[i], dy = layout.yaxis.l2p(t.y[j]) - py[i];
      if ((t !== data || j !== i) && dx * dx + dy * dy < 144) alone = false;
    }
    if (alone) return i;
  }
  return -1;
}"""

# True once plotly's hover has caught up with the mouse and picked the given bundle row.
HOVERING_ROW = """(row) => (document.querySelector('.js-plotly-plot')._hoverdata || [])
  .some(point => Math.round(point.customdata[0]) === row)"""


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


@pytest.fixture
def page(app_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1600})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(app_url)
        yield page
        browser.close()
        assert not errors, errors


def test_click_a_point_shows_its_neighbour_gallery(page, synthetic_bundle):
    page.wait_for_function(MAP_PAINTED, timeout=60_000)
    index = page.evaluate(ISOLATED_POINT)
    assert index >= 0
    point = page.evaluate(POINT_ON_PAGE, [0, index])
    # Hover first, as a user does: plotly clicks the point it last hovered, and hover is throttled,
    # so a click while the hover still holds a point passed on the way would pick that one.
    page.mouse.move(point["x"], point["y"], steps=4)
    page.wait_for_function(HOVERING_ROW, arg=point["row"], timeout=10_000)
    page.mouse.click(point["x"], point["y"])

    gallery = page.locator(".explorer-gallery figure")
    k = views.DEFAULT_K
    gallery.nth(k).wait_for(timeout=30_000)
    assert gallery.count() == k + 1
    bundle = load_bundle(synthetic_bundle)
    expected = neighbours_of_row(bundle, point["row"], k)
    captions = gallery.locator("figcaption b").all_inner_texts()
    assert captions == [bundle.catalog["id"].iat[point["row"]], *bundle.catalog["id"].iloc[expected.rows]]
    page.wait_for_function("() => document.querySelector('.js-plotly-plot')._fullData"
                           ".some(t => t.name === 'nearest neighbours')")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explore_click.png"), full_page=True)


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
