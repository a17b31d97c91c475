"""The real app on a free port and Debian's headless Chromium, for the browser tests and benchmarks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def map_ready(key: str = "explore.map") -> str:
    """A page function, true once the map component under ``key`` has drawn its data."""
    return f"() => {{ const m = window.__explorerMaps && window.__explorerMaps[{key!r}]; return !!(m && m.ready); }}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(bundles_dir: str | Path, *, repo: Path = REPO, timeout_s: float = 60) -> Iterator[str]:
    """``streamlit run app.py`` from ``repo`` listing ``bundles_dir``; yields its URL once it answers its health
    check."""
    port = free_port()
    env = {**os.environ, "EXPLORER_BUNDLES": str(bundles_dir)}
    log = tempfile.TemporaryFile()  # a file, not a pipe: a pipe nobody reads can stall the server
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    server.wait()
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start:\n{log.read().decode(errors='replace')}") from None
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


# Every source's position in page pixels (NaN when hidden or off the map), from the component's camera.
SCREEN_POSITIONS = """(key) => {
  const view = window.__explorerMaps[key], box = view.canvas.getBoundingClientRect();
  const visible = view.mask, out = [];
  for (let row = 0; row < view.data.n; row++) {
    const [x, y] = view.positionOf(row);
    const shown = (!visible || visible[row]) && x > 4 && y > 4 && x < box.width - 4 && y < box.height - 4;
    out.push(shown ? [box.left + x, box.top + y] : [NaN, NaN]);
  }
  return out;
}"""
VIEW = "(key) => Array.from(window.__explorerMaps[key].scatterplot.get('cameraView'))"


def screen_positions(page, key="explore.map") -> np.ndarray:
    return np.asarray([[np.nan if v is None else v for v in xy] for xy in page.evaluate(SCREEN_POSITIONS, key)])


def lasso_rows(page, polygon: np.ndarray, key: str = "explore.map", edge_px: float = 2.0) -> tuple[set, set]:
    """The rows whose map position lies inside a lasso drawn along ``polygon`` (page pixels), and those within
    ``edge_px`` of its edge: the browser records the mouse path at whole pixels, so those may fall either way."""
    from matplotlib.path import Path as Polygon

    points = np.nan_to_num(screen_positions(page, key), nan=-1e9)
    start, end = polygon, np.roll(polygon, -1, axis=0)
    along = end - start
    t = np.clip(((points[:, None] - start) * along).sum(-1) / np.maximum((along ** 2).sum(-1), 1e-12), 0, 1)
    distance = np.linalg.norm(points[:, None] - (start + t[..., None] * along), axis=-1).min(axis=1)
    inside = np.flatnonzero(Polygon(polygon).contains_points(points))
    return set(inside.tolist()), set(np.flatnonzero(distance < edge_px).tolist())


def click_source(page, x: float, y: float, key: str = "explore.map") -> None:
    """Hover, as a user does (the component clicks the point under the cursor), then click."""
    page.mouse.move(x - 6, y - 6)
    page.mouse.move(x, y, steps=4)
    page.wait_for_function(f"() => window.__explorerMaps['{key}'].hovered !== null", timeout=10_000)
    page.mouse.click(x, y)


class Traffic:
    """Bytes the page receives and sends, over HTTP and Streamlit's websocket, counted by Chromium (CDP)."""

    def __init__(self, page):
        self.session = page.context.new_cdp_session(page)
        self.session.send("Network.enable")
        self.received = self.sent = 0
        self.session.on("Network.loadingFinished", self._loaded)
        self.session.on("Network.webSocketFrameReceived", lambda e: self._frame(e, "received"))
        self.session.on("Network.webSocketFrameSent", lambda e: self._frame(e, "sent"))

    def _loaded(self, event) -> None:
        self.received += int(event.get("encodedDataLength", 0))

    def _frame(self, event, way: str) -> None:
        frame = event["response"]
        size = len(frame["payloadData"]) * (3 / 4 if frame.get("opcode") == 2 else 1)  # binary frames: base64
        setattr(self, way, getattr(self, way) + int(size))

    def reset(self) -> None:
        self.received = self.sent = 0

    def total(self) -> int:
        return self.received + self.sent


def js_heap_mb(page) -> float:
    """The page's live JS heap after a garbage collection, MB."""
    session = page.context.new_cdp_session(page)
    session.send("HeapProfiler.collectGarbage")
    used = session.send("Runtime.getHeapUsage")["usedSize"]
    session.detach()
    return used / 1e6


START_FRAMES = """() => { window.__frames = []; window.__recording = true; let last = performance.now();
  const tick = (t) => { window.__frames.push(t - last); last = t; if (window.__recording) requestAnimationFrame(tick); };
  requestAnimationFrame(tick); }"""
STOP_FRAMES = "() => { window.__recording = false; return window.__frames.slice(1); }"


def frame_times(page, action) -> np.ndarray:
    """Milliseconds between painted frames while ``action(page)`` runs (a pan or zoom with the mouse)."""
    page.evaluate(START_FRAMES)
    action(page)
    page.wait_for_timeout(300)   # the frames the interaction left behind (inertia, redraws)
    return np.asarray(page.evaluate(STOP_FRAMES))
