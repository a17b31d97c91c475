"""regl-scatterplot against deck.gl's ScatterplotLayer, drawing the same points in the same headless Chromium:
the measurement behind the map component's choice of renderer (docs/scaling.md).

    python -m benchmarks.renderers                       # 5x10^3, 10^5 and 10^6 points, 3 fresh pages each

Both pages (``benchmarks/renderers``: source, package.json, lockfile and the built bundles, committed; ``make
frontend`` rebuilds them) get the same binary arrays (float32 positions, one uint8 colour code per point), the
same canvas, point size and opacity, and run the same harness: mount -> first frame whose pixels can be read
back; a zoom then pan of ``--frames`` views, each timed until its pixels can be read back; for deck.gl, its GPU
picking at a pixel (regl-scatterplot's lookup is a CPU k-d tree, not a frame); the JS heap after a garbage
collection. Served from 127.0.0.1, no network.
"""
from __future__ import annotations

import argparse
import http.server
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmarks.browser import CHROMIUM, LAUNCH_ARGS, js_heap_mb

PAGES = Path(__file__).resolve().parent / "renderers"
RENDERERS = ("regl", "deck")
NAMES = {"regl": "regl-scatterplot 1.16", "deck": "deck.gl 9.4 ScatterplotLayer"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
WIDTH, HEIGHT = 1100, 700          # the explorer's map area at 1440x1000
HTML = """<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0}</style></head>
<body><canvas id="map"></canvas><script type="module" src="dist/%s.js"></script></body></html>"""


def points(n: int, seed: int = 0) -> tuple[bytes, bytes]:
    """An embedding-map-like cloud in [-1, 1]^2: 30 Gaussian clumps of uneven size, each of one of 10 classes.
    Returns the x-then-y float32 bytes and the uint8 class codes."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.7, 0.7, size=(30, 2))
    widths = rng.uniform(0.02, 0.15, size=30)
    clump = rng.choice(30, size=n, p=rng.dirichlet(np.ones(30)))
    xy = np.clip(centres[clump] + rng.normal(size=(n, 2)) * widths[clump, None], -0.99, 0.99).astype(np.float32)
    return np.concatenate([xy[:, 0], xy[:, 1]]).tobytes(), (clump % len(PALETTE)).astype(np.uint8).tobytes()


@contextmanager
def page_server(data: dict[str, bytes]) -> Iterator[str]:
    """The two pages, their bundles and ``data`` (path -> bytes) on a free port of 127.0.0.1."""
    files = {f"/{name}.html": (HTML % name).encode() for name in RENDERERS}
    files.update({f"/dist/{name}.js": (PAGES / "dist" / f"{name}.js").read_bytes() for name in RENDERERS})
    files.update({f"/{path}": body for path, body in data.items()})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            kind = "text/javascript" if self.path.endswith(".js") else (
                "text/html" if self.path.endswith(".html") else "application/octet-stream")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_harness(page, url: str, renderer: str, n: int, frames: int, point_size: float) -> dict:
    page.goto(f"{url}/{renderer}.html")
    page.wait_for_function("() => typeof window.runBench === 'function'", timeout=60_000)
    return page.evaluate("(options) => window.runBench(options)",
                         {"n": n, "width": WIDTH, "height": HEIGHT, "pointSize": point_size, "palette": PALETTE,
                          "frames": frames})


def measure(browser, url: str, renderer: str, n: int, frames: int, point_size: float) -> dict:
    """One fresh page: the harness's timings and the JS heap afterwards."""
    page = browser.new_page(viewport={"width": WIDTH + 40, "height": HEIGHT + 40})
    try:
        result = run_harness(page, url, renderer, n, frames, point_size)
        result["heap_mb"] = js_heap_mb(page)
        return result
    finally:
        page.close()


def drawn(browser, url: str, renderer: str, n: int, view: tuple[float, float, float]) -> np.ndarray:
    """Which canvas pixels are not background after the harness, then ``view`` (centre x, y, half-width)."""
    from io import BytesIO

    from PIL import Image

    page = browser.new_page(viewport={"width": WIDTH + 40, "height": HEIGHT + 40})
    try:
        run_harness(page, url, renderer, n, frames=2, point_size=3.0)
        page.evaluate("(view) => window.benchMap.setView(...view)", list(view))
        image = Image.open(BytesIO(page.locator("#map").screenshot())).convert("L")
        return np.asarray(image) < 250
    finally:
        page.close()


def row(label: str, *cells: str) -> None:
    print(f"{label:<44}" + "".join(f"{cell:>30}" for cell in cells))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.renderers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="5000,100000,1000000", help="comma-separated point counts")
    parser.add_argument("--repeats", type=int, default=3, help="fresh pages per renderer and count")
    parser.add_argument("--frames", type=int, default=20, help="views in the zoom-and-pan sequence")
    parser.add_argument("--point-size", type=float, default=3.0, help="point diameter, px")
    args = parser.parse_args(argv)
    counts = [int(value) for value in args.n.split(",")]

    from playwright.sync_api import sync_playwright

    sizes = {name: (PAGES / "dist" / f"{name}.js").stat().st_size / 1e3 for name in RENDERERS}
    print(f"headless Chromium (software GL), canvas {WIDTH}x{HEIGHT}, point {args.point_size:g} px, "
          f"{args.repeats} fresh pages each, {len(os.sched_getaffinity(0))} CPU(s), "
          f"load average {os.getloadavg()[0]:.1f}\n")
    row("", *(NAMES[name] for name in RENDERERS))
    row("bundle, minified, kB", *(f"{sizes[name]:.0f}" for name in RENDERERS))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            for n in counts:
                xy, codes = points(n)
                with page_server({"points.bin": xy, "codes.bin": codes}) as url:
                    runs = {name: [measure(browser, url, name, n, args.frames, args.point_size)
                                   for _ in range(args.repeats)] for name in RENDERERS}
                print(f"\n{n:,} points")

                def spread(name, figure, fmt="{:.0f}"):
                    values = sorted(figure(run) for run in runs[name])
                    low, high = fmt.format(values[0]), fmt.format(values[-1])
                    return low if low == high else f"{low}–{high}"

                row("mount -> first frame drawn, ms", *(spread(k, lambda r: r["firstFrame"]) for k in RENDERERS))
                row(f"zoom/pan frame, ms, p50 ({args.frames} views)",
                    *(spread(k, lambda r: np.median(r["frameMs"])) for k in RENDERERS))
                row("zoom/pan frame, ms, p95",
                    *(spread(k, lambda r: np.percentile(r["frameMs"], 95)) for k in RENDERERS))
                row("pick at a pixel, ms, p50", "CPU k-d tree, no frame",
                    spread("deck", lambda r: np.median(r["pickMs"]), "{:.1f}"))
                row("JS heap after use, MB", *(spread(k, lambda r: r["heap_mb"]) for k in RENDERERS))
        finally:
            browser.close()


if __name__ == "__main__":
    main()
