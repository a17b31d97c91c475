"""Explorer speed, side by side with a baseline measured in the same run.

    python -m benchmarks.app [--n 5000] [--dim 512] [--clicks 40] [--no-browser]

1. Click -> gallery, server time: what the Explore page computes when a source is clicked
   (FAISS neighbours, angular de-duplication, gallery PNGs, the highlighted map figure
   serialised as Streamlit sends it) against paper 1's app approach (sklearn BallTree on
   200-d PCA, a matplotlib thumbnail grid, a Plotly Express SVG scatter).
2. Map paint in headless Chromium: this project's WebGL figure against ``px.scatter`` in SVG,
   both drawn by the same plotly.js from a local page.
3. Cold start: ``streamlit run app.py`` launched -> first map painted in the browser.

The bundle is synthetic (benchmarks/synthetic.py), built once and cached under
``explorer.config.cache_dir()/benchmarks``.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import plotly
import plotly.express as px
import plotly.io as pio
import plotly.tools
from sklearn.decomposition import PCA
from sklearn.neighbors import BallTree

from benchmarks.browser import CHROMIUM, LAUNCH_ARGS, MAP_PAINTED, streamlit_app
from benchmarks.synthetic import synthetic_bundle
from explorer import views
from explorer.bundle import load_bundle
from explorer.config import cache_dir
from explorer.figures import MapFigure, MapStyle, focus_overlays

TARGET_CLICK_MS = 300


def bundle_for(n: int, dim: int) -> Path:
    path = cache_dir() / "benchmarks" / f"synthetic-n{n}-d{dim}"
    if not (path / "manifest.json").is_file():
        print(f"building a synthetic {n:,}-source bundle (D={dim}) in {path} ...", flush=True)
        synthetic_bundle(path, n=n, dim=dim, pixels=70, seed=1)
    return path


def to_json_as_streamlit_does(figure) -> str:
    """st.plotly_chart validates the figure, then serialises it: part of every rerun's server time."""
    return pio.to_json(plotly.tools.return_figure_from_figure_or_data(figure, validate_figure=True), validate=False)


def timed(fn, args_list) -> np.ndarray:
    """Milliseconds per call, one call per argument tuple."""
    out = []
    for args in args_list:
        start = time.perf_counter()
        fn(*args)
        out.append((time.perf_counter() - start) * 1000)
    return np.asarray(out)


class Explorer:
    """This project's click path, exactly as the Explore page runs it (minus Streamlit's own caching)."""

    def __init__(self, bundle, k: int, dedup_arcsec: float):
        self.bundle, self.k, self.dedup = bundle, k, dedup_arcsec
        self.map = MapFigure(bundle)
        self.style = MapStyle(colour_by="morphology")

    def click(self, row: int) -> int:
        result = views.neighbour_result(self.bundle, row, self.k, dedup_arcsec=self.dedup)
        figure = self.map.figure(self.style, focus_overlays(row, result.neighbours.rows))
        return len(result.gallery) + len(to_json_as_streamlit_does(figure))


class PaperOneBaseline:
    """Paper 1's app approach: BallTree on 200-d PCA; thumbnails drawn with matplotlib; a Plotly Express map."""

    def __init__(self, bundle, k: int):
        import matplotlib

        matplotlib.use("Agg")
        self.bundle, self.k = bundle, k
        embeddings = np.asarray(bundle.embeddings)
        self.pca = PCA(n_components=min(200, embeddings.shape[1]), random_state=0).fit(embeddings)
        self.reduced = self.pca.transform(embeddings)
        self.tree = BallTree(self.reduced)
        self.frame = bundle.catalog.assign(x=bundle.map_xy[:, 0], y=bundle.map_xy[:, 1])

    def click(self, row: int) -> int:
        import matplotlib.pyplot as plt

        _, rows = self.tree.query(self.reduced[row:row + 1], k=self.k + 1)
        rows = rows[0]
        columns = 7
        fig, axes = plt.subplots(int(np.ceil(len(rows) / columns)), columns, figsize=(columns * 1.6, 3.4))
        for ax in axes.ravel():
            ax.axis("off")
        for ax, r in zip(axes.ravel(), rows):
            ax.imshow(self.bundle.thumbnails[r], cmap="inferno", vmin=0, vmax=255)
            ax.set_title(self.bundle.catalog["id"].iat[r], fontsize=7)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        figure = px.scatter(self.frame, x="x", y="y", color="morphology", hover_name="id",
                            hover_data=["ra", "dec", "las_arcsec", "flux_mjy"], render_mode="svg")
        return buffer.tell() + len(to_json_as_streamlit_does(figure))


def bench_click(bundle, clicks: int, k: int, dedup_arcsec: float) -> dict:
    rng = np.random.default_rng(0)
    rows = [(int(r),) for r in rng.choice(bundle.n, size=clicks, replace=False)]
    ours, baseline = Explorer(bundle, k, dedup_arcsec), PaperOneBaseline(bundle, k)
    ours.click(0), baseline.click(0)  # warm imports and the per-style map traces, as a running app has
    neighbours_only = timed(lambda r: views.neighbour_result(bundle, r, k, dedup_arcsec=dedup_arcsec), rows)
    return {"ours": timed(ours.click, rows), "baseline": timed(baseline.click, rows), "gallery": neighbours_only}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def paint_page(figure_json: str) -> str:
    return ("<!doctype html><html><body><div id='plot' style='width:1000px;height:620px'></div>"
            "<script src='plotly.min.js'></script><script>"
            f"const fig = {figure_json};"
            "window.plotStart = performance.now();"
            "Plotly.newPlot('plot', fig.data, fig.layout).then(() => {"
            " requestAnimationFrame(() => { window.paintedAt = performance.now(); }); });"
            "</script></body></html>")


