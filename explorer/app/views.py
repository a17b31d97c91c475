"""What the pages show, as plain functions of a bundle (testable without Streamlit).

selection event -> rows, rows -> tables and CSV, a row -> its neighbour gallery,
a sky position -> the nearest catalogue source.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord

from explorer.core.filters import RowFilter
from explorer.app.images import Display, GalleryItem, gallery_html, to_rgb
from explorer.core.search import Neighbours, neighbours_of_row

MATCH_RADIUS_ARCSEC = 10.0     # a typed position names a catalogue source this close
DEDUP_RADIUS_ARCSEC = 30.0     # neighbours closer than this to a better one are the same object
DEFAULT_K = 12
SELECTION_GALLERY_CAP = 48     # thumbnails shown for a box/lasso selection; the CSV has every row
SELECTION_OVERLAY_CAP = 5_000  # selected sources ringed on the map (a bigger selection is ringed in part)


@dataclass(frozen=True)
class Focus:
    """What the user picked on the map: one clicked source, or a box/lasso selection."""
    bundle: str                              # the bundle's path, so a focus never leaks into another bundle
    kind: Literal["source", "selection"]
    rows: tuple[int, ...]

    @property
    def row(self) -> int:
        return self.rows[0]


@dataclass
class Trail:
    """The walk through the latent space: every focus in turn, with back and forward like a browser's."""
    steps: list[Focus]
    at: int = -1

    @property
    def current(self) -> Focus | None:
        return self.steps[self.at] if 0 <= self.at < len(self.steps) else None

    @property
    def can_go_back(self) -> bool:
        return self.at > 0

    @property
    def can_go_forward(self) -> bool:
        return self.at < len(self.steps) - 1

    def visit(self, focus: Focus) -> None:
        """A new focus drops the steps ahead (as a browser does); visiting the current one again changes nothing."""
        if focus == self.current:
            return
        del self.steps[self.at + 1:]
        self.steps.append(focus)
        self.at = len(self.steps) - 1

    def back(self) -> Focus | None:
        self.at = max(self.at - 1, 0)
        return self.current

    def forward(self) -> Focus | None:
        self.at = min(self.at + 1, len(self.steps) - 1)
        return self.current


def focus_from_map(event: Mapping | None, latent_map, bundle_path, row_filter=None) -> Focus | None:
    """What a map event means: a click on a point is that source; a lasso or box is every source inside it
    (kept by the filter); anything else, or nothing inside, clears the focus."""
    event = event or {}
    clicked = event.get("clicked")
    if isinstance(clicked, (int, float)) and not isinstance(clicked, bool) and 0 <= int(clicked) < latent_map.n:
        return Focus(str(bundle_path), "source", (int(clicked),))
    polygon = event.get("lasso")
    if isinstance(polygon, Mapping):
        try:
            xs, ys = np.asarray(polygon.get("x"), dtype=np.float64), np.asarray(polygon.get("y"), dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if xs.ndim != 1 or xs.shape != ys.shape:
            return None
        rows = latent_map.rows_in_polygon(xs, ys, row_filter or RowFilter())
        return Focus(str(bundle_path), "selection", tuple(int(r) for r in rows)) if len(rows) else None
    return None


def kept_rows(rows, keep: np.ndarray | None) -> np.ndarray:
    """The rows the filter keeps (all of them without a filter), in their order."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows if keep is None else rows[keep[rows]]


def source_table(bundle, rows) -> pd.DataFrame:
    """id, ra, dec and every property of the given rows, in that order (the CSV export)."""
    rows = np.asarray(rows, dtype=np.int64)
    table = bundle.catalog.iloc[rows].reset_index(drop=True)
    return table[["id", "ra", "dec", *bundle.property_columns]]


def neighbour_table(bundle, neighbours: Neighbours) -> pd.DataFrame:
    """The neighbour results: rank, cosine similarity, then the source table."""
    table = source_table(bundle, neighbours.rows)
    table.insert(0, "cosine_similarity", np.round(neighbours.similarity.astype(float), 4))
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def properties_table(bundle, row: int) -> pd.DataFrame:
    """One source's position and properties as rows of (property, value, unit) for a detail panel."""
    record = bundle.catalog.iloc[int(row)]
    names = ["id", "ra", "dec", *bundle.property_columns]
    units = {"ra": "deg", "dec": "deg"}
    # positions to 1e-6 deg (0.0036″), as catalogues quote them; 6 significant digits would be 3.6″ in RA
    return pd.DataFrame({
        "property": names,
        "value": [f"{record[n]:.6f}" if n in ("ra", "dec") and np.isfinite(record[n]) else _format_value(record[n])
                  for n in names],
        "unit": [units.get(n) or bundle.column_unit(n) for n in names],
    })


def crop_note(bundle, row: int) -> str | None:
    """A warning when the source is larger than the crop its thumbnail and embedding were made from."""
    if "extends_past_crop" not in bundle.catalog.columns or not bool(bundle.catalog["extends_past_crop"].iat[row]):
        return None
    crop_arcsec = bundle.preprocessing().crop_pixels * bundle.manifest.data.pixel_scale_arcsec
    return (f"This source is larger than the {crop_arcsec:g}″ crop the encoder saw: its outer emission is cut from "
            "the thumbnail and the embedding, so its neighbours may match only its centre.")


COMPOSITE = "colour composite"


def band_choices(bundle) -> list[str]:
    """The band switcher's options: the bundle's own thumbnail, then each band, when the bundle keeps them."""
    return [] if bundle.band_thumbnails is None else [COMPOSITE, *bundle.manifest.data.bands]


def band_thumbnail(bundle, row: int, band: str = COMPOSITE) -> np.ndarray:
    """Source ``row``'s thumbnail in ``band`` (grey levels, shown through the colour map), or the bundle's own."""
    if band == COMPOSITE or bundle.band_thumbnails is None:
        return bundle.thumbnails[row]
    return np.asarray(bundle.band_thumbnails[row, list(bundle.manifest.data.bands).index(band)])


def enlarged(thumbnail: np.ndarray, display: Display, pixels: int = 560) -> np.ndarray:
    """A thumbnail colour-mapped under the display and scaled up without smoothing (each pixel stays a pixel)."""
    from PIL import Image

    rgb = to_rgb(thumbnail, display)
    factor = max(1, pixels // max(rgb.shape[:2]))
    return np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] * factor, rgb.shape[0] * factor), Image.NEAREST))


