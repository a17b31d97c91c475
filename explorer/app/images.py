"""Thumbnails for the browser: colour-mapped PNGs and an HTML gallery.

Bundle thumbnails are uint8 and carry one fixed asinh stretch of the preprocessed [0, 1] image
(:func:`explorer.core.preprocess.to_thumbnails`). :class:`Display` re-stretches them (undoing that
asinh, then astropy's interval and stretch) and picks the colour map; one display serves every
gallery, so galleries stay comparable.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from astropy.visualization import (AsinhStretch, LinearStretch, LogStretch, MinMaxInterval, PercentileInterval,
                                   SqrtStretch, ZScaleInterval)
from matplotlib import colormaps
from PIL import Image

from explorer.core.preprocess import ASINH_SOFTENING, COLORMAP

STRETCHES = {"asinh": AsinhStretch, "linear": LinearStretch, "log": LogStretch, "sqrt": SqrtStretch}
INTERVALS = {"min–max": MinMaxInterval, "zscale": ZScaleInterval, "99.5 %": lambda: PercentileInterval(99.5),
             "99 %": lambda: PercentileInterval(99.0), "95 %": lambda: PercentileInterval(95.0)}
COLORMAPS = ("inferno", "viridis", "magma", "gray", "afmhot", "cividis")


@dataclass(frozen=True)
class Display:
    """How thumbnails are drawn. The default shows the bundle's own thumbnails unchanged."""
    stretch: str = "bundle"       # "bundle" (the stored asinh) or a key of STRETCHES
    interval: str = "min–max"     # a key of INTERVALS (ignored for "bundle")
    colormap: str = COLORMAP

    @property
    def is_bundle_default(self) -> bool:
        return self.stretch == "bundle"


def linear_levels(thumbnail: np.ndarray) -> np.ndarray:
    """The preprocessed [0, 1] intensities behind a stored thumbnail (its asinh undone)."""
    t = np.asarray(thumbnail, dtype=np.float64) / 255.0
    return np.sinh(t * np.arcsinh(1 / ASINH_SOFTENING)) * ASINH_SOFTENING


def restretch(thumbnail: np.ndarray, display: Display) -> np.ndarray:
    """A thumbnail's grey levels under another interval and stretch (uint8, same shape)."""
    if display.is_bundle_default:
        return np.asarray(thumbnail, dtype=np.uint8)
    if display.stretch not in STRETCHES or display.interval not in INTERVALS:
        raise ValueError(f"unknown stretch {display.stretch!r} or interval {display.interval!r}")
    x = linear_levels(thumbnail)
    scaled = INTERVALS[display.interval]()(x, clip=True)
    return np.round(STRETCHES[display.stretch]()(scaled, clip=True) * 255).astype(np.uint8)


@cache
def colour_table(name: str = COLORMAP) -> np.ndarray:
    """uint8 [256, 3]: the RGB colour of every thumbnail grey level."""
    rgba = colormaps[name](np.linspace(0, 1, 256))
    table = np.round(rgba[:, :3] * 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def to_rgb(thumbnail: np.ndarray, display: Display = Display()) -> np.ndarray:
    """[H, W] grey levels -> colour-mapped [H, W, 3] under the display; [H, W, 3] colour images are re-stretched."""
    thumbnail = restretch(thumbnail, display)
    return colour_table(display.colormap)[thumbnail] if thumbnail.ndim == 2 else thumbnail


def png_bytes(thumbnail: np.ndarray, display: Display = Display()) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_rgb(thumbnail, display)).save(buffer, format="PNG", compress_level=1)  # speed over size
    return buffer.getvalue()


def data_uri(thumbnail: np.ndarray, display: Display = Display()) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(thumbnail, display)).decode("ascii")


@dataclass(frozen=True)
class GalleryItem:
    image: np.ndarray           # a bundle thumbnail
    title: str                  # the source id
    lines: tuple[str, ...] = ()  # caption lines under the title, e.g. the cosine similarity
    highlight: bool = False     # the query source of a neighbour gallery
    row: int | None = None      # the bundle row: the tile can be clicked to make it the query


GALLERY_CSS = """
<style>
.explorer-gallery {display: grid; grid-template-columns: repeat(auto-fill, minmax(%(tile)dpx, 1fr));
  gap: 0.6rem; margin: 0.25rem 0 0.75rem 0;}
.explorer-gallery figure {margin: 0; border-radius: 0.4rem; overflow: hidden; background: #0e1117;
  border: 1px solid rgba(128, 128, 128, 0.25);}
.explorer-gallery figure.query {border: 2px solid #ff2e88;}
.explorer-gallery figure[data-row] {cursor: pointer;}
.explorer-gallery figure[data-row]:hover, .explorer-gallery figure[data-row]:focus {outline: 2px solid #4c9be8;}
.explorer-gallery img {width: 100%%; aspect-ratio: 1 / 1; display: block; image-rendering: auto;}
.explorer-gallery figcaption {padding: 0.25rem 0.4rem 0.35rem 0.4rem; font-size: 0.78rem; line-height: 1.25;
  color: #e6e6e6; font-family: ui-monospace, SFMono-Regular, Menlo, monospace;}
.explorer-gallery figcaption span {display: block;}
.explorer-gallery figcaption b {display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-weight: 600; color: #ffffff;}
</style>
"""


def gallery_html(items: list[GalleryItem], display: Display = Display(), *, tile_pixels: int = 132) -> str:
    """One HTML block: a responsive grid of thumbnails with captions (all text escaped). Tiles with a row
    carry ``data-row``, which the clickable gallery (:func:`explorer.app.ui.gallery`) turns into a query."""
    tiles = []
    for item in items:
        caption = "".join(f"<span>{html.escape(line)}</span>" for line in item.lines)
        attributes = ' class="query"' if item.highlight else ""
        if item.row is not None:
            attributes += (f' data-row="{int(item.row)}" tabindex="0" role="button" '
                           f'title="Search from {html.escape(item.title)}"')
        tiles.append(f'<figure{attributes}><img src="{data_uri(item.image, display)}" alt="{html.escape(item.title)}">'
                     f"<figcaption><b>{html.escape(item.title)}</b>{caption}</figcaption></figure>")
    return GALLERY_CSS % {"tile": tile_pixels} + '<div class="explorer-gallery">' + "".join(tiles) + "</div>"
