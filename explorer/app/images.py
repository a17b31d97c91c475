"""Thumbnails for the browser: colour-mapped PNGs and an HTML gallery.

Bundle thumbnails are uint8 and already carry one fixed asinh stretch
(:func:`explorer.core.preprocess.to_thumbnails`), so a gallery compares like with like;
here they only get the colour map radio astronomers use.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from matplotlib import colormaps
from PIL import Image

from explorer.core.preprocess import COLORMAP


@cache
def colour_table(name: str = COLORMAP) -> np.ndarray:
    """uint8 [256, 3]: the RGB colour of every thumbnail grey level."""
    rgba = colormaps[name](np.linspace(0, 1, 256))
    table = np.round(rgba[:, :3] * 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def to_rgb(thumbnail: np.ndarray) -> np.ndarray:
    """[H, W] grey levels -> colour-mapped [H, W, 3]; [H, W, 3] (already RGB) is returned as is."""
    thumbnail = np.asarray(thumbnail, dtype=np.uint8)
    return colour_table()[thumbnail] if thumbnail.ndim == 2 else thumbnail


def png_bytes(thumbnail: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_rgb(thumbnail)).save(buffer, format="PNG", compress_level=1)  # speed over size
    return buffer.getvalue()


def data_uri(thumbnail: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(thumbnail)).decode("ascii")


@dataclass(frozen=True)
class GalleryItem:
    image: np.ndarray           # a bundle thumbnail
    title: str                  # the source id
    lines: tuple[str, ...] = ()  # caption lines under the title, e.g. the cosine similarity
    highlight: bool = False     # the query source of a neighbour gallery


GALLERY_CSS = """
<style>
.explorer-gallery {display: grid; grid-template-columns: repeat(auto-fill, minmax(%(tile)dpx, 1fr));
  gap: 0.6rem; margin: 0.25rem 0 0.75rem 0;}
.explorer-gallery figure {margin: 0; border-radius: 0.4rem; overflow: hidden; background: #0e1117;
  border: 1px solid rgba(128, 128, 128, 0.25);}
.explorer-gallery figure.query {border: 2px solid #ff2e88;}
.explorer-gallery img {width: 100%%; aspect-ratio: 1 / 1; display: block; image-rendering: auto;}
.explorer-gallery figcaption {padding: 0.25rem 0.4rem 0.35rem 0.4rem; font-size: 0.78rem; line-height: 1.25;
  color: #e6e6e6; font-family: ui-monospace, SFMono-Regular, Menlo, monospace;}
.explorer-gallery figcaption span {display: block;}
.explorer-gallery figcaption b {display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-weight: 600; color: #ffffff;}
</style>
"""


def gallery_html(items: list[GalleryItem], *, tile_pixels: int = 132) -> str:
    """One HTML block: a responsive grid of thumbnails with captions (all text escaped)."""
    tiles = []
    for item in items:
        caption = "".join(f"<span>{html.escape(line)}</span>" for line in item.lines)
        css_class = ' class="query"' if item.highlight else ""
        tiles.append(f'<figure{css_class}><img src="{data_uri(item.image)}" alt="{html.escape(item.title)}">'
                     f"<figcaption><b>{html.escape(item.title)}</b>{caption}</figcaption></figure>")
    return GALLERY_CSS % {"tile": tile_pixels} + '<div class="explorer-gallery">' + "".join(tiles) + "</div>"
