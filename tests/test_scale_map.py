"""A map that scales: the density layer, the stratified sample, and selections over the whole catalogue."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.synthetic import synthetic_bundle
from explorer.app import ui, views
from explorer.core.bundle import load_bundle
from explorer.app.figures import (DENSITY_FROM_N, ROW, DensityGrid, MapFigure, MapStyle, focus_overlays, rows_in_box,
                              rows_in_lasso, stratified_sample)

APP = str(Path(__file__).resolve().parents[1] / "app.py")
SAMPLE = 150


@pytest.fixture(scope="module")
def bundle(synthetic_bundle):
    return load_bundle(synthetic_bundle)


@pytest.fixture(scope="module")
def density_map(bundle):
    """The 600-source fixture drawn the way a large catalogue is: density cells plus a 150-point sample."""
    return MapFigure(bundle, density_from_n=100, sample_points=SAMPLE, bins=24)


def trace_rows(trace) -> np.ndarray:
    return np.asarray(trace["customdata"])[:, ROW].astype(np.int64)


def points(figure) -> list[dict]:
    return [t for t in figure["data"] if t["type"] == "scattergl"]


def heatmaps(figure) -> list[dict]:
    return [t for t in figure["data"] if t["type"] == "heatmap"]


def cell_bounds(grid: DensityGrid, cell: int) -> tuple[np.ndarray, np.ndarray]:
    iy, ix = divmod(cell, grid.shape[1])
    low = grid.low + grid.size * np.array([ix, iy])
    return low, low + grid.size


def test_every_source_is_counted_in_the_cell_that_holds_it(bundle):
    grid = DensityGrid(bundle.map_xy, bins=24)
    assert grid.counts.sum() == bundle.n and max(grid.shape) == 24
    for row in (0, 17, 333, bundle.n - 1):
        low, high = cell_bounds(grid, grid.cell[row])
        assert np.all(bundle.map_xy[row] >= low - 1e-6) and np.all(bundle.map_xy[row] <= high + 1e-6)


def test_cell_means_and_majorities_match_a_group_by(bundle):
    grid = DensityGrid(bundle.map_xy, bins=24)
    z = bundle.catalog["z"].to_numpy(dtype=float)  # some missing: means are over the known values
    expected = pd.Series(z).groupby(grid.cell).mean()
    mean = grid.mean(z)
    np.testing.assert_allclose(mean[expected.index], expected.to_numpy(), rtol=1e-9)
    codes = pd.Categorical(bundle.catalog["morphology"]).codes.astype(np.int64)
    majority = grid.majority(codes, codes.max() + 1)
    for cell, members in pd.Series(codes).groupby(grid.cell):
        counts = np.bincount(members, minlength=codes.max() + 1)
        assert counts[int(majority[cell])] == counts.max()


def test_the_sample_keeps_every_occupied_cell_and_thins_the_dense_ones():
    rng = np.random.default_rng(0)
    cells = np.concatenate([np.zeros(5000, int), rng.integers(1, 200, 3000), [500, 501, 502]])  # a core, a halo, outliers
    sample = stratified_sample(cells, 400, seed=1)
    assert len(sample) == 400 and np.all(np.diff(sample) > 0)
    assert set(np.unique(cells)) == set(np.unique(cells[sample]))  # outliers and halo cells all drawn
    per_cell = np.bincount(cells[sample])
    assert per_cell[0] <= per_cell[per_cell > 0].min() + 1  # the core gets no more than any other cell
    assert np.array_equal(stratified_sample(cells, 10 ** 6), np.arange(len(cells)))


def test_a_density_map_draws_counts_and_a_sample_of_real_points(bundle, density_map):
    figure = density_map.figure(MapStyle())
    go.Figure(figure)  # plotly's own validation
    count, = heatmaps(figure)
    np.testing.assert_array_equal(np.nan_to_num(count["customdata"]).ravel(), density_map.full.density.counts)
    drawn, = points(figure)
    rows = trace_rows(drawn)
    assert len(rows) == SAMPLE and len(np.unique(rows)) == SAMPLE
    np.testing.assert_array_equal(drawn["x"], bundle.map_xy[rows, 0])
    np.testing.assert_allclose(np.asarray(drawn["customdata"])[:, 1:3], bundle.catalog.loc[rows, ["ra", "dec"]], rtol=1e-6)
    assert figure["layout"]["uirevision"] == str(bundle.path)  # zoom and pan survive reruns


def test_numeric_colour_is_the_cell_mean_on_the_points_scale(bundle, density_map):
    figure = density_map.figure(MapStyle(colour_by="las_arcsec", log_scale=True))
    _, mean_layer = heatmaps(figure)
    values = np.log10(bundle.catalog["las_arcsec"].to_numpy(dtype=float))
    np.testing.assert_allclose(np.nan_to_num(mean_layer["z"]).ravel(),
                               np.nan_to_num(density_map.full.density.mean(values)), rtol=1e-5)
    coloured = next(t for t in points(figure) if t["marker"].get("showscale"))
    assert (coloured["marker"]["cmin"], coloured["marker"]["cmax"]) == (mean_layer["zmin"], mean_layer["zmax"])
    assert coloured["marker"]["cmin"] == pytest.approx(values.min())


def test_categorical_colour_is_the_cell_majority_with_full_catalogue_counts(bundle, density_map):
    figure = density_map.figure(MapStyle(colour_by="morphology"))
    counts = bundle.catalog["morphology"].value_counts()
    assert {t["name"] for t in points(figure)} == {f"{v} ({n:,})" for v, n in counts.items()}
    assert sum(len(t["x"]) for t in points(figure)) == SAMPLE
    _, majority = heatmaps(figure)
    occupied = density_map.full.density.counts > 0
    labels = np.asarray(majority["text"]).ravel()
    assert set(labels[occupied]) <= set(counts.index) and set(labels[~occupied]) == {""}


def test_neighbours_outside_the_sample_are_still_highlighted(bundle, density_map):
    hidden = np.setdiff1d(np.arange(bundle.n), density_map.drawn)[:3]
    figure = density_map.figure(MapStyle(), focus_overlays(int(hidden[0]), hidden[1:]))
    neighbours, focus = figure["data"][-2:]
    assert trace_rows(focus).tolist() == [hidden[0]] and trace_rows(neighbours).tolist() == hidden[1:].tolist()
    np.testing.assert_allclose(np.asarray(focus["customdata"])[0, 1:3], bundle.catalog.loc[hidden[0], ["ra", "dec"]],
                               rtol=1e-6)


def test_a_box_or_lasso_selects_every_source_inside_not_only_the_sample(bundle, density_map):
    xy = bundle.map_xy.astype(np.float64)
    (x0, y0), (x1, y1) = np.percentile(xy, 20, axis=0), np.percentile(xy, 70, axis=0)
    rows = density_map.selection({"selection": {"points": [], "box": [{"x": [x1, x0], "y": [y0, y1]}]}})
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    assert rows.tolist() == np.flatnonzero(inside).tolist()
    assert len(rows) > len(np.intersect1d(rows, density_map.drawn))  # more than the drawn points in the box

    triangle = np.array([[x0, y0], [x1, y0], [x0, y1]])
    rows = density_map.selection({"selection": {"lasso": [{"x": triangle[:, 0], "y": triangle[:, 1]}]}})
    u, v = (xy[:, 0] - x0) / (x1 - x0), (xy[:, 1] - y0) / (y1 - y0)  # inside the right triangle: u, v >= 0, u + v <= 1
    assert rows.tolist() == np.flatnonzero((u >= 0) & (v >= 0) & (u + v <= 1)).tolist()
    assert rows_in_lasso(xy, [0, 1], [0, 1]).size == 0 and rows_in_box(xy, [x0, x0], [y1, y1]).size == 0


def test_clicks_and_small_maps_resolve_through_the_points(bundle, density_map):
    drawn_point = {"selection": {"points": [{"x": 0.0, "y": 0.0, "customdata": {"0": 3.0}}], "box": [], "lasso": []}}
    assert density_map.selection(drawn_point) is None  # a drawn point resolves through its customdata
    assert MapFigure(bundle).selection({"selection": {"box": [{"x": [0, 1], "y": [0, 1]}]}}) is None  # small map


@pytest.fixture(scope="module")
def large_bundle(tmp_path_factory):
    """Just over the density threshold, so the app draws it as a density map."""
    return synthetic_bundle(tmp_path_factory.mktemp("large") / "survey", n=DENSITY_FROM_N + 500, dim=16, pixels=16,
                            seed=4, survey=True)


def test_the_app_draws_a_large_catalogue_as_density_and_lists_a_large_selection(large_bundle, monkeypatch):
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(large_bundle).parent))
    bundle = load_bundle(large_bundle)
    app = AppTest.from_file(APP, default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    chart = next(c for c in app.get("plotly_chart") if "explore.map" in c.proto.id)
    types = [t["type"] for t in json.loads(chart.proto.spec)["data"]]
    assert types[:2] == ["heatmap", "heatmap"] and "scattergl" in types  # counts, majority, then sample points
    assert any("Box and lasso select every source inside" in c.value for c in app.caption)

    rows = MapFigure(bundle).selection({"selection": {"box": [{"x": [-10, 10], "y": [-10, 0]}]}})
    app.session_state[ui.FOCUS_KEY] = views.Focus(str(Path(large_bundle).resolve()), "selection", tuple(rows.tolist()))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.subheader[0].value == f"Selection: {len(rows):,} sources" and len(rows) > 10_000
    assert app.get("download_button")


@pytest.mark.browser
def test_a_box_dragged_in_the_browser_lists_every_source_inside_it(large_bundle):
    """The real app in headless Chromium: the box plotly reports reaches the page as every catalogue row in it."""
    from benchmarks.app import box_select
    from benchmarks.browser import CHROMIUM, LAUNCH_ARGS, MAP_PAINTED, streamlit_app

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with streamlit_app(Path(large_bundle).parent) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(url)
        page.wait_for_function(MAP_PAINTED, timeout=120_000)
        result = box_select(page, load_bundle(large_bundle))
        browser.close()
    assert result["box_listed"] == result["box_inside"] > SAMPLE  # all of them, not the few points drawn
