"""The latent map as a Plotly WebGL figure.

Every trace carries the bundle row of each point in ``customdata[:, 0]``, so a click,
box or lasso selection resolves to real rows whatever trace the point sits in
(colour groups, highlight overlays). The per-style colour traces are built once and
cached; a click only appends small overlay traces.

From ``DENSITY_FROM_N`` sources on, drawing every point would send tens of megabytes to the
browser, so the map becomes a density image (a 2-D histogram computed here, drawn as Plotly
heatmaps: the source count, and with a colour column its mean or majority per cell) with
WebGL points for a stratified sample on top: every occupied region keeps some points, dense
cores are thinned. Selections still mean real sources: a click hits a drawn point, and
:meth:`MapFigure.selection` turns a box or lasso into every source inside it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.path import Path as Polygon
from plotly.colors import qualitative

from explorer.core.bundle import MISSING_LABEL, category_labels
from explorer.core.filters import ColumnCodes, RowFilter, is_numeric

ROW, RA, DEC = 0, 1, 2          # leading customdata columns; numeric properties follow
MAX_CATEGORIES = 12             # more distinct values than this are folded into "other"
CATEGORY_COLOURS = qualitative.T10 + qualitative.Pastel
PLAIN_COLOUR = "#4c78a8"
MISSING_COLOUR = "#b0b0b0"
CONTINUOUS_SCALE = "Viridis"
FOCUS_COLOUR = "#ff2e88"
NEIGHBOUR_COLOUR = "#ff2e88"
DENSITY_FROM_N = 50_000         # from here on the map is a density image plus a sample of points
SAMPLE_POINTS = 10_000          # points drawn over a density map
DENSITY_BINS = 256              # density cells across the wider side of the map
SAMPLE_BINS = 64                # cells the sample is stratified over
COUNT_SCALE = [[0.0, "#e9edf2"], [1.0, "#1b2a3a"]]   # log10 sources per cell, light to dark
DENSITY_OPACITY = 0.85


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


def placed_query_trace(xy, name: str = "query (placed)") -> dict:
    """An out-of-sample query, drawn where the search placed it: it has no catalogue row."""
    return dict(type="scattergl", mode="markers", name=name, x=[float(xy[0])], y=[float(xy[1])],
                marker=dict(symbol="star", size=20, color=FOCUS_COLOUR, line=dict(width=1, color="white")),
                hovertemplate=f"{name}<extra></extra>")


def focus_overlays(row: int, neighbour_rows) -> tuple[Overlay, ...]:
    """The highlight for a clicked (or searched) source and its nearest neighbours."""
    return (Overlay("nearest neighbours", tuple(int(r) for r in neighbour_rows), "circle-open", NEIGHBOUR_COLOUR, 2.6),
            Overlay("selected source", (int(row),), "star", FOCUS_COLOUR, 4.5))


class DensityGrid:
    """A square-celled 2-D histogram of the map: each source's cell, the counts, per-cell statistics.

    :meth:`restricted` gives the same cells over a subset of the rows (a filter), so the view does not move.
    """

    def __init__(self, xy: np.ndarray, bins: int):
        low, high = xy.min(axis=0).astype(np.float64), xy.max(axis=0).astype(np.float64)
        self.size = max(float((high - low).max()), 1e-9) / bins
        self.shape = tuple(int(s) for s in np.maximum(np.ceil((high - low) / self.size), 1)[::-1])  # (ny, nx)
        self.low = low
        ix, iy = self._indices(xy)
        self.cell = (iy * self.shape[1] + ix).astype(np.int64)
        self.keep = None   # all rows
        self.counts = np.bincount(self.cell, minlength=self.shape[0] * self.shape[1])

    def restricted(self, keep: np.ndarray) -> "DensityGrid":
        """The same grid counting only the rows where ``keep`` holds."""
        grid = copy.copy(self)
        grid.keep = keep
        grid.counts = np.bincount(self.cell[keep], minlength=self.counts.size)
        return grid

    def _kept(self, mask: np.ndarray) -> np.ndarray:
        return mask if self.keep is None else mask & self.keep

    def _indices(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ij = np.floor((np.asarray(xy, dtype=np.float64) - self.low) / self.size).astype(np.int64)
        return np.clip(ij[..., 0], 0, self.shape[1] - 1), np.clip(ij[..., 1], 0, self.shape[0] - 1)

    def grid(self, per_cell: np.ndarray) -> np.ndarray:
        """A flat per-cell array as float32 [ny, nx], NaN (drawn transparent) where a cell is empty."""
        out = np.where(self.counts > 0, per_cell, np.nan).astype(np.float32)
        return out.reshape(self.shape)

    def count_grid(self) -> np.ndarray:
        """The counts as [ny, nx] in the smallest unsigned type that holds them (a smaller payload)."""
        dtype = np.uint16 if self.counts.max() < 2 ** 16 else np.uint32
        return self.counts.astype(dtype).reshape(self.shape)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Per-cell mean of the finite values (NaN where a cell has none)."""
        finite = self._kept(np.isfinite(values))
        total = np.bincount(self.cell[finite], weights=values[finite], minlength=self.counts.size)
        n = np.bincount(self.cell[finite], minlength=self.counts.size)
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)

    def majority(self, codes: np.ndarray, categories: int) -> np.ndarray:
        """Per-cell most frequent code in 0..categories-1."""
        cell, codes = (self.cell, codes) if self.keep is None else (self.cell[self.keep], codes[self.keep])
        votes = np.bincount(cell * categories + codes, minlength=self.counts.size * categories)
        return votes.reshape(-1, categories).argmax(axis=1).astype(np.float64)

    def axes(self) -> dict:
        """Heatmap placement: the centre of the first cell and the cell size."""
        return dict(x0=self.low[0] + self.size / 2, dx=self.size, y0=self.low[1] + self.size / 2, dy=self.size)


