"""The current sources on the sky: RA/Dec over the catalogue's footprint (a Plotly figure, no Streamlit).

RA grows to the left (east on the sky, as every sky chart is drawn). A catalogue that straddles
RA = 0 is drawn wrapped at 180°, so that its footprint stays in one piece.
"""
from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import Longitude

from explorer.app.latent_map import FOCUS_COLOUR, NEIGHBOUR_COLOUR

FOOTPRINT_BINS = (16, 120)      # cells across the footprint: about sqrt(N)/1.5, within these bounds
FOOTPRINT_SCALE = [[0.0, "#eef1f5"], [1.0, "#5b6b7d"]]
MAX_MARKED = 5_000      # sources drawn as points; a bigger selection is drawn as its first MAX_MARKED
SVG_UP_TO = 1_000       # fewer marks than this are drawn as SVG: a WebGL trace costs a new GL context each rerun


def display_ra(ra_deg: np.ndarray) -> np.ndarray:
    """RA in degrees, wrapped at 360° or at 180° (when that keeps the catalogue in one piece)."""
    ra = Longitude(np.asarray(ra_deg, dtype=np.float64) * u.deg)
    finite = np.isfinite(ra.deg)
    if not finite.any():
        return ra.deg
    span_360 = np.ptp(ra.deg[finite])
    span_180 = np.ptp(ra.wrap_at(180 * u.deg).deg[finite])
    return ra.wrap_at(180 * u.deg).deg if span_180 < span_360 else ra.deg


class SkyMap:
    """One bundle on the sky: its display RA, Dec and ids, and each filter's footprint, computed once (the
    Explore page draws the sky tab on every rerun, and a 10^6-source histogram costs ~0.1 s)."""

    def __init__(self, bundle, max_footprints: int = 4):
        self.uirevision = f"sky:{bundle.path}"
        self.ra = display_ra(bundle.catalog["ra"].to_numpy())
        self.dec = bundle.catalog["dec"].to_numpy(dtype=np.float64)
        self.ids = bundle.catalog["id"].astype(str).to_numpy()
        self.dec_ratio = 1 / max(np.cos(np.deg2rad(np.nanmedian(self.dec) if len(self.dec) else 0)), 0.05)
        self._footprints: dict = {}
        self._max_footprints = max_footprints

    def footprint(self, keep: np.ndarray | None = None, key=None) -> dict | None:
        """Sources per cell (log-shaded) of the kept rows, cached under ``key`` (e.g. the filter)."""
        if key in self._footprints:
            return self._footprints[key]
        inside = np.isfinite(self.ra) & np.isfinite(self.dec) & (keep if keep is not None else True)
        trace = None
        if inside.any():
            bins = int(np.clip(np.sqrt(inside.sum()) / 1.5, *FOOTPRINT_BINS))
            counts, x_edges, y_edges = np.histogram2d(self.ra[inside], self.dec[inside], bins=bins)
            z = np.where(counts > 0, np.log10(np.maximum(counts, 1)), np.nan).T
            trace = dict(type="heatmap", name="catalogue footprint", x=(x_edges[:-1] + x_edges[1:]) / 2,
                         y=(y_edges[:-1] + y_edges[1:]) / 2, z=z, colorscale=FOOTPRINT_SCALE, showscale=False,
                         hoverongaps=False, customdata=counts.T.astype(np.int64),
                         hovertemplate="%{customdata:,} sources<extra>footprint</extra>")
        if len(self._footprints) >= self._max_footprints:
            self._footprints.pop(next(iter(self._footprints)))
        self._footprints[key] = trace
        return trace

    def figure(self, rows=(), *, source: int | None = None, keep: np.ndarray | None = None, key=None,
               height: int = 480) -> dict:
        """The footprint (of the filtered sources, with a filter) with ``rows`` (neighbours or a selection) as
        circles on top, and the clicked ``source`` as a star."""
        footprint = self.footprint(keep, key)
        traces = [footprint] if footprint is not None else []
        rows = np.asarray(rows, dtype=np.int64)[:MAX_MARKED]
        clicked = np.asarray([] if source is None else [source], dtype=np.int64)
        marked = "neighbours" if source is not None else "selection"
        for name, picked, symbol, colour, size in ((marked, rows, "circle-open", NEIGHBOUR_COLOUR, 9),
                                                   ("source", clicked, "star", FOCUS_COLOUR, 16)):
            if len(picked):
                traces.append(dict(type="scatter" if len(picked) <= SVG_UP_TO else "scattergl", mode="markers",
                                   name=name, x=self.ra[picked], y=self.dec[picked],
                                   text=self.ids[picked], customdata=picked,
                                   marker=dict(symbol=symbol, size=size, color=colour, line=dict(width=2, color=colour)),
                                   hovertemplate="<b>%{text}</b><br>RA %{x:.5f}°  Dec %{y:+.5f}°<extra></extra>"))
        layout = dict(height=height, margin=dict(l=8, r=8, t=28, b=8),
                      xaxis=dict(title=dict(text="RA [deg]"), autorange="reversed"),
                      yaxis=dict(title=dict(text="Dec [deg]"), scaleanchor="x", scaleratio=self.dec_ratio),
                      legend=dict(orientation="h", y=-0.12), uirevision=self.uirevision)
        return {"data": traces, "layout": layout}


def sky_figure(bundle, rows=(), *, source: int | None = None, keep: np.ndarray | None = None, height: int = 480) -> dict:
    """One sky figure of a bundle, without keeping anything (the app keeps a :class:`SkyMap` per bundle)."""
    return SkyMap(bundle).figure(rows, source=source, keep=keep, height=height)
