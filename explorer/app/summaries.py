"""What a selection holds, beside the catalogue it came from: class counts, property histograms and
median thumbnails per group (plain functions of a bundle, no Streamlit)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.app.images import Display, GalleryItem, gallery_html
from explorer.core.filters import ColumnCodes, is_numeric

MEDIAN_SAMPLE = 256      # thumbnails per group behind a median image (a random sample of bigger groups)
MAX_GROUPS = 12
HISTOGRAM_BINS = 30
SELECTION_COLOUR = "#ff2e88"
CATALOGUE_COLOUR = "#8c8c8c"


def class_counts(bundle, rows, column: str, keep: np.ndarray | None = None, codes: ColumnCodes | None = None
                 ) -> pd.DataFrame:
    """Per value of a categorical column: how many selected sources have it, and its share in the selection
    and in the (filtered) catalogue, most common in the selection first. ``codes``: the column's integer codes,
    computed once (labelling 10^6 strings costs half a second a rerun)."""
    column_codes, labels = (codes or ColumnCodes(bundle.catalog))(column)
    everyone = column_codes if keep is None else column_codes[keep]
    picked = np.bincount(column_codes[np.asarray(rows, dtype=np.int64)], minlength=len(labels))
    overall = np.bincount(everyone, minlength=len(labels))
    order = [i for i in np.argsort(-picked, kind="stable") if picked[i]]
    table = pd.DataFrame({column: labels[order].astype(str), "selected": picked[order]})
    table["% of selection"] = 100 * table["selected"] / max(int(picked.sum()), 1)
    table["% of catalogue"] = 100 * overall[order] / max(len(everyone), 1)
    return table.reset_index(drop=True)


def property_histogram(bundle, rows, column: str, keep: np.ndarray | None = None, *, log: bool = False) -> dict:
    """A Plotly figure: the selection's distribution of a numeric column over the catalogue's, both normalised
    to unit area on the same bins (log10 of positive values when ``log``)."""
    values = bundle.catalog[column].to_numpy(dtype=np.float64, na_value=np.nan)
    if log:
        values = np.log10(values, where=values > 0, out=np.full_like(values, np.nan))
    everyone = values if keep is None else values[keep]
    picked = values[np.asarray(rows, dtype=np.int64)]
    finite = everyone[np.isfinite(everyone)]
    edges = np.histogram_bin_edges(finite if len(finite) else [0.0, 1.0], bins=HISTOGRAM_BINS)
    traces = []
    for name, data, colour in (("catalogue", everyone, CATALOGUE_COLOUR), ("selection", picked, SELECTION_COLOUR)):
        data = data[np.isfinite(data)]
        density, _ = np.histogram(data, bins=edges, density=bool(len(data)))
        traces.append(dict(type="bar", name=f"{name} ({len(data):,})", x=(edges[:-1] + edges[1:]) / 2,
                           y=density, width=np.diff(edges), marker=dict(color=colour), opacity=0.6))
    unit = bundle.column_unit(column)
    title = (f"log₁₀ {column}" if log else column) + (f" [{unit}]" if unit else "")
    return {"data": traces, "layout": dict(barmode="overlay", height=260, margin=dict(l=8, r=8, t=28, b=8),
                                           xaxis=dict(title=dict(text=title)), yaxis=dict(title=dict(text="density")),
                                           legend=dict(orientation="h", y=1.15))}


def median_thumbnails(bundle, rows, column: str | None, display: Display = Display(), *, seed: int = 0,
                      codes: ColumnCodes | None = None) -> str:
    """A gallery of one median thumbnail per group of the selection (by a categorical column; one group
    for the whole selection without one): the typical look of each class."""
    rows = np.asarray(rows, dtype=np.int64)
    if column is None or is_numeric(bundle.catalog[column]):
        groups = {"selection": rows}
    else:
        column_codes, labels = (codes or ColumnCodes(bundle.catalog))(column)
        picked = column_codes[rows]
        counts = np.bincount(picked, minlength=len(labels))
        largest = [i for i in np.argsort(-counts, kind="stable")[:MAX_GROUPS] if counts[i]]
        groups = {str(labels[i]): rows[picked == i] for i in largest}
    rng = np.random.default_rng(seed)
    items = []
    for name, members in groups.items():
        sample = np.sort(rng.choice(members, size=min(len(members), MEDIAN_SAMPLE), replace=False))
        median = np.median(np.asarray(bundle.thumbnails[sample], dtype=np.float32), axis=0)
        items.append(GalleryItem(np.round(median).astype(np.uint8), name,
                                 (f"median of {len(sample):,}" + (f" / {len(members):,}" if len(sample) < len(members)
                                                                 else ""),)))
    return gallery_html(items, display)


def summary_columns(bundle) -> tuple[list[str], list[str]]:
    """(categorical, numeric) catalogue properties a selection can be summarised by."""
    catalog = bundle.catalog
    numeric = [c for c in bundle.property_columns if is_numeric(catalog[c])]
    return [c for c in bundle.property_columns if c not in numeric], numeric
