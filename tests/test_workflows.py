"""Issue 12's workflows: filter, walk, several examples, summaries, stretch, saved selections, the view in the URL."""
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.app import query, summaries, ui, views
from explorer.app.latent_map import LatentMap, MapStyle
from explorer.app.images import Display, restretch
from explorer.app.sky import display_ra, sky_figure
from explorer.core import selections
from explorer.core.bundle import load_bundle
from explorer.core.errors import InputError
from explorer.core.filters import Condition, RowFilter, parse_filter
from explorer.core.preprocess import to_thumbnails
from explorer.core.search import neighbours_of_row
from tests.app_helpers import drawn_rows, galleries, map_data
from tests.test_app import APP, assert_no_exception

FLUX_FRI = RowFilter((Condition("flux_mjy", low=5.0), Condition("morphology", values=("FRI",))))


@pytest.fixture
def bundle(synthetic_bundle, monkeypatch):
    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(synthetic_bundle).parent))
    return load_bundle(synthetic_bundle)


def app_at(page=None, state=None, params=None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=90)
    for key, value in (params or {}).items():
        app.query_params[key] = value
    app.run()
    if page:
        app.switch_page(page)
    for key, value in (state or {}).items():
        app.session_state[key] = value
    return app.run() if page or state else app


def gallery_ids(html: str) -> list[str]:
    return [part.split("</b>")[0] for part in html.split("<figcaption><b>")[1:]]


# ---------------------------------------------------------------- filters

def test_a_filter_is_the_and_of_its_ranges_and_sets(bundle):
    catalog = bundle.catalog
    mask = FLUX_FRI.mask(catalog)
    expected = (catalog["flux_mjy"] >= 5.0) & (catalog["morphology"] == "FRI")
    np.testing.assert_array_equal(mask, expected.to_numpy())
    assert 0 < mask.sum() < len(catalog)
    assert not Condition("z", low=-1e9).mask(catalog)[catalog["z"].isna().to_numpy()].any()  # ranges drop missing
    assert RowFilter().mask(catalog).all() and not RowFilter()


def test_a_filter_survives_its_text_and_bad_text_is_refused(bundle):
    text = FLUX_FRI.to_text()
    assert parse_filter(text, bundle.catalog) == FLUX_FRI
    for bad, message in (("{", "JSON"), ('[["nope", 1, 2]]', "no catalogue column"),
                         ('[["morphology", 1, 2]]', "not numeric"), ('[["flux_mjy", "a", 2]]', "must be numbers")):
        with pytest.raises(InputError, match=message):
            parse_filter(bad, bundle.catalog)


def test_the_filtered_map_draws_only_the_kept_sources_where_they_were(bundle):
    latent_map = LatentMap(bundle)
    kept = FLUX_FRI.mask(bundle.catalog)
    np.testing.assert_array_equal(latent_map.keep(FLUX_FRI), kept)
    points = latent_map.points
    colouring = latent_map.colouring(MapStyle(colour_by="morphology"), row_filter=FLUX_FRI)
    assert latent_map.points == points   # a filter hides sources; it never moves the others
    assert sum(i["count"] for i in colouring.legend["items"]) == kept.sum()


def test_a_box_is_restricted_by_the_filter(bundle):
    latent_map = LatentMap(bundle)
    low, high = latent_map.xy.min(axis=0) - 1, latent_map.xy.max(axis=0) + 1
    xs, ys = latent_map.to_ndc([low[0], high[0], high[0], low[0]], [low[1], low[1], high[1], high[1]])
    np.testing.assert_array_equal(latent_map.rows_in_polygon(xs, ys, FLUX_FRI),
                                  np.flatnonzero(FLUX_FRI.mask(bundle.catalog)))
    assert len(latent_map.rows_in_polygon(xs, ys)) == bundle.n


