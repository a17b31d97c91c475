"""What the pages show, without Streamlit: selections, tables, CSV, neighbours, coordinate matches."""
import io

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord

from explorer.app import views
from explorer.core.bundle import load_bundle
from explorer.core.export import to_csv_bytes
from explorer.app.latent_map import LatentMap
from explorer.core.search import neighbours_of_row


def test_a_click_is_a_source_a_lasso_every_source_inside(explorer_bundle):
    latent_map = LatentMap(explorer_bundle)
    click = views.focus_from_map({"clicked": 4}, latent_map, "/b")
    assert click == views.Focus("/b", "source", (4,)) and click.row == 4
    xy = np.asarray(explorer_bundle.map_xy, dtype=np.float64)
    centre = np.median(xy, axis=0)
    square = centre + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.std(xy, axis=0) * 0.5
    inside = np.flatnonzero((np.abs(xy - centre) <= np.std(xy, axis=0) * 0.5).all(axis=1))
    x, y = latent_map.to_ndc(*square.T)
    lasso = views.focus_from_map({"lasso": {"x": list(x), "y": list(y)}}, latent_map, "/b")
    assert lasso.kind == "selection" and lasso.rows == tuple(inside.tolist()) and len(inside) > 2
    for nothing in ({}, None, {"clicked": -1}, {"clicked": latent_map.n}, {"clicked": True}, {"clicked": "4"},
                    {"lasso": {"x": [0, 1], "y": [0, 1]}}, {"lasso": {"x": ["a", 1, 2], "y": [0, 1, 2]}},
                    {"lasso": {"x": [0, 1, 2], "y": [0, 1]}}, {"lasso": "everything"}):
        assert views.focus_from_map(nothing, latent_map, "/b") is None  # nothing, or junk, clears the focus


def test_selection_csv_has_id_position_and_properties(explorer_bundle):
    rows = [12, 0, 5]
    table = views.source_table(explorer_bundle, rows)
    assert list(table.columns) == ["id", "ra", "dec", *explorer_bundle.property_columns]
    back = pd.read_csv(io.BytesIO(to_csv_bytes(table)), dtype={"id": str})
    assert back["id"].tolist() == explorer_bundle.catalog["id"].iloc[rows].tolist()
    np.testing.assert_allclose(back[["ra", "dec"]].to_numpy(), explorer_bundle.catalog[["ra", "dec"]].iloc[rows])


def test_neighbour_result_matches_the_index(explorer_bundle):
    row, k = 10, 7
    result = views.neighbour_result(explorer_bundle, row, k)
    expected = neighbours_of_row(explorer_bundle, row, k)
    np.testing.assert_array_equal(result.neighbours.rows, expected.rows)
    assert row not in result.neighbours.rows and len(result.neighbours.rows) == k
    assert result.table["rank"].tolist() == list(range(1, k + 1))
    assert result.table["id"].tolist() == explorer_bundle.catalog["id"].iloc[expected.rows].tolist()
    assert np.all(np.diff(result.table["cosine_similarity"]) <= 1e-6)
    assert result.gallery.count("<figure") == k + 1 and 'class="query"' in result.gallery
    for source_id, similarity in zip(result.table["id"], expected.similarity):
        assert source_id in result.gallery and f"cos {similarity:.3f}" in result.gallery


def test_deduplication_drops_the_second_catalogue_entry(synthetic_bundle):
    bundle = load_bundle(synthetic_bundle)
    original, duplicate = 39, 40  # benchmarks.synthetic: every 40th source re-catalogues the previous one 6" away
    plain = views.neighbour_result(bundle, original, 5)
    assert plain.neighbours.rows[0] == duplicate
    merged = views.neighbour_result(bundle, original, 5, dedup_arcsec=views.DEDUP_RADIUS_ARCSEC)
    assert duplicate not in merged.neighbours.rows and len(merged.neighbours.rows) == 5
    assert bundle.catalog["id"].iat[duplicate] not in merged.gallery


def test_selection_gallery_is_capped(explorer_bundle):
    rows = np.arange(min(explorer_bundle.n, views.SELECTION_GALLERY_CAP + 10))
    assert views.selection_gallery(explorer_bundle, rows).count("<figure") == views.SELECTION_GALLERY_CAP
    assert views.selection_gallery(explorer_bundle, rows[:3]).count("<figure") == 3


def test_properties_table_lists_values_with_units(explorer_bundle):
    table = views.properties_table(explorer_bundle, 3)
    assert table["property"].tolist()[:3] == ["id", "ra", "dec"]
    assert table.set_index("property").loc["ra", "unit"] == "deg"
    for column in explorer_bundle.property_columns:
        assert table.set_index("property").loc[column, "unit"] == explorer_bundle.column_unit(column)
    assert table.set_index("property").loc["id", "value"] == explorer_bundle.catalog["id"].iat[3]


def test_nearest_source_within_and_beyond_the_radius(explorer_bundle):
    sky = views.catalog_coords(explorer_bundle)
    row = 25
    source = sky[row]
    near = source.directional_offset_by(30 * u.deg, 4 * u.arcsec)
    match = views.nearest_source(sky, near)
    assert match.row == row and match.within_radius
    assert match.separation_arcsec == pytest.approx(4.0, abs=1e-3)
    # 0.5 deg from every source of the footprint is "nothing within 10 arcsec"
    far = SkyCoord(0 * u.deg, -80 * u.deg)
    miss = views.nearest_source(sky, far, radius_arcsec=10)
    assert not miss.within_radius
    assert miss.separation_arcsec == pytest.approx(far.separation(sky).min().to_value(u.arcsec), rel=1e-6)
    assert miss.row == int(np.argmin(far.separation(sky)))


@pytest.mark.parametrize("arcsec, text", [(4.0, "4.00″"), (90.0, "1.50′"), (7200.0, "2.00°")])
def test_separations_read_in_natural_units(arcsec, text):
    assert views.format_separation(arcsec) == text


def test_position_is_shown_in_sexagesimal_and_degrees():
    text = views.format_position(SkyCoord("13h45m41.2s +23d22m53s"))
    assert text.startswith("13:45:41.2 +23:22:53") and "(206.42167°, +23.38139°)" in text


def test_the_representation_check_reads_the_bundles_comparison_and_names_what_random_init_beats():
    quality = {"baselines": {"comparison": [
        {"score": "log_size_r2_from_map", "column": "las_arcsec", "learned": 0.8, "random init": 0.7, "pixels": 0.6},
        {"score": "monitor_knn", "column": "fr_class", "learned": 0.6, "random init": 0.7, "pixels": None}],
        "not_beaten": ["monitor_knn"]}}
    table, warning = views.representation_check(quality)
    assert list(table["score"]) == ["R² of log size, k-NN on the 2-D map (las_arcsec)", "k-NN, training monitor (fr_class)"]
    assert "k-NN, training monitor" in warning and "R² of log size" not in warning
    assert views.representation_check({}) == (None, None)
    assert views.representation_check({"baselines": {**quality["baselines"], "not_beaten": []}})[1] is None


def test_the_detail_panel_gives_positions_to_a_micro_degree(explorer_bundle):
    table = views.properties_table(explorer_bundle, 3).set_index("property")
    ra = explorer_bundle.catalog["ra"].iloc[3]
    assert table.loc["ra", "value"] == f"{ra:.6f}" and abs(float(table.loc["ra", "value"]) - ra) < 1e-6
