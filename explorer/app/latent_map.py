"""The latent map's data, as the browser component draws it (no Streamlit, no HTTP).

The component (``explorer/app/frontend``, regl-scatterplot in WebGL) draws every source. What it needs
goes to it as binary arrays, each fetched once from :mod:`explorer.app.map_server` and cached by the
browser under a URL that names its content:

- the positions: float32 x then y, normalised to [-1, 1] with the map's aspect kept (once per bundle);
- a colouring: one uint8 palette index per source (once per colour column and scale), with its palette
  and legend; a numeric column is cut into 255 equal bins of its (log) range, index 0 being "missing";
- a filter's mask: one uint8 per source (once per filter).

A rerun then sends only small JSON: the URLs, the legend and the marks (source, neighbours, selection).
The 512-d embeddings never leave the server. Selections come back as the lasso's or box's vertices in
map coordinates, and :meth:`LatentMap.rows_in_polygon` turns them into every source inside.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.path import Path as Polygon
from plotly.colors import qualitative

from explorer.app.images import Display, data_uri
from explorer.core.bundle import MISSING_LABEL, category_labels
from explorer.core.filters import ColumnCodes, RowFilter, is_numeric

MAX_CATEGORIES = 12             # more distinct values than this are folded into "other"
CATEGORY_COLOURS = qualitative.T10 + qualitative.Pastel
PLAIN_COLOUR = "#4c78a8"
MISSING_COLOUR = "#b0b0b0"
CONTINUOUS_SCALE = "viridis"
NUMERIC_BINS = 255              # colour bins of a numeric column (index 0 is "missing")
FOCUS_COLOUR = "#ff2e88"
NEIGHBOUR_COLOUR = "#ff2e88"
HOVER_PROPERTIES = 3            # numeric properties shown on hover, besides the id and position


@dataclass(frozen=True)
class MapStyle:
    colour_by: str | None = None   # a catalogue column, or None for one colour
    log_scale: bool = False        # log10 of a numeric colour column
    point_size: float = 4.0
    opacity: float = 0.8


@dataclass(frozen=True)
class Marks:
    """What the map rings on top of the points: a clicked source, its neighbours, a selection, examples,
    and an out-of-sample query placed at map coordinates (it has no row)."""
    source: int | None = None
    neighbours: tuple[int, ...] = ()
    selection: tuple[int, ...] = ()
    examples: tuple[int, ...] = ()
    placed: tuple[float, float] | None = None

    @property
    def rows(self) -> tuple[int, ...]:
        """Every marked row, for "zoom to" (the source first)."""
        source = () if self.source is None else (self.source,)
        return source + self.neighbours + self.selection + self.examples


def focus_marks(row: int, neighbour_rows) -> Marks:
    """The marks of a clicked (or searched) source and its nearest neighbours."""
    return Marks(source=int(row), neighbours=tuple(int(r) for r in neighbour_rows))


@dataclass
class Colouring:
    """One palette index per source, the palette, and the legend that explains it."""
    codes: np.ndarray              # uint8 [N]
    palette: list[str]
    legend: dict
    key: str                       # names the content in URLs

    @property
    def bytes(self) -> bytes:
        return self.codes.tobytes()


def content_key(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def rows_in_box(xy: np.ndarray, xs, ys) -> np.ndarray:
    x0, x1 = sorted(float(v) for v in (min(xs), max(xs)))
    y0, y1 = sorted(float(v) for v in (min(ys), max(ys)))
    return np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))


def rows_in_lasso(xy: np.ndarray, xs, ys) -> np.ndarray:
    """Rows inside the polygon with these vertices (a box is a four-vertex polygon)."""
    vertices = np.column_stack([np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)])
    if len(vertices) < 3 or not np.isfinite(vertices).all():
        return np.zeros(0, dtype=np.int64)
    candidates = rows_in_box(xy, vertices[:, 0], vertices[:, 1])
    return candidates[Polygon(vertices).contains_points(xy[candidates])]


class LatentMap:
    """One bundle's map: its positions and, computed once each and kept, its colourings and filter masks."""

    def __init__(self, bundle, *, max_cached: int = 8):
        self.bundle = bundle
        self.catalog = bundle.catalog
        self.xy = np.asarray(bundle.map_xy, dtype=np.float64)
        self.placed = np.isfinite(self.xy).all(axis=1)           # sources with map coordinates
        self.n_unplaced = int((~self.placed).sum())
        xy = self.xy[self.placed] if self.placed.any() else np.zeros((1, 2))
        low, high = xy.min(axis=0), xy.max(axis=0)
        self.centre = (low + high) / 2
        self.half = max(float((high - low).max()) / 2, 1e-9) * 1.03   # a margin, and one scale for both axes
        ndc = np.where(self.placed[:, None], (self.xy - self.centre) / self.half, 0.0).astype(np.float32)
        self.points = np.concatenate([ndc[:, 0], ndc[:, 1]]).tobytes()
        self.token = content_key(str(bundle.path), self.points[:4096], len(self.points), bundle.n)
        self.numeric = [c for c in bundle.property_columns if is_numeric(self.catalog[c])]
        hovered = [c for c in bundle.property_columns if c not in bundle.prediction_columns]
        self.hovered = [c for c in self.numeric if c in hovered][:HOVER_PROPERTIES]
        self.hovered += [c for c in hovered if c not in self.numeric][:1]
        self.units = {c: bundle.column_unit(c) for c in self.catalog.columns}
        self.codes = ColumnCodes(self.catalog)
        self._max_cached = max_cached
        self._keeps: dict[RowFilter, tuple[np.ndarray, str]] = {}
        self._colourings: dict[tuple, Colouring] = {}
        self.by_key: dict[str, bytes] = {}     # content key -> bytes, what the server hands out

    @property
    def n(self) -> int:
        return len(self.catalog)

    def to_ndc(self, x, y):
        """Map coordinates to the component's normalised ones (scalars or arrays)."""
        x, y = (np.asarray(x, dtype=np.float64) - self.centre[0]) / self.half, \
            (np.asarray(y, dtype=np.float64) - self.centre[1]) / self.half
        return (float(x), float(y)) if x.ndim == 0 else (x, y)

    def from_ndc(self, xs, ys) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(xs, dtype=np.float64) * self.half + self.centre[0],
                np.asarray(ys, dtype=np.float64) * self.half + self.centre[1])

    # ------------------------------------------------------------------ filters and colours

    def keep(self, row_filter: RowFilter = RowFilter()) -> np.ndarray:
        """The rows a filter keeps (bool over all rows), cached."""
        return self._keep(row_filter)[0]

    def _keep(self, row_filter: RowFilter) -> tuple[np.ndarray, str]:
        if row_filter not in self._keeps:
            mask = row_filter.mask(self.catalog, self.codes)
            key = content_key(self.token, "keep", row_filter.to_text())
            self.by_key[key] = (mask & self.placed).astype(np.uint8).tobytes()  # the browser draws these
            _remember(self._keeps, row_filter, (mask, key), self._max_cached, self.by_key)
        return self._keeps[row_filter]

    def colouring(self, style: MapStyle, row_filter: RowFilter = RowFilter()) -> Colouring:
        """The palette index of every source under a style (cached per column and scale); the legend's counts
        are over the filter's rows."""
        column = style.colour_by
        if column is not None and column not in self.catalog.columns:
            raise KeyError(f"no catalogue column {column!r}")
        log = bool(style.log_scale and column is not None and is_numeric(self.catalog[column]))
        keep = self.keep(row_filter) & self.placed
        if (column, log) not in self._colourings:
            if column is None:
                codes, palette, legend = np.zeros(self.n, dtype=np.uint8), [PLAIN_COLOUR], {"kind": "plain"}
            elif is_numeric(self.catalog[column]):
                codes, palette, legend = self._numeric(column, log)
            else:
                codes, palette, legend = self._categorical(column)
            colouring = Colouring(codes, palette, legend, content_key(self.token, "colour", column, log))
            self.by_key[colouring.key] = colouring.bytes
            _remember(self._colourings, (column, log), colouring, self._max_cached, self.by_key)
        colouring = self._colourings[(column, log)]
        counts = np.bincount(colouring.codes[keep], minlength=len(colouring.palette))
        items = [{**item, "count": int(counts[item["code"]])} for item in colouring.legend.get("items", [])]
        if colouring.legend["kind"] == "numeric":   # only the missing entry, and only when some are kept
            items = [{**item, "label": f"{item['label']}: {item['count']:,}"} for item in items if item["count"]]
        return Colouring(colouring.codes, colouring.palette, {**colouring.legend, "items": items}, colouring.key)

    def _numeric(self, column: str, log: bool):
        values = self.catalog[column].to_numpy(dtype=np.float64, na_value=np.nan)
        unit = f" [{self.units[column]}]" if self.units[column] else ""
        if log:
            plotted = np.isfinite(values) & (values > 0)
            values = np.log10(values, where=plotted, out=np.full_like(values, np.nan))
            title, left_out = f"log₁₀ {column}{unit}", f"{column} ≤ 0 or missing (no log)"
        else:
            plotted = np.isfinite(values)
            title, left_out = f"{column}{unit}", f"{column} missing"
        # the scale spans the whole catalogue, so a filter does not recolour the sources it keeps
        low, high = (float(values[plotted].min()), float(values[plotted].max())) if plotted.any() else (0.0, 1.0)
        scaled = (values - low) / max(high - low, 1e-300)
        codes = np.zeros(self.n, dtype=np.uint8)
        codes[plotted] = 1 + np.clip(np.floor(scaled[plotted] * NUMERIC_BINS), 0, NUMERIC_BINS - 1).astype(np.uint8)
        ramp = colormaps[CONTINUOUS_SCALE]
        palette = [MISSING_COLOUR] + [to_hex(ramp((i + 0.5) / NUMERIC_BINS)) for i in range(NUMERIC_BINS)]
        legend = {"kind": "numeric", "title": title, "column": column, "log": log, "min": low, "max": high,
                  "stops": [to_hex(ramp(t)) for t in np.linspace(0, 1, 9)],
                  "items": [{"label": left_out, "code": 0, "colour": MISSING_COLOUR}]}
        return codes, palette, legend

    def _categorical(self, column: str):
        codes, names = self.codes(column)
        counts = np.bincount(codes, minlength=len(names))
        present = np.flatnonzero(counts)
        ranked = present[np.argsort(-counts[present], kind="stable")]
        kept = [str(names[i]) for i in ranked[:MAX_CATEGORIES]]
        if len(ranked) > MAX_CATEGORIES:
            kept.append(f"other ({len(ranked) - MAX_CATEGORIES} values)")
        kept.sort(key=lambda label: (label.startswith("other ("), label))
        position = {label: i for i, label in enumerate(kept)}
        group = np.full(len(names), len(kept) - 1, dtype=np.uint8)     # codes past MAX_CATEGORIES: "other"
        for code in ranked[:MAX_CATEGORIES]:
            group[code] = position[str(names[code])]
        palette = [MISSING_COLOUR if label == MISSING_LABEL or label.startswith("other (") else
                   CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, label in enumerate(kept)]
        items = [{"label": label, "code": i, "colour": palette[i]} for i, label in enumerate(kept)]
        return group[codes], palette or [PLAIN_COLOUR], {"kind": "categorical", "title": column, "items": items}

    # ------------------------------------------------------------------ selections and hover

    def rows_in_polygon(self, xs, ys, row_filter: RowFilter = RowFilter(), *, ndc: bool = True) -> np.ndarray:
        """Every source (kept by the filter) inside a lasso or box, given its vertices."""
        if ndc:
            xs, ys = self.from_ndc(xs, ys)
        rows = rows_in_lasso(self.xy, xs, ys)
        return rows[self.keep(row_filter)[rows]]

    def hover(self, row: int, display: Display = Display()) -> dict:
        """What the tooltip shows of one source: id, position, a few properties, the thumbnail."""
        source = self.catalog.iloc[row]
        lines = [f"RA {float(source['ra']):.5f}°  Dec {float(source['dec']):+.5f}°"]
        for column in self.hovered:
            value = source[column]
            if column in self.numeric:
                unit = f" {self.units[column]}" if self.units[column] else ""
                lines.append(f"{column} = {float(value):.4g}{unit}" if np.isfinite(float(value)) else f"{column}: —")
            else:
                lines.append(f"{column}: {category_labels(self.catalog[column].iloc[[row]])[0]}")
        return {"row": int(row), "id": str(source["id"]), "lines": lines,
                "image": data_uri(self.bundle.thumbnails[row], display)}

    def payload(self, style: MapStyle, row_filter: RowFilter, marks: Marks, base: str) -> dict:
        """The component's data for one rerun: small JSON; the arrays are URLs under ``base``."""
        colouring = self.colouring(style, row_filter)
        keep, keep_key = self._keep(row_filter)
        filtered = bool(row_filter) or self.n_unplaced > 0
        return {
            "token": self.token, "n": self.n, "base": base,
            "points": f"{base}/data/points",
            "colour": f"{base}/data/{colouring.key}",
            "keep": f"{base}/data/{keep_key}" if filtered else None,
            "filtered": filtered, "shown": int((keep & self.placed).sum()),
            "palette": colouring.palette, "legend": colouring.legend,
            "pointSize": style.point_size, "opacity": style.opacity,
            "marks": {"source": marks.source, "neighbours": list(marks.neighbours), "selection": list(marks.selection),
                      "examples": list(marks.examples),
                      "placed": list(self.to_ndc(*marks.placed)) if marks.placed is not None and
                      np.isfinite(marks.placed).all() else None},
        }


def _remember(cache: dict, key, value, limit: int, by_key: dict) -> None:
    """Insert into a small first-in-first-out cache, forgetting the evicted entry's bytes too."""
    if len(cache) >= limit:
        evicted = cache.pop(next(iter(cache)))
        by_key.pop(evicted[1] if isinstance(evicted, tuple) else evicted.key, None)
    cache[key] = value
