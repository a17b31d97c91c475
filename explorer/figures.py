"""The latent map as a Plotly WebGL figure.

Every trace carries the bundle row of each point in ``customdata[:, 0]``, so a click,
box or lasso selection resolves to real rows whatever trace the point sits in
(colour groups, highlight overlays). The per-style colour traces are built once and
cached; a click only appends small overlay traces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from plotly.colors import qualitative

ROW, RA, DEC = 0, 1, 2          # leading customdata columns; numeric properties follow
MAX_CATEGORIES = 12             # more distinct values than this are folded into "other"
CATEGORY_COLOURS = qualitative.T10 + qualitative.Pastel
PLAIN_COLOUR = "#4c78a8"
MISSING_COLOUR = "#b0b0b0"
CONTINUOUS_SCALE = "Viridis"
FOCUS_COLOUR = "#ff2e88"
NEIGHBOUR_COLOUR = "#ff2e88"


@dataclass(frozen=True)
class MapStyle:
    colour_by: str | None = None   # a catalogue column, or None for one colour
    log_scale: bool = False        # log10 of a numeric colour column
    point_size: float = 4.0
    opacity: float = 0.8


@dataclass(frozen=True)
class Overlay:
    """Points drawn on top of the map, e.g. a clicked source and its neighbours."""
    name: str
    rows: tuple[int, ...]
    symbol: str
    colour: str
    size_factor: float = 2.5


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def focus_overlays(row: int, neighbour_rows) -> tuple[Overlay, ...]:
    """The highlight for a clicked (or searched) source and its nearest neighbours."""
    return (Overlay("nearest neighbours", tuple(int(r) for r in neighbour_rows), "circle-open", NEIGHBOUR_COLOUR, 2.6),
            Overlay("selected source", (int(row),), "star", FOCUS_COLOUR, 4.5))


class MapFigure:
    """The map of one bundle, as plain Plotly figure dicts."""

    def __init__(self, bundle, *, max_cached_styles: int = 8):
        catalog = bundle.catalog
        self.catalog = catalog
        self.xy = np.asarray(bundle.map_xy, dtype=np.float32)
        self.uirevision = str(bundle.path)
        numeric = [c for c in bundle.property_columns if is_numeric(catalog[c])]
        categorical = [c for c in bundle.property_columns if c not in numeric]
        self.units = {c: bundle.column_unit(c) for c in catalog.columns}
        self.customdata = np.column_stack(
            [np.arange(len(catalog), dtype=np.float32)]
            + [catalog[c].to_numpy(dtype=np.float32, na_value=np.nan) for c in ("ra", "dec", *numeric)]
        ).astype(np.float32)
        self.hovertext = _hover_text(catalog, categorical)
        lines = ["%{hovertext}", f"RA %{{customdata[{RA}]:.5f}}°  Dec %{{customdata[{DEC}]:+.5f}}°"]
        for i, column in enumerate(numeric, start=DEC + 1):
            unit = f" {self.units[column]}" if self.units[column] else ""
            lines.append(f"{column} = %{{customdata[{i}]:.4~g}}{unit}")
        self.hovertemplate = "<br>".join(lines) + "<extra></extra>"
        self._styles: dict[MapStyle, list[dict]] = {}
        self._max_cached_styles = max_cached_styles

    def figure(self, style: MapStyle, overlays: tuple[Overlay, ...] = (), *, height: int = 620) -> dict:
        traces = self.colour_traces(style) + [self._overlay_trace(o, style) for o in overlays if o.rows]
        layout = dict(
            height=height, margin=dict(l=8, r=8, t=28, b=8), uirevision=self.uirevision,
            xaxis=dict(visible=False), yaxis=dict(visible=False),
            legend=dict(orientation="h", yanchor="top", y=0.0, x=0.0, itemsizing="constant"),
            hoverlabel=dict(align="left"),
        )
        return {"data": traces, "layout": layout}

    def colour_traces(self, style: MapStyle) -> list[dict]:
        """The map's points, grouped and coloured by the style (cached per style)."""
        if style not in self._styles:
            if len(self._styles) >= self._max_cached_styles:
                self._styles.pop(next(iter(self._styles)))
            self._styles[style] = self._build_colour_traces(style)
        return list(self._styles[style])

    def _build_colour_traces(self, style: MapStyle) -> list[dict]:
        column = style.colour_by
        if column is None:
            return [self._trace(np.arange(len(self.xy)), "sources", style, color=PLAIN_COLOUR, showlegend=False)]
        if column not in self.catalog.columns:
            raise KeyError(f"no catalogue column {column!r}")
        series = self.catalog[column]
        if is_numeric(series):
            return self._numeric_traces(series.to_numpy(dtype=np.float64, na_value=np.nan), column, style)
        return self._categorical_traces(series, style)

    def _numeric_traces(self, values: np.ndarray, column: str, style: MapStyle) -> list[dict]:
        unit = f" [{self.units[column]}]" if self.units[column] else ""
        if style.log_scale:
            plotted = np.isfinite(values) & (values > 0)
            colour = np.log10(values, where=plotted, out=np.full_like(values, np.nan))
            title, left_out = f"log₁₀ {column}{unit}", f"{column} ≤ 0 or missing (no log)"
        else:
            plotted = np.isfinite(values)
            colour, title, left_out = values, f"{column}{unit}", f"{column} missing"
        rows = np.flatnonzero(plotted)
        traces = []
        if len(rows):
            traces.append(self._trace(
                rows, column, style, showlegend=False,
                color=colour[rows].astype(np.float32), colorscale=CONTINUOUS_SCALE, showscale=True,
                colorbar=dict(title=dict(text=title, side="right"), thickness=14)))
        missing = np.flatnonzero(~plotted)
        if len(missing):  # say how many points the colour scale cannot show, and still draw them
            traces.insert(0, self._trace(missing, f"{left_out}: {len(missing):,}", style, color=MISSING_COLOUR))
        return traces

    def _categorical_traces(self, series: pd.Series, style: MapStyle) -> list[dict]:
        labels = series.astype("string").fillna("(missing)").to_numpy(dtype=object)
        counts = pd.Series(labels).value_counts(sort=True)
        kept = list(counts.index[:MAX_CATEGORIES]) if len(counts) > MAX_CATEGORIES else list(counts.index)
        if len(counts) > len(kept):
            other = f"other ({len(counts) - len(kept)} values)"
            labels = np.where(pd.Series(labels).isin(kept).to_numpy(), labels, other)
            kept.append(other)
        traces = []
        for i, label in enumerate(sorted(kept, key=lambda v: (v.startswith("other ("), v))):
            rows = np.flatnonzero(labels == label)
            colour = MISSING_COLOUR if label == "(missing)" or label.startswith("other (") else \
                CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)]
            traces.append(self._trace(rows, f"{label} ({len(rows):,})", style, color=colour))
        return traces

    def _overlay_trace(self, overlay: Overlay, style: MapStyle) -> dict:
        rows = np.asarray(overlay.rows, dtype=np.int64)
        size = max(style.point_size * overlay.size_factor, 9.0)
        line = dict(width=2, color=overlay.colour) if overlay.symbol.endswith("-open") else dict(width=1, color="white")
        return self._trace(rows, overlay.name, style, color=overlay.colour, symbol=overlay.symbol, size=size,
                           opacity=1.0, line=line)

    def _trace(self, rows: np.ndarray, name: str, style: MapStyle, *, showlegend: bool = True, **marker) -> dict:
        marker = {"size": style.point_size, "opacity": style.opacity, **marker}
        return dict(type="scattergl", mode="markers", name=name, showlegend=showlegend,
                    x=self.xy[rows, 0], y=self.xy[rows, 1], customdata=self.customdata[rows],
                    hovertext=self.hovertext[rows], hovertemplate=self.hovertemplate, marker=marker)


def _hover_text(catalog: pd.DataFrame, categorical: list[str]) -> np.ndarray:
    """Per point: the id in bold, then every non-numeric property (numbers go through customdata)."""
    text = "<b>" + catalog["id"].astype(str) + "</b>"
    for column in categorical:
        text = text + f"<br>{column}: " + catalog[column].astype("string").fillna("(missing)")
    return text.to_numpy(dtype=object)
