"""Two encoders on the same sources (the Compare page): rows matched by ``id``, a click or selection on one
map carried to the other, and how close each model's neighbours are to the query in a property
(paper 5's question: which encoder finds lenses with the same θ_E?)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from explorer.app.latent_map import Marks, focus_marks
from explorer.app.views import SELECTION_OVERLAY_CAP
from explorer.core.filters import RowFilter

Side = Literal["a", "b"]


@dataclass(frozen=True)
class Pairing:
    """Row correspondence of two bundles by source id; -1 where the other bundle lacks the id."""
    a_to_b: np.ndarray
    b_to_a: np.ndarray

    @property
    def matched(self) -> int:
        return int((self.a_to_b >= 0).sum())

    def carry(self, rows, side: Side) -> np.ndarray:
        """Rows of ``side`` as rows of the other bundle, in order, those without a match dropped."""
        mapping = self.a_to_b if side == "a" else self.b_to_a
        carried = mapping[np.asarray(rows, dtype=np.int64)]
        return carried[carried >= 0]


def pair_bundles(a, b) -> Pairing:
    ids_a = pd.Index(a.catalog["id"].astype(str))
    ids_b = pd.Index(b.catalog["id"].astype(str))
    return Pairing(ids_b.get_indexer(ids_a).astype(np.int64), ids_a.get_indexer(ids_b).astype(np.int64))


@dataclass(frozen=True)
class CompareFocus:
    """A click (one row) or a box/lasso (its rows) on one of the two maps, in that map's rows."""
    side: Side
    kind: Literal["source", "selection"]
    rows: tuple[int, ...]

    def rows_on(self, side: Side, pairing: Pairing) -> np.ndarray:
        rows = np.asarray(self.rows, dtype=np.int64)
        return rows if side == self.side else pairing.carry(rows, self.side)

    def source_on(self, side: Side, pairing: Pairing) -> int | None:
        """The clicked source as a row of ``side`` (None for a selection, or when that bundle lacks it)."""
        rows = self.rows_on(side, pairing) if self.kind == "source" else ()
        return int(rows[0]) if len(rows) else None


def marks_for(focus: CompareFocus | None, side: Side, pairing: Pairing, neighbour_rows=()) -> Marks:
    """What one map rings: the clicked source (from either map) and this model's own neighbours, or the selection."""
    if focus is None:
        return Marks()
    if focus.kind == "source":
        row = focus.source_on(side, pairing)
        return Marks() if row is None else focus_marks(row, neighbour_rows)
    return Marks(selection=tuple(focus.rows_on(side, pairing)[:SELECTION_OVERLAY_CAP].tolist()))


def other_filter(row_filter: RowFilter, catalog: pd.DataFrame) -> RowFilter:
    """The sidebar's filter on the second bundle, when that bundle has every column it names."""
    return row_filter if all(c.column in catalog.columns for c in row_filter.conditions) else RowFilter()


def neighbour_agreement(catalog: pd.DataFrame, row: int, neighbour_rows, column: str | None) -> dict | None:
    """The median |Δ| between the query's value of a numeric ``column`` and its neighbours' (None when the column
    is not numeric or nothing is finite): the smaller, the better the model keeps that property."""
    if column is None or column not in catalog.columns or not pd.api.types.is_numeric_dtype(catalog[column]):
        return None
    values = catalog[column].to_numpy(dtype=np.float64, na_value=np.nan)
    query, around = values[int(row)], values[np.asarray(neighbour_rows, dtype=np.int64)]
    differences = np.abs(around - query)
    differences = differences[np.isfinite(differences)]
    if not np.isfinite(query) or not len(differences):
        return None
    return {"column": column, "query": float(query), "median_abs_difference": float(np.median(differences)),
            "neighbours": int(len(differences))}
