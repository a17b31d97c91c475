"""The map in the real app, driven with the mouse: this project's WebGL component, and the Plotly map the app
drew before it (commit :data:`PLOTLY_COMMIT`), so ``benchmarks.app`` measures both the same way in one run.

Each driver answers the same questions: when is the map painted, how long a hover takes to show its card, a
click its neighbour gallery, a dragged box its list (checked against every source inside the box), what the
view is (to tell whether a click kept the zoom), and how it pans.
"""
from __future__ import annotations

import re
import subprocess
import tarfile
import tempfile
import time
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmarks.browser import REPO, VIEW, map_ready
from explorer.app import views
from explorer.app.latent_map import rows_in_box

PLOTLY_COMMIT = "ce0fd04"    # the last commit whose app drew the map with Plotly (density image + 10k sample)
TIMEOUT_MS = 120_000
SCRIPT_IDLE = "() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning'"
NEIGHBOUR_HEADING = ("() => ([...document.querySelectorAll('h3')].map(h => h.innerText)"
                     ".find(t => t.includes('nearest neighbours of')) || '')")
# The time of the latest mouse move, seen before any handler of the page's own.
WATCH_MOVES = """() => { if (!window.__movesWatched) { window.__movesWatched = true;
  window.addEventListener('mousemove', () => { window.__moveAt = performance.now(); }, true); } }"""
SELECTION_HEADING = re.compile(r"^Selection: [\d,]+ sources$")


@contextmanager
def plotly_app() -> Iterator[Path]:
    """The app as it was at :data:`PLOTLY_COMMIT`, unpacked from this repository's history into a temporary
    folder (it runs with this checkout's virtual environment)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", PLOTLY_COMMIT],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory(prefix="explorer-plotly-app-") as folder:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder)


def settle(page, painted: str) -> None:
    """Wait, as a user would, until the app's script has finished and the map is drawn."""
    page.wait_for_function(SCRIPT_IDLE, timeout=TIMEOUT_MS, polling=20)
    page.wait_for_function(painted, timeout=TIMEOUT_MS, polling=20)
    page.wait_for_timeout(300)


def click_and_wait_for_gallery(page, x: float, y: float) -> float:
    """Click at (x, y); milliseconds until a new neighbour gallery is on the page."""
    before = page.evaluate(NEIGHBOUR_HEADING)
    start = time.perf_counter()
    page.mouse.click(x, y)
    page.wait_for_function(f"() => {{ const h = ({NEIGHBOUR_HEADING})(); return h && h !== {before!r}; }}",
                           timeout=TIMEOUT_MS, polling=20)
    page.locator(".explorer-gallery figure").nth(views.DEFAULT_K).wait_for(timeout=TIMEOUT_MS)
    return (time.perf_counter() - start) * 1000


def wait_for_listed(page, inside: int, start: float) -> tuple[float, int]:
    """Milliseconds from ``start`` until the page lists ``inside`` sources (or, if it never does, what it lists)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_text(f"Selection: {inside:,} sources", exact=True).wait_for(timeout=TIMEOUT_MS)
    except PlaywrightTimeout:  # the caller sees the mismatch in the counts
        pass
    elapsed = (time.perf_counter() - start) * 1000
    listed = int(page.get_by_text(SELECTION_HEADING).inner_text().split()[1].replace(",", ""))
    return elapsed, listed


def drag(page, start, end, steps: int = 8) -> float:
    """Press, move, pause and release the mouse, as a hand does; returns when it was released."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.wait_for_timeout(100)
    page.mouse.up()
    return time.perf_counter()


# ---------------------------------------------------------------- this project's component

# The drawn source nearest a fraction of the canvas, in page pixels.
NEAREST = """([key, fx, fy]) => {
  const view = window.__explorerMaps[key], box = view.canvas.getBoundingClientRect();
  const tx = box.width * fx, ty = box.height * fy;
  let best = null;
  for (let row = 0; row < view.data.n; row++) {
    if (view.mask && !view.mask[row]) continue;
    const [x, y] = view.positionOf(row), d = Math.hypot(x - tx, y - ty);
    if (!best || d < best.d) best = {d, row, x: box.left + x, y: box.top + y};
  }
  return best;
}"""
# Drawn sources inside the last box the component sent (its normalised coordinates, as Python gets them),
# counted over the browser's own copy of the positions.
COUNT_IN_LAST_BOX = """(key) => {
  const view = window.__explorerMaps[key], xs = view.lastLasso.map(c => c[0]), ys = view.lastLasso.map(c => c[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  let count = 0;
  for (let row = 0; row < view.data.n; row++) {
    if (view.mask && !view.mask[row]) continue;
    if (view.x[row] >= x0 && view.x[row] <= x1 && view.y[row] >= y0 && view.y[row] <= y1) count++;
  }
  return count;
}"""
# Milliseconds from the last mouse move until the hover card shows a loaded thumbnail of the hovered source.
CARD_SHOWN = """(key) => { const view = window.__explorerMaps[key], tip = view.tip, image = tip.querySelector('img');
  const shown = view.hovered !== null && tip.style.display === 'block' && tip.dataset.row === String(view.hovered)
    && image && image.complete && image.naturalWidth > 0;
  return shown ? performance.now() - window.__moveAt : false; }"""