def test_filtered_neighbours_are_the_exact_best_among_the_kept_rows(bundle):
    keep = FLUX_FRI.mask(bundle.catalog)
    row = int(np.flatnonzero(keep)[0])
    found = neighbours_of_row(bundle, row, 10, allowed=keep)
    assert keep[found.rows].all() and row not in found.rows
    embeddings = np.asarray(bundle.embeddings)
    similarity = embeddings @ embeddings[row]
    candidates = np.flatnonzero(keep & (np.arange(bundle.n) != row))
    expected = candidates[np.argsort(-similarity[candidates], kind="stable")[:10]]
    assert set(found.rows.tolist()) == set(expected.tolist())


def test_the_filter_bar_restricts_the_map_and_is_said(bundle):
    app = app_at(params={"bundle": bundle.name, "filter": FLUX_FRI.to_text()})
    assert_no_exception(app)
    kept = FLUX_FRI.mask(bundle.catalog)
    assert any(f"{kept.sum():,} of {bundle.n:,} sources" in i.value for i in app.info)
    np.testing.assert_array_equal(drawn_rows(app), np.flatnonzero(kept))
    assert map_data(app)["shown"] == kept.sum()
    next(b for b in app.button if b.label == "Clear filter").click()
    app.run()
    assert not any("Filter:" in i.value for i in app.info)
    assert len(drawn_rows(app)) == bundle.n and map_data(app)["keep"] is None


# ---------------------------------------------------------------- walking

def test_the_trail_goes_back_and_forward_like_a_browser():
    trail = views.Trail([])
    a, b, c, d = (views.Focus("x", "source", (i,)) for i in range(4))
    for focus in (a, b, c):
        trail.visit(focus)
    trail.visit(c)                       # the same focus again is not a new step
    assert len(trail.steps) == 3 and trail.back() == b and trail.back() == a and not trail.can_go_back
    assert trail.forward() == b
    trail.visit(d)                       # a new step drops what lay ahead
    assert trail.steps == [a, b, d] and not trail.can_go_forward


def test_a_clicked_thumbnail_becomes_the_query_and_back_returns(bundle):
    first = 77
    app = app_at(state={ui.FOCUS_KEY: None})
    app.session_state[ui.PICK_KEY] = ui.Pick(str(Path(bundle.path).resolve()), first, False)
    app.run()
    assert_no_exception(app)
    neighbour = int(neighbours_of_row(bundle, first, views.DEFAULT_K).rows[3])
    (gallery,) = galleries(app)
    assert gallery_ids(gallery)[0] == bundle.catalog["id"].iat[first]
    assert f'data-row="{neighbour}"' in gallery  # every neighbour tile can be clicked
    app.session_state[ui.PICK_KEY] = ui.Pick(str(Path(bundle.path).resolve()), neighbour, False)
    app.run()
    expected = bundle.catalog["id"].iloc[neighbours_of_row(bundle, neighbour, views.DEFAULT_K).rows].tolist()
    assert gallery_ids(galleries(app)[0]) == [bundle.catalog["id"].iat[neighbour], *expected]
    next(b for b in app.button if b.label == "Back").click()
    app.run()
    assert gallery_ids(galleries(app)[0])[0] == bundle.catalog["id"].iat[first]
    next(b for b in app.button if b.label == "Forward").click()
    app.run()
    assert gallery_ids(galleries(app)[0])[0] == bundle.catalog["id"].iat[neighbour]


def test_the_url_keeps_the_bundle_colour_source_and_filter_and_reopens_them(bundle):
    row = 123
    app = app_at(state={ui.FOCUS_KEY: views.Focus(str(Path(bundle.path).resolve()), "source", (row,))})
    assert app.query_params["source"] == [bundle.catalog["id"].iat[row]] or \
        app.query_params["source"] == bundle.catalog["id"].iat[row]
    link = {k: (v[0] if isinstance(v, list) else v) for k, v in app.query_params.items()}
    link.update(colour="las_arcsec", filter=RowFilter((Condition("las_arcsec", high=60.0),)).to_text())
    reopened = app_at(params=link)
    assert_no_exception(reopened)
    assert gallery_ids(galleries(reopened)[0])[0] == bundle.catalog["id"].iat[row]
    assert next(s for s in reopened.sidebar.selectbox if s.label == "Colour by").value == "las_arcsec"
    assert any("las_arcsec ≤ 60" in i.value for i in reopened.info)


