"""The map figure and the thumbnail images: every point is a real row, colours follow the columns."""
import io

import numpy as np
import plotly.graph_objects as go
import pytest
from matplotlib import colormaps
from PIL import Image

from explorer.app.figures import ROW, MapFigure, MapStyle, focus_overlays, is_numeric
from explorer.app.images import GalleryItem, colour_table, data_uri, gallery_html, png_bytes, to_rgb
from explorer.core.preprocess import COLORMAP


def trace_rows(trace) -> np.ndarray:
    return np.asarray(trace["customdata"])[:, ROW].astype(np.int64)


def categorical_column(bundle):
    return next(c for c in bundle.property_columns if not is_numeric(bundle.catalog[c]))


def numeric_column(bundle):
    return next(c for c in bundle.property_columns if is_numeric(bundle.catalog[c]))


@pytest.fixture(scope="module")
def map_figure(explorer_bundle):
    return MapFigure(explorer_bundle)


def assert_points_are_rows(figure, bundle, overlay_names=()):
    """Colour traces partition the catalogue; every point sits at its row's map position."""
    colour_traces = [t for t in figure["data"] if t["name"] not in overlay_names]
    rows = np.concatenate([trace_rows(t) for t in colour_traces])
    assert np.array_equal(np.sort(rows), np.arange(bundle.n))
    for trace in figure["data"]:
        r = trace_rows(trace)
        np.testing.assert_array_equal(trace["x"], bundle.map_xy[r, 0])
        np.testing.assert_array_equal(trace["y"], bundle.map_xy[r, 1])
        assert trace["type"] == "scattergl"


def test_single_colour_map_is_valid_plotly(map_figure, explorer_bundle):
    figure = map_figure.figure(MapStyle(point_size=3, opacity=0.5))
    assert_points_are_rows(figure, explorer_bundle)
    (trace,) = figure["data"]
    assert trace["marker"]["size"] == 3 and trace["marker"]["opacity"] == 0.5
    go.Figure(figure)  # plotly's own validation


def test_categorical_colour_gives_one_legend_trace_per_value(map_figure, explorer_bundle):
    column = categorical_column(explorer_bundle)
    figure = map_figure.figure(MapStyle(colour_by=column))
    assert_points_are_rows(figure, explorer_bundle)
    counts = explorer_bundle.catalog[column].astype(str).value_counts()
    expected = {f"{value} ({count:,})" for value, count in counts.items()}
    assert {t["name"] for t in figure["data"]} == expected
    for trace in figure["data"]:
        values = explorer_bundle.catalog[column].astype(str).to_numpy()[trace_rows(trace)]
        assert len(set(values)) == 1
    assert len({t["marker"]["color"] for t in figure["data"]}) == len(figure["data"])


def test_numeric_colour_is_a_continuous_scale_with_unit(map_figure, explorer_bundle):
    column = numeric_column(explorer_bundle)
    figure = map_figure.figure(MapStyle(colour_by=column))
    assert_points_are_rows(figure, explorer_bundle)
    coloured = next(t for t in figure["data"] if t["marker"].get("showscale"))
    values = explorer_bundle.catalog[column].to_numpy(dtype=float)[trace_rows(coloured)]
    np.testing.assert_allclose(coloured["marker"]["color"], values, rtol=1e-6)
    assert column in coloured["marker"]["colorbar"]["title"]["text"]
    unit = explorer_bundle.column_unit(column)
    if unit:
        assert f"[{unit}]" in coloured["marker"]["colorbar"]["title"]["text"]


def test_log_colour_sets_non_positive_and_missing_apart(synthetic_bundle):
    from explorer.core.bundle import load_bundle

    bundle = load_bundle(synthetic_bundle)
    values = bundle.catalog["bend_angle_deg"].to_numpy(dtype=float)
    assert (values <= 0).any() and (values > 0).any()  # the fixture has straight (0°) and bent sources
    figure = MapFigure(bundle).figure(MapStyle(colour_by="bend_angle_deg", log_scale=True))
    assert_points_are_rows(figure, bundle)
    grey, coloured = figure["data"]
    positive = np.flatnonzero(values > 0)
    np.testing.assert_array_equal(np.sort(trace_rows(coloured)), positive)
    np.testing.assert_allclose(coloured["marker"]["color"], np.log10(values[trace_rows(coloured)]), rtol=1e-6)
    assert coloured["marker"]["colorbar"]["title"]["text"].startswith("log₁₀ bend_angle_deg")
    assert grey["name"] == f"bend_angle_deg ≤ 0 or missing (no log): {len(values) - len(positive):,}"


def test_missing_values_are_drawn_grey_and_counted(synthetic_bundle):
    from explorer.core.bundle import load_bundle

    bundle = load_bundle(synthetic_bundle)
    missing = int(bundle.catalog["z"].isna().sum())
    assert missing > 0
    figure = MapFigure(bundle).figure(MapStyle(colour_by="z"))
    assert_points_are_rows(figure, bundle)
    assert figure["data"][0]["name"] == f"z missing: {missing:,}"


