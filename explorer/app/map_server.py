"""The map component's HTTP side: its built script and each open map's arrays and hover cards.

``app.py`` mounts :data:`ROUTES` on Streamlit's own server (``st.App``), so ``streamlit run app.py`` serves
them on the app's port. The page registers each :class:`LatentMap` it draws; a URL names a map by its
token and an array by its content key, so the browser may cache every answer for good.
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from explorer.app.images import COLORMAPS, INTERVALS, STRETCHES, Display
from explorer.app.latent_map import LatentMap

PREFIX = "/explorer/map"
SCRIPT = Path(__file__).with_name("frontend") / "dist" / "map.js"
MAX_MAPS = 8                    # maps the server keeps answering for (one per open bundle version)
FOREVER = "public, max-age=31536000, immutable"

_maps: dict[str, LatentMap] = {}
_lock = threading.Lock()


def register(latent_map: LatentMap) -> str:
    """Serve this map's arrays; returns the URL prefix its component fetches them from."""
    with _lock:
        _maps.pop(latent_map.token, None)
        _maps[latent_map.token] = latent_map
        while len(_maps) > MAX_MAPS:
            _maps.pop(next(iter(_maps)))
    return f"{PREFIX}/{latent_map.token}"


def script_url() -> str:
    """The built component, named by its content so a rebuilt one is fetched afresh."""
    return f"{PREFIX}/script/{_script()[0]}.js"


def _script() -> tuple[str, bytes]:
    data = SCRIPT.read_bytes()
    return hashlib.sha1(data).hexdigest()[:12], data


def display_from(query: str | None) -> Display:
    """A hover card's display from ``stretch,interval,colormap`` (unknown parts fall back to the default)."""
    parts = (query or "").split(",")
    if len(parts) != 3:
        return Display()
    stretch, interval, colormap = parts
    return Display(stretch if stretch in STRETCHES else "bundle", interval if interval in INTERVALS else "min–max",
                   colormap if colormap in COLORMAPS else Display().colormap)


def served(token: str) -> LatentMap | None:
    """The registered map a token names, if the server still answers for it."""
    return _maps.get(token)


def _map(request: Request) -> LatentMap | None:
    return served(request.path_params["token"])


async def _data(request: Request) -> Response:
    latent_map = _map(request)
    key = request.path_params["key"]
    data = None if latent_map is None else latent_map.points if key == "points" else latent_map.by_key.get(key)
    if data is None:
        return Response("unknown map data", status_code=404)
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": FOREVER})


async def _hover(request: Request) -> Response:
    latent_map = _map(request)
    row = request.path_params["row"]
    if latent_map is None or not 0 <= row < latent_map.n:
        return JSONResponse({"error": "unknown source"}, status_code=404)
    card = latent_map.hover(row, display_from(request.query_params.get("display")))
    return JSONResponse(card, headers={"Cache-Control": "private, max-age=3600"})


async def _script_route(request: Request) -> Response:
    digest, data = _script()
    return Response(data, media_type="text/javascript",
                    headers={"Cache-Control": FOREVER if request.path_params["digest"] == digest else "no-cache"})


ROUTES = [
    Route(PREFIX + "/script/{digest}.js", _script_route),
    Route(PREFIX + "/{token}/data/{key}", _data),
    Route(PREFIX + "/{token}/hover/{row:int}", _hover),
]