def cell_order(cells: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows sorted by cell, in random order within each cell (computed once per map; a filter keeps its order)."""
    shuffled = np.random.default_rng(seed).permutation(len(cells))
    return shuffled[np.argsort(cells[shuffled], kind="stable")]


def stratified_sample(cells: np.ndarray, size: int, seed: int = 0, *, order: np.ndarray | None = None) -> np.ndarray:
    """About ``size`` rows, sorted, spread over the occupied cells: each cell keeps up to the same
    number of its rows (drawn at random), so sparse regions and outliers stay and cores are thinned.

    ``order`` is :func:`cell_order` of ``cells`` restricted to the rows to sample from (all rows by default)."""
    by_cell = cell_order(cells, seed) if order is None else order
    if size >= len(by_cell):
        return np.sort(by_cell)
    rng = np.random.default_rng(seed + 1)
    counts = np.bincount(cells[by_cell])
    counts = counts[counts > 0]
    rank = np.arange(len(by_cell)) - np.repeat(np.cumsum(counts) - counts, counts)
    low, high = 0, int(counts.max())  # the largest per-cell cap that keeps at most ``size`` rows
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if np.minimum(counts, mid).sum() <= size else (low, mid - 1)
    kept = by_cell[rank < low]
    topping = by_cell[rank == low]  # one more from some cells, to reach the size exactly
    extra = rng.choice(topping, size=min(size - len(kept), len(topping)), replace=False)
    return np.sort(np.concatenate([kept, extra]))


def rows_in_box(xy: np.ndarray, xs, ys) -> np.ndarray:
    x0, x1 = sorted(float(v) for v in xs)
    y0, y1 = sorted(float(v) for v in ys)
    return np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))


def rows_in_lasso(xy: np.ndarray, xs, ys) -> np.ndarray:
    vertices = np.column_stack([np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)])
    if len(vertices) < 3:
        return np.zeros(0, dtype=np.int64)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    candidates = rows_in_box(xy, (low[0], high[0]), (low[1], high[1]))
    inside = Polygon(vertices).contains_points(xy[candidates])
    return candidates[inside]


@dataclass
class Shown:
    """What the map draws of one filter: the rows kept, their density grid, the points drawn and their data."""
    keep: np.ndarray               # bool over all rows
    density: DensityGrid | None
    drawn: np.ndarray              # rows drawn as points, sorted
    position: np.ndarray           # row -> index into drawn (-1: not drawn)
    customdata: np.ndarray         # per drawn point
    hovertext: np.ndarray

    @property
    def n(self) -> int:
        return int(self.keep.sum())


class MapFigure:
    """The map of one bundle, as plain Plotly figure dicts, optionally restricted by a :class:`RowFilter`."""

    def __init__(self, bundle, *, max_cached_styles: int = 8, density_from_n: int = DENSITY_FROM_N,
                 sample_points: int = SAMPLE_POINTS, bins: int = DENSITY_BINS, seed: int = 0):
        catalog = bundle.catalog
        self.catalog = catalog
        self.xy = np.asarray(bundle.map_xy, dtype=np.float32)
        self.uirevision = str(bundle.path)
        self.numeric = [c for c in bundle.property_columns if is_numeric(catalog[c])]
        self.categorical = [c for c in bundle.property_columns if c not in self.numeric]
        # hover lists the catalogue's own properties: heads' prediction columns would add lines with every head
        self.hovered = [c for c in bundle.property_columns if c not in bundle.prediction_columns]
        self.units = {c: bundle.column_unit(c) for c in catalog.columns}
        self.sample_points, self.seed = sample_points, seed
        self.codes = ColumnCodes(catalog)
        self._density = DensityGrid(self.xy, bins) if len(catalog) >= density_from_n else None
        self._sample_cells = DensityGrid(self.xy, SAMPLE_BINS).cell if self._density is not None else None
        self._order = cell_order(self._sample_cells, seed) if self._density is not None else None
        lines = ["%{hovertext}", f"RA %{{customdata[{RA}]:.5f}}°  Dec %{{customdata[{DEC}]:+.5f}}°"]
        for i, column in enumerate(self.numeric, start=DEC + 1):
            if column not in self.hovered:
                continue
            unit = f" {self.units[column]}" if self.units[column] else ""
            lines.append(f"{column} = %{{customdata[{i}]:.4~g}}{unit}")
        self.hovertemplate = "<br>".join(lines) + "<extra></extra>"
        self._max_cached = max_cached_styles
        self._shown: dict[RowFilter, Shown] = {}
        self._styles: dict[tuple[MapStyle, RowFilter], list[dict]] = {}
        self.full = self.shown(RowFilter())

    @property
    def is_density(self) -> bool:
        return self._density is not None

    @property
    def drawn(self) -> np.ndarray:
        return self.full.drawn

    def shown(self, row_filter: RowFilter) -> Shown:
        """The map's rows under a filter (cached: a filter change at 10^6 sources costs a mask, a sample, a grid)."""
        if row_filter not in self._shown:
            _remember(self._shown, row_filter, self._build_shown(row_filter), self._max_cached)
        return self._shown[row_filter]

    def _build_shown(self, row_filter: RowFilter) -> Shown:
        keep = row_filter.mask(self.catalog, self.codes)
        kept = np.flatnonzero(keep)
        if self._density is None:
            density, drawn = None, kept
        else:
            density = self._density if not row_filter else self._density.restricted(keep)
            order = self._order if not row_filter else self._order[keep[self._order]]
            drawn = stratified_sample(self._sample_cells, self.sample_points, self.seed, order=order)
        position = np.full(len(self.catalog), -1, dtype=np.int64)
        position[drawn] = np.arange(len(drawn))
        if row_filter and self._density is None:  # every row's point data is ready to index
            customdata, hovertext = self.full.customdata[drawn], self.full.hovertext[drawn]
        else:
            customdata, hovertext = self._point_data(drawn)
        return Shown(keep, density, drawn, position, customdata, hovertext)

    def _point_data(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """customdata (row, ra, dec, numeric properties) and hover text of the given rows."""
        picked = self.catalog.iloc[rows]
        customdata = np.column_stack(
            [np.asarray(rows, dtype=np.float32)]
            + [picked[c].to_numpy(dtype=np.float32, na_value=np.nan) for c in ("ra", "dec", *self.numeric)]
        ).astype(np.float32)
        return customdata, _hover_text(picked, [c for c in self.categorical if c in self.hovered])

    def figure(self, style: MapStyle, overlays: tuple[Overlay, ...] = (), *, height: int = 620,
               row_filter: RowFilter = RowFilter()) -> dict:
        shown = self.shown(row_filter)
        traces = self.colour_traces(style, row_filter) + [self._overlay_trace(o, style, shown) for o in overlays if o.rows]
        layout = dict(
            height=height, margin=dict(l=8, r=8, t=28, b=8), uirevision=self.uirevision,
            xaxis=dict(visible=False, range=self._range(0)), yaxis=dict(visible=False, range=self._range(1)),
            legend=dict(orientation="h", yanchor="top", y=0.0, x=0.0, itemsizing="constant"),
            hoverlabel=dict(align="left"),
        )
        return {"data": traces, "layout": layout}

    def _range(self, axis: int) -> list[float]:
        """The whole catalogue's extent (with a margin): a filter thins the map, it does not move it."""
        low, high = float(self.xy[:, axis].min()), float(self.xy[:, axis].max())
        pad = 0.03 * max(high - low, 1e-9)
        return [low - pad, high + pad]

    def colour_traces(self, style: MapStyle, row_filter: RowFilter = RowFilter()) -> list[dict]:
        """The map's points (and density layers), grouped and coloured by the style (cached per style and filter)."""
        key = (style, row_filter)
        if key not in self._styles:
            _remember(self._styles, key, self._build_colour_traces(style, self.shown(row_filter)), self._max_cached)
        return list(self._styles[key])

    def _build_colour_traces(self, style: MapStyle, shown: Shown) -> list[dict]:
        column = style.colour_by
        if column is not None and column not in self.catalog.columns:
            raise KeyError(f"no catalogue column {column!r}")
        density = [self._count_layer(shown)] if self.is_density else []
        if column is None:
            return density + [self._trace(shown.drawn, "sources", style, shown, color=PLAIN_COLOUR, showlegend=False)]
        series = self.catalog[column]
        if is_numeric(series):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            return density + self._numeric_traces(values, column, style, shown)
        return density + self._categorical_traces(column, style, shown)

    def _numeric_traces(self, values: np.ndarray, column: str, style: MapStyle, shown: Shown) -> list[dict]:
        unit = f" [{self.units[column]}]" if self.units[column] else ""
        if style.log_scale:
            plotted = np.isfinite(values) & (values > 0)
            colour = np.log10(values, where=plotted, out=np.full_like(values, np.nan))
            title, left_out = f"log₁₀ {column}{unit}", f"{column} ≤ 0 or missing (no log)"
        else:
            plotted = np.isfinite(values)
            colour, title, left_out = values, f"{column}{unit}", f"{column} missing"
        traces, rows = [], shown.drawn[plotted[shown.drawn]]
        scale = {"colorscale": CONTINUOUS_SCALE}
        if self.is_density and plotted.any():  # points and cells share one colour range: the whole catalogue's
            scale.update(cmin=float(colour[plotted].min()), cmax=float(colour[plotted].max()))
            traces.append(self._cell_layer(shown, shown.density.mean(colour), scale, f"mean {title}", "%{z:.4~g}"))
        if len(rows):
            traces.append(self._trace(
                rows, column, style, shown, showlegend=False, color=colour[rows].astype(np.float32), showscale=True,
                colorbar=dict(title=dict(text=title, side="right"), thickness=14), **scale))
        missing = int((~plotted & shown.keep).sum())
        if missing:  # say how many sources the colour scale cannot show, and still draw them
            traces.insert(0, self._trace(shown.drawn[~plotted[shown.drawn]], f"{left_out}: {missing:,}", style, shown,
                                         color=MISSING_COLOUR))
        return traces

    def _categorical_traces(self, column: str, style: MapStyle, shown: Shown) -> list[dict]:
        codes, names = self.codes(column)
        counts = np.bincount(codes[shown.keep], minlength=len(names))
        present = np.flatnonzero(counts)
        ranked = present[np.argsort(-counts[present], kind="stable")]
        kept = [str(names[i]) for i in ranked[:MAX_CATEGORIES]]
        group = np.full(len(names), -1, dtype=np.int64)    # label code -> group (-1: folded into "other")
        if len(ranked) > MAX_CATEGORIES:
            kept.append(f"other ({len(ranked) - MAX_CATEGORIES} values)")
        order = sorted(range(len(kept)), key=lambda i: (kept[i].startswith("other ("), kept[i]))
        kept = [kept[i] for i in order]
        position = {label: i for i, label in enumerate(kept)}
        for code in ranked[:MAX_CATEGORIES]:
            group[code] = position[str(names[code])]
        if len(ranked) > MAX_CATEGORIES:
            group[group < 0] = position[kept[-1]]
        groups = group[codes]
        colours = [MISSING_COLOUR if label == MISSING_LABEL or label.startswith("other (") else
                   CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, label in enumerate(kept)]
        traces = []
        if self.is_density and kept:
            majority = shown.density.majority(np.maximum(groups, 0), len(kept))
            steps = [[edge, colour] for i, colour in enumerate(colours) for edge in (i / len(kept), (i + 1) / len(kept))]
            labels = np.asarray(kept, dtype=object)[majority.astype(np.int64)]
            traces.append(self._cell_layer(shown, majority, dict(colorscale=steps, cmin=-0.5, cmax=len(kept) - 0.5),
                                           "mostly", "%{text}", text=np.where(shown.density.counts > 0, labels, "")))
        members = np.bincount(groups[shown.keep], minlength=len(kept))
        drawn_groups = groups[shown.drawn]
        for i, (label, colour) in enumerate(zip(kept, colours)):
            traces.append(self._trace(shown.drawn[drawn_groups == i], f"{label} ({int(members[i]):,})", style, shown,
                                      color=colour))
        return traces

    def _count_layer(self, shown: Shown) -> dict:
        """The density image: log10 of the number of sources per cell."""
        counts = shown.density.counts
        z = np.log10(np.maximum(counts, 1)).astype(np.float64)
        return self._heatmap(shown, "sources per cell", z,
                             dict(colorscale=COUNT_SCALE, cmin=0.0, cmax=float(z.max()) or 1.0),
                             "%{customdata:,} sources<extra></extra>", opacity=1.0)

    def _cell_layer(self, shown: Shown, per_cell: np.ndarray, scale: dict, label: str, value: str, **extra) -> dict:
        """A per-cell statistic drawn over the density image, with the count in its hover."""
        return self._heatmap(shown, label, per_cell, scale,
                             f"%{{customdata:,}} sources<br>{label}: {value}<extra></extra>",
                             opacity=DENSITY_OPACITY, **extra)

    @staticmethod
    def _heatmap(shown: Shown, name: str, per_cell: np.ndarray, scale: dict, hovertemplate: str, *, opacity: float,
                 text: np.ndarray | None = None) -> dict:
        grid = shown.density
        trace = dict(type="heatmap", name=name, z=grid.grid(per_cell), customdata=grid.count_grid(),
                     colorscale=scale["colorscale"], zmin=scale.get("cmin"), zmax=scale.get("cmax"), showscale=False,
                     hoverongaps=False, hovertemplate=hovertemplate, opacity=opacity, **grid.axes())
        if text is not None:
            trace["text"] = text.reshape(grid.shape)
        return trace

    def _overlay_trace(self, overlay: Overlay, style: MapStyle, shown: Shown) -> dict:
        rows = np.asarray(overlay.rows, dtype=np.int64)
        size = max(style.point_size * overlay.size_factor, 9.0)
        line = dict(width=2, color=overlay.colour) if overlay.symbol.endswith("-open") else dict(width=1, color="white")
        return self._trace(rows, overlay.name, style, shown, color=overlay.colour, symbol=overlay.symbol, size=size,
                           opacity=1.0, line=line)

    def _trace(self, rows: np.ndarray, name: str, style: MapStyle, shown: Shown, *, showlegend: bool = True,
               **marker) -> dict:
        marker = {"size": style.point_size, "opacity": style.opacity, **marker}
        at = shown.position[rows]
        if (at >= 0).all():
            customdata, hovertext = shown.customdata[at], shown.hovertext[at]
        else:  # an overlay of sources the map does not draw
            customdata, hovertext = self._point_data(rows)
        return dict(type="scattergl", mode="markers", name=name, showlegend=showlegend,
                    x=self.xy[rows, 0], y=self.xy[rows, 1], customdata=customdata,
                    hovertext=hovertext, hovertemplate=self.hovertemplate, marker=marker)

    # ------------------------------------------------------------------ selections

    def selection(self, event, row_filter: RowFilter = RowFilter()) -> np.ndarray | None:
        """The rows a box or lasso on a density map encloses, over the whole (filtered) catalogue, not only the
        points drawn. None when the event's own points say it all: any map below ``DENSITY_FROM_N``, or a click
        (plotly reports clicks on drawn points only)."""
        if not self.is_density:
            return None
        selection = (event or {}).get("selection", {})
        shapes = [(rows_in_box, s) for s in selection.get("box") or []]
        shapes += [(rows_in_lasso, s) for s in selection.get("lasso") or []]
        if not shapes:
            return None
        rows = np.unique(np.concatenate([inside(self.xy, s["x"], s["y"]) for inside, s in shapes]))
        return rows[self.shown(row_filter).keep[rows]]


def _remember(cache: dict, key, value, limit: int) -> None:
    """Insert into a small first-in-first-out cache."""
    if len(cache) >= limit:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _hover_text(catalog: pd.DataFrame, categorical: list[str]) -> np.ndarray:
    """Per point: the id in bold, then every non-numeric property (numbers go through customdata)."""
    text = "<b>" + catalog["id"].astype(str) + "</b>"
    for column in categorical:
        text = text + f"<br>{column}: " + category_labels(catalog[column])
    return text.to_numpy(dtype=object)
