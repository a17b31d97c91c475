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
def streamlit_app(bundles_dir: str | Path, *, timeout_s: float = 60) -> Iterator[str]:
    """``streamlit run app.py`` listing ``bundles_dir``; yields its URL once it answers its health check."""
    port = free_port()
    env = {**os.environ, "EXPLORER_BUNDLES": str(bundles_dir)}
    log = tempfile.TemporaryFile()  # a file, not a pipe: a pipe nobody reads can stall the server
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
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