def test_a_link_to_an_unknown_source_says_so(bundle):
    app = app_at(params={"bundle": bundle.name, "source": "NOT-A-SOURCE"})
    assert_no_exception(app)
    assert any("NOT-A-SOURCE" in w.value for w in app.warning)


# ---------------------------------------------------------------- several examples

def test_several_examples_search_by_their_combined_embedding(bundle):
    positives, negatives = [10, 40, 77], [5]
    expected = query.query_by_examples(bundle, positives, negatives, views.DEFAULT_K)
    embeddings = np.asarray(bundle.embeddings)
    vector = embeddings[positives].mean(axis=0) - embeddings[negatives].mean(axis=0)
    np.testing.assert_allclose(expected.vector, vector / np.linalg.norm(vector), rtol=1e-5)
    assert not set(expected.neighbours.rows) & {*positives, *negatives}
    examples = ui.Examples(str(Path(bundle.path).resolve()), list(positives), list(negatives))
    app = app_at(ui.SEARCH_PAGE, {ui.EXAMPLES_KEY: examples, "search.mode": "Several examples"})
    assert_no_exception(app)
    ids = gallery_ids(galleries(app)[0])[1:]
    assert ids == bundle.catalog["id"].iloc[expected.neighbours.rows].tolist()
    with pytest.raises(InputError, match="both"):
        query.query_by_examples(bundle, [1, 2], [2])
    with pytest.raises(InputError, match="at least one positive"):
        query.query_by_examples(bundle, [], [2])


def test_example_buttons_collect_positives_and_negatives(bundle):
    app = app_at(state={ui.FOCUS_KEY: views.Focus(str(Path(bundle.path).resolve()), "source", (9,))})
    next(b for b in app.button if b.label == "Positive").click()
    app.run()
    next(b for b in app.button if b.label == "Negative").click()  # the same source moves to the negatives
    app.run()
    chosen = app.session_state[ui.EXAMPLES_KEY]
    assert chosen.positive == [] and chosen.negative == [9]


# ---------------------------------------------------------------- summaries, saved selections, display

def test_a_selection_is_summarised_against_the_catalogue(bundle):
    rows = np.flatnonzero(bundle.catalog["morphology"].eq("FRII").to_numpy())[:40].tolist() + [0, 1, 2]
    counts = summaries.class_counts(bundle, rows, "morphology")
    assert counts["selected"].sum() == len(rows) and counts.iloc[0]["morphology"] == "FRII"
    assert abs(counts["% of selection"].sum() - 100) < 1e-6
    catalogue_share = 100 * bundle.catalog["morphology"].eq("FRII").mean()
    assert counts.iloc[0]["% of catalogue"] == pytest.approx(catalogue_share)
    histogram = summaries.property_histogram(bundle, rows, "las_arcsec")
    for trace in histogram["data"]:
        assert np.sum(trace["y"] * trace["width"]) == pytest.approx(1.0)
    medians = summaries.median_thumbnails(bundle, rows, "morphology")
    assert medians.count("<figure") == len(counts) and f"median of {counts.iloc[0]['selected']}<" in medians
    focus = views.Focus(str(Path(bundle.path).resolve()), "selection", tuple(rows))
    app = app_at(state={ui.FOCUS_KEY: focus})
    assert_no_exception(app)
    assert any(e.label == "Summary of the selection" for e in app.expander)
    table = next(d for d in app.dataframe if "% of catalogue" in d.value.columns).value
    assert table["selected"].sum() == len(rows)


