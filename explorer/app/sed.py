"""A source's spectral energy distribution from its catalogue magnitudes: ``mag_<band>`` against wavelength.

Any bundle whose catalogue has magnitudes in S-PLUS's bands (:data:`explorer.core.surveys.SPLUS_BANDS`;
the 5 broad ones alone will do) gets an SED plot, for one source or for a source beside its neighbours, so
an astronomer can see whether similar images mean similar SEDs. Errors come from ``mag_err_<band>``.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.core.surveys import SPLUS_BANDS

MIN_BANDS = 3


def sed_bands(columns) -> list[tuple[str, float]]:
    """(band, central wavelength Å) of the bands with a ``mag_<band>`` column, blue to red."""
    present = set(columns)
    return [(band, wavelength) for band, wavelength in SPLUS_BANDS.items() if f"mag_{band}" in present]


def sed_figure(catalog, rows, *, title: str = "SED") -> go.Figure | None:
    """Magnitudes against wavelength for ``rows`` of the catalogue (the first drawn boldest); None without an SED."""
    bands = sed_bands(catalog.columns)
    if len(bands) < MIN_BANDS:
        return None
    wavelengths = [w for _, w in bands]
    figure = go.Figure()
    for k, row in enumerate(rows):
        mags = catalog.iloc[row][[f"mag_{b}" for b, _ in bands]].to_numpy(float)
        errors = (catalog.iloc[row][[f"mag_err_{b}" for b, _ in bands]].to_numpy(float)
                  if all(f"mag_err_{b}" in catalog.columns for b, _ in bands) else None)
        figure.add_trace(go.Scatter(
            x=wavelengths, y=mags, mode="lines+markers", name=str(catalog["id"].iat[row]),
            text=[b for b, _ in bands], hovertemplate="%{text}: %{y:.2f} mag<extra>%{fullData.name}</extra>",
            error_y=None if errors is None else {"type": "data", "array": np.nan_to_num(errors), "visible": True},
            line={"width": 3 if k == 0 else 1}, opacity=1.0 if k == 0 else 0.6))
    figure.update_layout(title=title, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         xaxis={"title": "wavelength (Å)"}, yaxis={"title": "AB magnitude", "autorange": "reversed"},
                         showlegend=len(rows) > 1)
    return figure