class ComponentMap:
    name = "WebGL component"
    hover_shows = "thumbnail"

    def __init__(self, key: str = "explore.map"):
        self.key = key
        self.painted = map_ready(key)

    def area(self, page) -> dict:
        return page.locator(".xmap-gl").first.bounding_box()

    def at(self, page, fx: float, fy: float) -> tuple[float, float]:
        near = page.evaluate(NEAREST, [self.key, fx, fy])
        return near["x"], near["y"]

    def view(self, page):
        return page.evaluate(VIEW, self.key)

    def hover(self, page, fx: float, fy: float) -> float:
        """Move the mouse onto the source nearest (fx, fy) from off the map; ms until its thumbnail shows."""
        page.evaluate(WATCH_MOVES)
        x, y = self.at(page, fx, fy)
        page.mouse.move(2, 2)
        page.wait_for_function(f"() => window.__explorerMaps[{self.key!r}].hovered === null", timeout=10_000)
        page.mouse.move(x, y)
        return float(page.wait_for_function(CARD_SHOWN, arg=self.key, timeout=TIMEOUT_MS, polling="raf").json_value())

    def click(self, page, fx: float, fy: float) -> float:
        """Hover the source nearest (fx, fy), then click it; ms until its neighbour gallery is shown."""
        self.hover(page, fx, fy)
        x, y = self.at(page, fx, fy)
        return click_and_wait_for_gallery(page, x, y)

    def zoom(self, page) -> None:
        area = self.area(page)
        page.mouse.move(area["x"] + area["width"] * 0.5, area["y"] + area["height"] * 0.5)
        for _ in range(6):
            page.mouse.wheel(0, -120)
            page.wait_for_timeout(40)

    def reset(self, page) -> None:
        page.locator(".xmap-bar button[data-action='reset']").first.click()
        page.wait_for_timeout(500)

    def pan(self, page) -> None:
        area = self.area(page)
        middle = (area["x"] + area["width"] * 0.5, area["y"] + area["height"] * 0.5)
        drag(page, middle, (middle[0] + 160, middle[1] + 90), steps=40)

    def box(self, page, low: float = 0.3, high: float = 0.6) -> dict:
        """Drag a box over the map in Box mode; ms from release until the page lists the selection, and the
        sources inside the box the component sent."""
        settle(page, self.painted)
        area = self.area(page)
        start = area["x"] + area["width"] * low, area["y"] + area["height"] * low
        end = area["x"] + area["width"] * high, area["y"] + area["height"] * high
        page.locator(".xmap-bar button[data-action='box']").first.click()
        page.evaluate(f"() => {{ window.__explorerMaps[{self.key!r}].lastLasso = undefined; }}")
        released = drag(page, start, end, steps=60)
        page.wait_for_function(f"() => window.__explorerMaps[{self.key!r}].lastLasso !== undefined", timeout=TIMEOUT_MS)
        inside = page.evaluate(COUNT_IN_LAST_BOX, self.key)
        elapsed, listed = wait_for_listed(page, inside, released)
        page.locator(".xmap-bar button[data-action='pan']").first.click()
        return {"box_ms": elapsed, "box_listed": listed, "box_inside": inside}


# ---------------------------------------------------------------- the Plotly map of PLOTLY_COMMIT

PLOTLY_PAINTED = ("() => { const p = document.querySelector('.js-plotly-plot');"
                  " return !!(p && p._fullData && p._fullData.length && p.querySelector('.gl-container canvas')); }")
# The drawn sample point (not a highlight) nearest a fraction of the plot area, in page pixels.
POINT_NEAR = """([fx, fy]) => {
  const plot = document.querySelector('.js-plotly-plot'), layout = plot._fullLayout, box = plot.getBoundingClientRect();
  let best = null;
  plot._fullData.forEach(t => { if (t.type !== 'scattergl' || t.marker.symbol !== 'circle') return;
    for (let i = 0; i < t.x.length; i++) {
      const px = layout.xaxis.l2p(t.x[i]), py = layout.yaxis.l2p(t.y[i]);
      const d = Math.hypot(px - layout._size.w * fx, py - layout._size.h * fy);
      if (!best || d < best.d) best = {d, x: box.left + layout._size.l + px, y: box.top + layout._size.t + py};
    } });
  return best;
}"""
# True once plotly's hover holds a point drawn within 6 px of a page position.
HOVER_UNDER = """([x, y]) => {
  const plot = document.querySelector('.js-plotly-plot'), layout = plot._fullLayout, box = plot.getBoundingClientRect();
  return (plot._hoverdata || []).some(p => Math.hypot(box.left + layout._size.l + layout.xaxis.l2p(p.x) - x,
                                                       box.top + layout._size.t + layout.yaxis.l2p(p.y) - y) < 6);
}"""
HOVER_TEXT_SHOWN = ("() => document.querySelector('.hoverlayer .hovertext') ? "
                    "performance.now() - window.__moveAt : false")
