"""The SED panel: catalogue magnitudes in S-PLUS's bands against wavelength, for a source and its neighbours."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.app import sed, ui, views
from explorer.core.bundle import load_bundle
from explorer.core.heads import write_predictions
from explorer.core.surveys import SPLUS_BANDS
from tests.app_helpers import galleries
from tests.test_app import assert_no_exception, run_app


@pytest.fixture
def photometric_bundle(synthetic_bundle, tmp_path, monkeypatch):
    """A copy of the synthetic bundle with 12-band magnitudes and errors (a sidecar, as any columns can come)."""
    copy = tmp_path / "bundles" / "photometric"
    shutil.copytree(synthetic_bundle, copy)
    n = load_bundle(copy).n
    rng = np.random.default_rng(0)
    table = pd.DataFrame({f"mag_{b}": 18 + 0.2 * k + rng.normal(0, 0.1, n) for k, b in enumerate(SPLUS_BANDS)})
    table = table.assign(**{f"mag_err_{b}": np.full(n, 0.05) for b in SPLUS_BANDS})
    write_predictions(copy, "photometry", table, {c: {"unit": "mag", "description": c} for c in table.columns})
    monkeypatch.setenv("EXPLORER_BUNDLES", str(copy.parent))
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    return load_bundle(copy)


def test_the_sed_is_the_magnitudes_against_each_bands_wavelength(photometric_bundle):
    catalog = photometric_bundle.catalog
    bands = sed.sed_bands(catalog.columns)
    assert [b for b, _ in bands] == list(SPLUS_BANDS) and [w for _, w in bands] == sorted(w for _, w in bands)
    figure = sed.sed_figure(catalog, [3, 7])
    assert len(figure.data) == 2 and figure.layout.yaxis.autorange == "reversed"        # bright up
    np.testing.assert_allclose(figure.data[0].y, catalog.iloc[3][[f"mag_{b}" for b in SPLUS_BANDS]].to_numpy(float))
    assert list(figure.data[0].x) == list(SPLUS_BANDS.values()) and figure.data[1].name == str(catalog["id"].iat[7])
    np.testing.assert_allclose(figure.data[0].error_y.array, 0.05)
    # Two bands are not an SED; no magnitudes, no plot.
    assert sed.sed_figure(catalog[["id", "mag_g", "mag_r"]], [0]) is None
    assert sed.sed_figure(catalog.drop(columns=[c for c in catalog.columns if c.startswith("mag")]), [0]) is None


def test_the_explore_page_shows_a_sources_sed_and_its_neighbours_on_a_toggle(photometric_bundle):
    row = 5
    focus = views.Focus(str(Path(photometric_bundle.path).resolve()), "source", (row,))
    app = run_app(state={ui.FOCUS_KEY: focus})
    assert_no_exception(app)
    charts = [c for c in app.get("plotly_chart") if "SED of" in c.proto.spec]
    assert len(charts) == 1 and str(photometric_bundle.catalog["id"].iat[row]) in charts[0].proto.spec
    toggle = next(t for t in app.toggle if t.label == "Compare the neighbours' SEDs")
    toggle.set_value(True).run()
    assert_no_exception(app)
    compared = [c for c in app.get("plotly_chart") if "and its neighbours" in c.proto.spec]
    shown = galleries(app)[0].count("<figure")                                # the source and its neighbours
    assert len(compared) == 1 and compared[0].proto.spec.count('"mode":"lines+markers"') == shown