def test_hover_shows_id_position_and_properties_with_units(map_figure, explorer_bundle):
    trace = map_figure.figure(MapStyle())["data"][0]
    template = trace["hovertemplate"]
    assert "%{hovertext}" in template and "RA %{customdata[1]" in template and "Dec %{customdata[2]" in template
    lines = template.removesuffix("<extra></extra>").split("<br>")
    for column in explorer_bundle.property_columns:
        if is_numeric(explorer_bundle.catalog[column]):
            line = next(line for line in lines if line.startswith(f"{column} = %{{customdata["))
            assert line.endswith(f"}} {explorer_bundle.column_unit(column)}".rstrip())
    row = int(trace_rows(trace)[5])
    text = trace["hovertext"][5]
    assert f"<b>{explorer_bundle.catalog['id'].iat[row]}</b>" in text
    for column in explorer_bundle.property_columns:
        if not is_numeric(explorer_bundle.catalog[column]):
            assert f"{column}: {explorer_bundle.catalog[column].iat[row]}" in text
    np.testing.assert_allclose(trace["customdata"][5, 1:3],
                               explorer_bundle.catalog.loc[row, ["ra", "dec"]].to_numpy(float), rtol=1e-6)


def test_overlays_mark_the_source_and_its_neighbours(map_figure, explorer_bundle):
    style = MapStyle(colour_by=categorical_column(explorer_bundle))
    plain = map_figure.figure(style)
    overlays = focus_overlays(7, [3, 11, 42])
    figure = map_figure.figure(style, overlays)
    names = [o.name for o in overlays]
    assert_points_are_rows(figure, explorer_bundle, overlay_names=names)
    assert figure["data"][:len(plain["data"])] == plain["data"]  # the base traces are reused, not rebuilt
    neighbours, focus = figure["data"][-2:]
    assert trace_rows(neighbours).tolist() == [3, 11, 42] and trace_rows(focus).tolist() == [7]
    assert neighbours["marker"]["symbol"] == "circle-open" and focus["marker"]["symbol"] == "star"


def test_unknown_colour_column_is_refused(map_figure):
    with pytest.raises(KeyError, match="no catalogue column"):
        map_figure.figure(MapStyle(colour_by="not_a_column"))


def test_colour_table_is_the_radio_colour_map():
    table = colour_table()
    assert COLORMAP == "inferno" and table.shape == (256, 3) and table.dtype == np.uint8
    expected = np.round(colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255)
    np.testing.assert_array_equal(table, expected)


def test_png_round_trip_keeps_the_shared_stretch(explorer_bundle):
    thumbnail = np.asarray(explorer_bundle.thumbnails[0])
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(thumbnail))).convert("RGB"))
    np.testing.assert_array_equal(decoded, colour_table()[thumbnail])
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 200
    np.testing.assert_array_equal(to_rgb(rgb), rgb)  # three-band thumbnails are already colour
    assert data_uri(thumbnail).startswith("data:image/png;base64,")


def test_gallery_escapes_text_and_marks_the_query(explorer_bundle):
    image = np.asarray(explorer_bundle.thumbnails[0])
    html = gallery_html([GalleryItem(image, "<query&1>", ("query",), highlight=True),
                         GalleryItem(image, "J1234+5678", ("cos 0.912",))])
    assert html.count("<figure") == 2 and html.count('class="query"') == 1
    assert "&lt;query&amp;1&gt;" in html and "<query&1>" not in html
    assert "cos 0.912" in html and html.count("data:image/png;base64,") == 2


def test_blank_categories_are_drawn_and_hovered_as_missing_not_as_a_nameless_class(synthetic_bundle):
    from explorer.core.bundle import load_bundle

    bundle = load_bundle(synthetic_bundle)
    bundle.catalog = bundle.catalog.copy()
    bundle.catalog.loc[:9, "morphology"] = ["", "  "] * 5
    figure = MapFigure(bundle).figure(MapStyle(colour_by="morphology"))
    names = [t["name"] for t in figure["data"]]
    assert not any(n.startswith("(") and not n.startswith("(missing)") for n in names), names
    assert any(n.startswith("(missing) (10") for n in names), names
    assert "morphology: (missing)" in MapFigure(bundle).full.hovertext[0]


def test_hover_lists_the_catalogues_properties_not_every_heads_predictions(synthetic_bundle):
    from explorer.core.bundle import load_bundle

    bundle = load_bundle(synthetic_bundle)
    bundle.catalog = bundle.catalog.assign(head_a_class="FRI", head_a_probability=0.9)
    before = MapFigure(bundle)
    bundle.prediction_columns = ["head_a_class", "head_a_probability"]
    after = MapFigure(bundle)
    assert "head_a_class" in before.full.hovertext[0] and "head_a_class" not in after.full.hovertext[0]
    assert "head_a_probability" in before.hovertemplate and "head_a_probability" not in after.hovertemplate
    assert after.hovertemplate.count("<br>") == before.hovertemplate.count("<br>") - 1