PLOT_AREA = """() => { const plot = document.querySelector('.js-plotly-plot'), s = plot._fullLayout._size,
  box = plot.getBoundingClientRect(); return {x: box.left + s.l, y: box.top + s.t, width: s.w, height: s.h}; }"""
AXIS_RANGES = "() => { const l = document.querySelector('.js-plotly-plot')._fullLayout; return [l.xaxis.range, l.yaxis.range]; }"
RECORD_BOX = """() => { window.lastBox = undefined; document.querySelector('.js-plotly-plot').on('plotly_selected', e => {
  if (e && e.range) window.lastBox = {x0: e.range.x[0], x1: e.range.x[1], y0: e.range.y[0], y1: e.range.y[1]}; }); }"""


class PlotlyMap:
    name = f"Plotly map ({PLOTLY_COMMIT})"
    hover_shows = "text only"

    def __init__(self, map_xy: np.ndarray):
        self.map_xy = map_xy
        self.painted = PLOTLY_PAINTED

    def area(self, page) -> dict:
        return page.evaluate(PLOT_AREA)

    def at(self, page, fx: float, fy: float) -> tuple[float, float]:
        near = page.evaluate(POINT_NEAR, [fx, fy])
        return near["x"], near["y"]

    def view(self, page):
        return page.evaluate(AXIS_RANGES)

    def set_dragmode(self, page, mode: str) -> str:
        return page.evaluate(f"() => {{ const plot = document.querySelector('.js-plotly-plot'), mode = "
                             f"plot._fullLayout.dragmode; Plotly.relayout(plot, {{dragmode: '{mode}'}}); return mode; }}")

    def hover(self, page, fx: float, fy: float) -> float:
        page.evaluate(WATCH_MOVES)
        x, y = self.at(page, fx, fy)
        page.mouse.move(2, 2)
        page.wait_for_function("() => !document.querySelector('.hoverlayer .hovertext')", timeout=10_000)
        page.mouse.move(x, y)
        return float(page.wait_for_function(HOVER_TEXT_SHOWN, timeout=TIMEOUT_MS, polling="raf").json_value())

    def click(self, page, fx: float, fy: float) -> float:
        settle(page, self.painted)
        x, y = self.at(page, fx, fy)
        page.mouse.move(x, y, steps=4)
        # plotly clicks the point it last hovered, and hover is throttled: wait until it is under the cursor
        page.wait_for_function(HOVER_UNDER, arg=[x, y], timeout=10_000)
        return click_and_wait_for_gallery(page, x, y)

    def zoom(self, page) -> None:
        """A box zoom over the middle third (the Plotly map has no wheel zoom)."""
        previous = self.set_dragmode(page, "zoom")
        area = self.area(page)
        drag(page, (area["x"] + area["width"] / 3, area["y"] + area["height"] / 3),
             (area["x"] + area["width"] * 2 / 3, area["y"] + area["height"] * 2 / 3))
        page.wait_for_timeout(300)
        self.set_dragmode(page, previous)

    def reset(self, page) -> None:
        page.evaluate("() => Plotly.relayout(document.querySelector('.js-plotly-plot'), "
                      "{'xaxis.autorange': true, 'yaxis.autorange': true})")
        page.wait_for_timeout(500)

    def pan(self, page) -> None:
        previous = self.set_dragmode(page, "pan")
        area = self.area(page)
        middle = (area["x"] + area["width"] * 0.5, area["y"] + area["height"] * 0.5)
        drag(page, middle, (middle[0] + 160, middle[1] + 90), steps=40)
        self.set_dragmode(page, previous)

    def box(self, page, low: float = 0.3, high: float = 0.6) -> dict:
        settle(page, self.painted)
        page.evaluate(RECORD_BOX)
        # the drag mode is restored only once the page has answered: a relayout while the selection travels to
        # the server can change what it receives
        previous = self.set_dragmode(page, "select")
        area = self.area(page)
        released = drag(page, (area["x"] + area["width"] * low, area["y"] + area["height"] * low),
                        (area["x"] + area["width"] * high, area["y"] + area["height"] * high))
        page.wait_for_function("() => window.lastBox !== undefined", timeout=TIMEOUT_MS)
        box = page.evaluate("() => window.lastBox")
        inside = len(rows_in_box(self.map_xy, (box["x0"], box["x1"]), (box["y0"], box["y1"])))
        elapsed, listed = wait_for_listed(page, inside, released)
        self.set_dragmode(page, previous)
        return {"box_ms": elapsed, "box_listed": listed, "box_inside": inside}
