"""The renderer comparison (benchmarks.renderers) is fair only if both pages draw the same points in the same
place: the same view of the same cloud must light the same pixels in regl-scatterplot and deck.gl."""
import numpy as np
import pytest

from benchmarks.browser import CHROMIUM, LAUNCH_ARGS
from benchmarks.renderers import RENDERERS, drawn, page_server, points

pytestmark = pytest.mark.browser
N = 5000


@pytest.fixture(scope="module")
def pixels():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    xy, codes = points(N)
    views = {"whole map": (0.0, 0.0, 1.0), "zoomed": (0.2, 0.1, 0.25)}
    with page_server({"points.bin": xy, "codes.bin": codes}) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield {(name, view): drawn(browser, url, name, N, centre)
                   for name in RENDERERS for view, centre in views.items()}
        finally:
            browser.close()


@pytest.mark.parametrize("view", ["whole map", "zoomed"])
def test_both_renderers_light_the_same_pixels(pixels, view):
    regl, deck = pixels["regl", view], pixels["deck", view]
    assert regl.mean() > 0.001 and deck.mean() > 0.001      # something was drawn
    # the same points: dilate each by a pixel (deck.gl antialiases its discs) and compare
    near = lambda mask: np.pad(mask, 1)[:-2, 1:-1] | np.pad(mask, 1)[2:, 1:-1] | np.pad(mask, 1)[1:-1, :-2] \
        | np.pad(mask, 1)[1:-1, 2:] | mask
    assert (regl & near(deck)).sum() / regl.sum() > 0.95
    assert (deck & near(regl)).sum() / deck.sum() > 0.95


def test_the_view_moves_the_points(pixels):
    whole, zoomed = pixels["regl", "whole map"], pixels["regl", "zoomed"]
    assert (whole ^ zoomed).mean() > 0.01