def bench_map_paint(browser, bundle, repeats: int = 3) -> dict:
    """First paint of the map alone, WebGL vs SVG, same plotly.js: ms from navigation start
    (page, plotly.js and figure loaded) and from ``Plotly.newPlot`` (drawing only) to the painted frame."""
    work = Path(tempfile.mkdtemp(prefix="explorer-paint-"))
    try:
        shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", work / "plotly.min.js")
        ours = MapFigure(bundle).figure(MapStyle(colour_by="morphology"))
        frame = bundle.catalog.assign(x=bundle.map_xy[:, 0], y=bundle.map_xy[:, 1])
        svg = px.scatter(frame, x="x", y="y", color="morphology", hover_name="id",
                         hover_data=["ra", "dec", "las_arcsec", "flux_mjy"], render_mode="svg")
        (work / "webgl.html").write_text(paint_page(pio.to_json(ours, validate=False)))
        (work / "svg.html").write_text(paint_page(pio.to_json(svg, validate=False)))
        server, url = serve(work)
        results = {}
        for name in ("webgl", "svg"):
            times = []
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1100, "height": 700})
                page.goto(f"{url}/{name}.html")
                page.wait_for_function("() => window.paintedAt !== undefined", timeout=120_000)
                times.append(page.evaluate("() => [window.paintedAt, window.paintedAt - window.plotStart]"))
                page.close()
            results[name] = np.median(np.asarray(times), axis=0)  # [from navigation, drawing only]
        server.shutdown()
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_cold_start(browser, bundle_path: Path) -> dict:
    """streamlit run app.py -> health -> first map paint, then a reload with the server warm."""
    start = time.perf_counter()
    with streamlit_app(bundle_path.parent) as url:
        ready = time.perf_counter() - start
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(url, wait_until="commit")
        page.wait_for_function(MAP_PAINTED, timeout=120_000, polling=20)
        first_paint = time.perf_counter() - start
        reload_start = time.perf_counter()
        page.reload(wait_until="commit")
        page.wait_for_function(MAP_PAINTED, timeout=120_000, polling=20)
        warm = time.perf_counter() - reload_start
        page.close()
    return {"server_ready_s": ready, "first_paint_s": first_paint, "warm_reload_s": warm}


def row(label: str, ours: str, baseline: str) -> None:
    print(f"{label:<44}{ours:>18}{baseline:>22}")


def stats(ms: np.ndarray) -> str:
    return f"{np.median(ms):.1f} / {np.percentile(ms, 95):.1f}"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="sources in the synthetic bundle")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension (ResNet-18 gives 512)")
    parser.add_argument("--clicks", type=int, default=40)
    parser.add_argument("--k", type=int, default=views.DEFAULT_K)
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium measurements")
    args = parser.parse_args(argv)

    path = bundle_for(args.n, args.dim)
    bundle = load_bundle(path)
    print(f"bundle: {bundle.n:,} sources, D={bundle.dim}, thumbnails {bundle.thumbnails.shape[1:]}, "
          f"k={args.k}, {args.clicks} clicks, {os.cpu_count()} CPU(s)\n")
    click = bench_click(bundle, args.clicks, args.k, views.DEDUP_RADIUS_ARCSEC)
    row("", "this project", "paper-1 approach")
    row("click -> gallery, server ms (p50 / p95)", stats(click["ours"]), stats(click["baseline"]))
    row("  of which neighbours + dedup + gallery ms", stats(click["gallery"]), "")
    summary = {"n": bundle.n, "click_p50_ms": np.median(click["ours"]),
               "baseline_click_p50_ms": np.median(click["baseline"])}

    if args.no_browser or not CHROMIUM.exists():
        print(f"\n(browser measurements skipped: {'--no-browser' if args.no_browser else f'{CHROMIUM} missing'})")
    else:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            paint = bench_map_paint(browser, bundle)
            cold = bench_cold_start(browser, path)
            browser.close()
        row("map first paint in Chromium, ms (median)", f"{paint['webgl'][0]:.0f} WebGL", f"{paint['svg'][0]:.0f} SVG")
        row("  of which drawing (Plotly.newPlot), ms", f"{paint['webgl'][1]:.0f} WebGL", f"{paint['svg'][1]:.0f} SVG")
        row("cold start: server ready, s", f"{cold['server_ready_s']:.2f}", "")
        row("cold start: launch -> first map paint, s", f"{cold['first_paint_s']:.2f}", "")
        row("reload -> map painted (server warm), s", f"{cold['warm_reload_s']:.2f}", "")
        summary.update(webgl_paint_ms=paint["webgl"][0], svg_paint_ms=paint["svg"][0],
                       cold_first_paint_s=cold["first_paint_s"])
    verdict = "meets" if summary["click_p50_ms"] <= TARGET_CLICK_MS else "MISSES"
    print(f"\nclick -> gallery p50 {summary['click_p50_ms']:.1f} ms {verdict} the {TARGET_CLICK_MS} ms target")
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