def cutout_caption(bundle, display: Display) -> str:
    pixels = bundle.thumbnails.shape[1]
    scale = bundle.manifest.data.pixel_scale_arcsec * bundle.preprocessing().crop_pixels / pixels
    how = "as built (asinh)" if display.is_bundle_default else f"{display.stretch}, {display.interval}"
    return f"{pixels}×{pixels} px at {scale:.3g}″/px ({pixels * scale:.4g}″ across) · stretch {how} · {display.colormap}"


# Occlusion maps: red where masking lowers the score, blue where it raises it, transparent at zero (the image shows).
OCCLUSION_COLOURS = [[0.0, "rgba(33,102,172,0.9)"], [0.5, "rgba(247,247,247,0)"], [1.0, "rgba(178,24,43,0.9)"]]


def occlusion_figure(rgb: np.ndarray, heat: np.ndarray, *, title: str = "", score: str = "score drop"):
    """A Plotly figure: the source's image ``rgb`` [h, w, 3] under the occlusion map ``heat`` [H, W] (any
    resolution: the image is scaled to cover the map), on a diverging scale symmetric about 0, with a colour bar."""
    import plotly.graph_objects as go

    heat = np.asarray(heat, dtype=np.float64)
    height, width = heat.shape
    finite = np.abs(heat[np.isfinite(heat)])
    extent = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    dx, dy = width / rgb.shape[1], height / rgb.shape[0]
    figure = go.Figure()
    figure.add_trace(go.Image(z=np.asarray(rgb, dtype=np.uint8), x0=-0.5 + dx / 2, dx=dx, y0=-0.5 + dy / 2, dy=dy,
                              hoverinfo="skip"))
    figure.add_trace(go.Heatmap(z=heat, zmin=-extent, zmax=extent, colorscale=OCCLUSION_COLOURS,
                                colorbar={"title": {"text": score, "side": "right"}},
                                hovertemplate="x %{x}, y %{y}: drop %{z:.3g}<extra></extra>"))
    figure.update_xaxes(showticklabels=False, range=[-0.5, width - 0.5], constrain="domain")
    figure.update_yaxes(showticklabels=False, range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain")
    figure.update_layout(title=title or None, height=460, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return figure


def _format_value(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "—" if not np.isfinite(value) else f"{value:.6g}"
    return "—" if value is None or value is pd.NA else str(value)


@dataclass
class NeighbourResult:
    """Everything the pages show for one query source."""
    row: int
    neighbours: Neighbours
    table: pd.DataFrame
    gallery: str           # HTML


def neighbour_result(bundle, row: int, k: int = DEFAULT_K, *, dedup_arcsec: float | None = None,
                     allowed: np.ndarray | None = None, display: Display = Display()) -> NeighbourResult:
    """A source's k nearest neighbours in the full embedding space (among the ``allowed`` rows), as a table
    and a gallery.

    The query source leads the gallery (outlined), so the user sees what was matched; every neighbour
    tile can be clicked to walk on.
    """
    neighbours = neighbours_of_row(bundle, row, k, dedup_arcsec=dedup_arcsec, allowed=allowed)
    query = GalleryItem(bundle.thumbnails[row], str(bundle.catalog["id"].iat[row]), ("query",), highlight=True)
    return NeighbourResult(int(row), neighbours, neighbour_table(bundle, neighbours),
                           neighbour_gallery(bundle, query, neighbours, display))


def neighbour_gallery(bundle, query: GalleryItem, neighbours: Neighbours, display: Display = Display()) -> str:
    """The query tile, then one clickable tile per neighbour captioned with its cosine similarity."""
    ids = bundle.catalog["id"].iloc[neighbours.rows]  # index first: converting a 10^6-row column costs ~60 ms
    items = [query] + [GalleryItem(bundle.thumbnails[r], str(i), (f"cos {s:.3f}",), row=int(r))
                       for r, i, s in zip(neighbours.rows, ids, neighbours.similarity)]
    return gallery_html(items, display)


def selection_gallery(bundle, rows, cap: int = SELECTION_GALLERY_CAP, display: Display = Display()) -> str:
    """Clickable thumbnails of the first ``cap`` selected sources."""
    shown = np.asarray(rows)[:cap]
    ids = bundle.catalog["id"].iloc[shown]
    return gallery_html([GalleryItem(bundle.thumbnails[r], str(i), row=int(r)) for r, i in zip(shown, ids)], display)


def catalog_coords(bundle) -> SkyCoord:
    return SkyCoord(bundle.catalog["ra"].to_numpy() * u.deg, bundle.catalog["dec"].to_numpy() * u.deg, frame="icrs")


@dataclass(frozen=True)
class SourceMatch:
    row: int
    separation_arcsec: float
    within_radius: bool


def nearest_source(catalog: SkyCoord, position: SkyCoord, radius_arcsec: float = MATCH_RADIUS_ARCSEC) -> SourceMatch:
    """The catalogue source nearest to a position, and whether it lies within the radius.

    ``catalog`` is :func:`catalog_coords` of the bundle; keep it between calls, since
    astropy stores its KD-tree on it.
    """
    rows, separations, _ = position.match_to_catalog_sky(catalog)  # shape (1,) even for one position
    arcsec = float(separations.to_value(u.arcsec).ravel()[0])
    return SourceMatch(int(np.ravel(rows)[0]), arcsec, arcsec <= radius_arcsec)


def format_separation(arcsec: float) -> str:
    """An angle in the unit a reader expects: arcsec below 1′, arcmin below 1°, else degrees."""
    if arcsec < 60:
        return f"{arcsec:.2f}″"
    if arcsec < 3600:
        return f"{arcsec / 60:.2f}′"
    return f"{arcsec / 3600:.2f}°"


def format_position(position: SkyCoord) -> str:
    """RA/Dec in sexagesimal and decimal degrees."""
    icrs = position.icrs
    return (f"{icrs.to_string('hmsdms', sep=':', precision=1)} "
            f"({icrs.ra.deg:.5f}°, {icrs.dec.deg:+.5f}°)")


QUALITY_SCORES = {
    "log_size_r2_from_map": "R² of log size, k-NN on the 2-D map",
    "class_accuracy_from_embeddings": "class accuracy, k-NN on the embeddings",
    "monitor_linear": "linear probe, training monitor",
    "monitor_knn": "k-NN, training monitor",
}


def representation_check(quality: Mapping) -> tuple[pd.DataFrame | None, str | None]:
    """The bundle's learned-vs-baselines table (``quality["baselines"]``, written by training.embed) and a
    warning when the pre-trained encoder does not beat a random-init encoder; (None, None) when the bundle
    was built without the comparison."""
    compared = quality.get("baselines") or {}
    rows = compared.get("comparison") or []
    if not rows:
        return None, None
    table = pd.DataFrame([{"score": f"{QUALITY_SCORES.get(r['score'], r['score'])} ({r['column']})",
                           "learned": r["learned"], "random init": r["random init"], "pixels": r["pixels"]}
                          for r in rows])
    losing = [QUALITY_SCORES.get(s, s) for s in compared.get("not_beaten", [])]
    warning = (f"The pre-trained encoder is no better than a random-init encoder of the same architecture on: "
               f"{'; '.join(losing)}. Its map and searches may reflect the architecture more than what it "
               "learned.") if losing else None
    return table, warning
