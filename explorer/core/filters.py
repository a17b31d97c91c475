"""Catalogue filters: ranges on numeric columns, sets of values on categorical ones.

A :class:`RowFilter` is hashable, so the map, the searches and the caches key on it; it turns
into a boolean mask over the catalogue's rows (:meth:`RowFilter.mask`) and travels in a URL as
compact JSON (:meth:`RowFilter.to_text` / :func:`parse_filter`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.core.bundle import category_labels
from explorer.core.errors import InputError


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


class ColumnCodes:
    """Each categorical column as integer codes into its labels, computed once per column: comparing a million
    strings per filter change or per colour group costs a second; comparing codes costs milliseconds."""

    def __init__(self, catalog: pd.DataFrame):
        self.catalog = catalog
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes [N] int, labels [K] object): ``labels[codes]`` is :func:`category_labels` of the column."""
        if column not in self._codes:
            codes, labels = pd.factorize(category_labels(self.catalog[column]), sort=True)
            self._codes[column] = (codes.astype(np.int64), np.asarray(labels, dtype=object))
        return self._codes[column]


@dataclass(frozen=True)
class Condition:
    """``low <= column <= high`` (either bound may be open), or ``column`` in ``values`` (as shown on the map,
    blank and missing cells as "(missing)"). A range never keeps missing values."""
    column: str
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] | None = None

    def mask(self, catalog: pd.DataFrame, codes: ColumnCodes | None = None) -> np.ndarray:
        if self.column not in catalog.columns:
            raise InputError(f"filter: no catalogue column {self.column!r}")
        series = catalog[self.column]
        if self.values is not None:
            if codes is None:
                return np.isin(category_labels(series), list(self.values))
            column_codes, labels = codes(self.column)
            return np.isin(labels, list(self.values))[column_codes]
        if not is_numeric(series):
            raise InputError(f"filter: {self.column!r} is not numeric; choose values instead of a range")
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        keep = np.isfinite(values)
        if self.low is not None:
            keep &= values >= self.low
        if self.high is not None:
            keep &= values <= self.high
        return keep

    def describe(self) -> str:
        if self.values is not None:
            return f"{self.column} ∈ {{{', '.join(self.values)}}}"
        if self.low is not None and self.high is not None:
            return f"{self.low:.6g} ≤ {self.column} ≤ {self.high:.6g}"
        return f"{self.column} ≥ {self.low:.6g}" if self.low is not None else f"{self.column} ≤ {self.high:.6g}"


@dataclass(frozen=True)
class RowFilter:
    """All conditions at once (AND). The empty filter keeps every row."""
    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def mask(self, catalog: pd.DataFrame, codes: ColumnCodes | None = None) -> np.ndarray:
        keep = np.ones(len(catalog), dtype=bool)
        for condition in self.conditions:
            keep &= condition.mask(catalog, codes)
        return keep

    def describe(self) -> str:
        return "; ".join(c.describe() for c in self.conditions) or "none"

    def to_text(self) -> str:
        """Compact JSON for a URL: ``[["flux_mjy", 10, null], ["morphology", ["FRI", "FRII"]]]``."""
        items = [[c.column, list(c.values)] if c.values is not None else [c.column, c.low, c.high]
                 for c in self.conditions]
        return json.dumps(items, separators=(",", ":"), ensure_ascii=False)


def parse_filter(text: str, catalog: pd.DataFrame) -> RowFilter:
    """The filter :meth:`RowFilter.to_text` wrote, checked against the catalogue (InputError if it does not fit)."""
    try:
        items = json.loads(text)
    except ValueError:
        raise InputError("filter: not a filter this explorer wrote (expected a JSON list)") from None
    if not isinstance(items, list):
        raise InputError("filter: expected a list of conditions")
    conditions = []
    for item in items:
        if not isinstance(item, list) or len(item) not in (2, 3) or not isinstance(item[0], str):
            raise InputError(f"filter: cannot read the condition {item!r}")
        if len(item) == 2:
            if not isinstance(item[1], list):
                raise InputError(f"filter: the values of {item[0]!r} must be a list")
            condition = Condition(item[0], values=tuple(str(v) for v in item[1]))
        else:
            low, high = (_bound(item[0], v) for v in item[1:])
            condition = Condition(item[0], low, high)
        condition.mask(catalog.iloc[:0])  # the column exists and has the right kind
        conditions.append(condition)
    return RowFilter(tuple(conditions))


def _bound(column: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InputError(f"filter: the bounds of {column!r} must be numbers")
    return float(value)