def test_saved_selections_keep_ids_refuse_a_clash_and_reopen(bundle, tmp_path):
    rows = [3, 14, 15, 92]
    assert selections.save_selection(bundle, "my pick", rows) == 4
    with pytest.raises(InputError, match="already exists"):
        selections.save_selection(bundle, "my pick", [1])
    selections.save_selection(bundle, "my pick", rows[:2], replace=True)
    found, missing = selections.selection_rows(bundle, "my pick")
    assert found.tolist() == rows[:2] and missing == 0
    with pytest.raises(InputError, match="name"):
        selections.save_selection(bundle, "a/b", rows)
    app = app_at()
    next(b for b in app.button if b.label == "Open").click()
    app.run()
    assert_no_exception(app)
    assert any(s.value.startswith("Selection: 2 sources") for s in app.subheader)
    selections.delete_selection(bundle.path, "my pick")
    assert "my pick" not in selections.read_selections(bundle.path)


def test_a_stretch_changes_every_gallery_and_keeps_the_order_of_levels(bundle):
    image = np.random.default_rng(0).random((1, 1, 32, 32)).astype(np.float32) ** 3
    thumbnail = to_thumbnails(image)[0]
    assert np.array_equal(restretch(thumbnail, Display()), thumbnail)
    for stretch in ("linear", "log", "sqrt", "asinh"):
        for interval in ("min–max", "zscale", "99 %"):
            out = restretch(thumbnail, Display(stretch, interval)).astype(int)
            order = np.argsort(thumbnail.ravel(), kind="stable")
            assert (np.diff(out.ravel()[order]) >= 0).all()  # a stretch is monotonic
    linear = restretch(thumbnail, Display("linear", "min–max")).astype(float) / 255
    np.testing.assert_allclose(linear, (image[0, 0] - image.min()) / np.ptp(image), atol=0.03)
    focus = views.Focus(str(Path(bundle.path).resolve()), "source", (5,))
    plain = galleries(app_at(state={ui.FOCUS_KEY: focus}))[0]
    stretched = galleries(app_at(state={ui.FOCUS_KEY: focus, "display.stretch": "linear",
                                        "display.interval": "zscale", "display.colormap": "gray"}))[0]
    assert gallery_ids(plain) == gallery_ids(stretched) and plain != stretched


# ---------------------------------------------------------------- the sky

def test_the_sky_view_draws_ra_east_to_the_left_and_keeps_a_catalogue_across_ra_0_in_one_piece(bundle):
    assert display_ra(np.array([359.0, 1.0])).tolist() == [-1.0, 1.0]
    assert display_ra(np.array([10.0, 100.0])).tolist() == [10.0, 100.0]
    figure = sky_figure(bundle, [5, 6], source=4)
    assert figure["layout"]["xaxis"]["autorange"] == "reversed"
    source, = (t for t in figure["data"] if t["name"] == "source")
    neighbours, = (t for t in figure["data"] if t["name"] == "neighbours")
    assert source["customdata"].tolist() == [4] and neighbours["customdata"].tolist() == [5, 6]
    assert not any(t["name"] == "source" for t in sky_figure(bundle, [5, 6])["data"])  # a selection has no star
    footprint = figure["data"][0]
    assert int(np.nansum(footprint["customdata"])) == bundle.n


def test_examples_that_cancel_out_are_refused():
    from types import SimpleNamespace

    e = np.eye(4, dtype=np.float32)
    embeddings = np.stack([e[0], e[1], (e[0] + e[1]) / 2 + e[2] * 0.5, (e[0] + e[1]) / 2 - e[2] * 0.5])
    with pytest.raises(InputError, match="cancel out"):  # mean(0, 1) == mean(2, 3)
        query.query_by_examples(SimpleNamespace(embeddings=embeddings), [0, 1], [2, 3])
