"""The map component's data: positions, colourings, filter masks, selections, hover cards, and the HTTP routes
that serve them (a real uvicorn server on 127.0.0.1)."""
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from explorer.app import map_server
from explorer.app.latent_map import (MAX_CATEGORIES, MISSING_COLOUR, NUMERIC_BINS, LatentMap, MapStyle, Marks,
                                     focus_marks)
from explorer.core.bundle import MISSING_LABEL, load_bundle
from explorer.core.filters import Condition, RowFilter


@pytest.fixture
def bundle(synthetic_bundle):
    return load_bundle(synthetic_bundle)


def positions(latent_map: LatentMap) -> np.ndarray:
    ndc = np.frombuffer(latent_map.points, dtype=np.float32).reshape(2, -1).T
    return np.column_stack(latent_map.from_ndc(ndc[:, 0], ndc[:, 1]))


def test_positions_are_the_map_with_its_aspect_kept(bundle):
    latent_map = LatentMap(bundle)
    ndc = np.frombuffer(latent_map.points, dtype=np.float32).reshape(2, -1).T
    assert ndc.shape == (bundle.n, 2) and np.abs(ndc).max() < 1
    np.testing.assert_allclose(positions(latent_map), bundle.map_xy, rtol=1e-5, atol=1e-5)
    span = np.ptp(ndc, axis=0) / np.ptp(np.asarray(bundle.map_xy, dtype=np.float64), axis=0)
    assert span[0] == pytest.approx(span[1], rel=1e-5)  # one scale for both axes: the map is not stretched


def test_categorical_colours_partition_the_catalogue_with_its_counts(bundle):
    colouring = LatentMap(bundle).colouring(MapStyle("morphology"))
    items = colouring.legend["items"]
    assert {(i["label"], i["count"]) for i in items} == set(bundle.catalog["morphology"].value_counts().items())
    labels = np.asarray([i["label"] for i in items])[colouring.codes]
    np.testing.assert_array_equal(labels, bundle.catalog["morphology"].to_numpy())
    assert len(colouring.bytes) == bundle.n and len(colouring.palette) == len(items)


def test_many_categories_are_folded_into_other_and_blanks_are_missing(bundle):
    bundle.catalog = bundle.catalog.copy()
    bundle.catalog["name"] = [f"c{i % 40}" for i in range(bundle.n)]
    bundle.catalog.loc[:99, "name"] = ["", "  "] * 50   # blanks: the largest class, drawn as missing
    colouring = LatentMap(bundle).colouring(MapStyle("name"))
    labels = [i["label"] for i in colouring.legend["items"]]
    assert len(labels) == MAX_CATEGORIES + 1 and labels[-1] == f"other ({41 - MAX_CATEGORIES} values)"
    missing = next(i for i in colouring.legend["items"] if i["label"] == MISSING_LABEL)
    assert missing["count"] == 100 and missing["colour"] == MISSING_COLOUR
    assert sum(i["count"] for i in colouring.legend["items"]) == bundle.n


def test_numeric_colours_follow_the_values_and_set_missing_apart(bundle):
    values = bundle.catalog["z"].to_numpy(dtype=float)
    colouring = LatentMap(bundle).colouring(MapStyle("z"))
    finite = np.isfinite(values)
    assert (colouring.codes[~finite] == 0).all() and (colouring.codes[finite] >= 1).all()
    order = np.argsort(values[finite])
    assert (np.diff(colouring.codes[finite][order].astype(int)) >= 0).all()  # bins rise with the value
    assert colouring.codes[finite].max() == NUMERIC_BINS and len(colouring.palette) == NUMERIC_BINS + 1
    legend = colouring.legend
    assert legend["min"] == np.nanmin(values) and legend["max"] == np.nanmax(values)
    assert [i["label"] for i in legend["items"]] == [f"z missing: {int((~finite).sum()):,}"]


def test_log_colours_set_non_positive_values_apart(bundle):
    values = bundle.catalog["bend_angle_deg"].to_numpy(dtype=float)
    assert (values <= 0).any() and (values > 0).any()
    colouring = LatentMap(bundle).colouring(MapStyle("bend_angle_deg", log_scale=True))
    assert ((colouring.codes == 0) == ~(values > 0)).all()
    assert colouring.legend["title"].startswith("log₁₀ bend_angle_deg")
    assert colouring.legend["max"] == pytest.approx(np.log10(values.max()))
    assert colouring.legend["items"][0]["label"] == f"bend_angle_deg ≤ 0 or missing (no log): {(values <= 0).sum():,}"


def test_a_filter_sends_its_mask_and_counts_but_keeps_the_colours(bundle):
    latent_map = LatentMap(bundle)
    row_filter = RowFilter((Condition("morphology", values=("FRI",)),))
    payload = latent_map.payload(MapStyle("morphology"), row_filter, Marks(), "/base")
    mask = np.frombuffer(latent_map.by_key[payload["keep"].rsplit("/", 1)[1]], dtype=np.uint8).astype(bool)
    np.testing.assert_array_equal(mask, (bundle.catalog["morphology"] == "FRI").to_numpy())
    counts = {i["label"]: i["count"] for i in payload["legend"]["items"]}
    assert counts["FRI"] == mask.sum() and counts["FRII"] == 0 and payload["shown"] == mask.sum()
    unfiltered = latent_map.payload(MapStyle("morphology"), RowFilter(), Marks(), "/base")
    assert unfiltered["colour"] == payload["colour"] and unfiltered["keep"] is None


def test_sources_without_map_coordinates_are_left_out_and_counted(bundle):
    bundle.map_xy = np.asarray(bundle.map_xy, dtype=np.float32).copy()
    bundle.map_xy[[3, 30, 300]] = np.nan
    latent_map = LatentMap(bundle)
    payload = latent_map.payload(MapStyle(), RowFilter(), Marks(), "/base")
    assert latent_map.n_unplaced == 3 and payload["shown"] == bundle.n - 3 and payload["keep"]
    mask = np.frombuffer(latent_map.by_key[payload["keep"].rsplit("/", 1)[1]], dtype=np.uint8)
    assert mask.sum() == bundle.n - 3 and not mask[[3, 30, 300]].any()
    everything = latent_map.rows_in_polygon([-2, 2, 2, -2], [-2, -2, 2, 2])
    assert len(everything) == bundle.n - 3 and not {3, 30, 300} & set(everything.tolist())
    json.dumps(latent_map.payload(MapStyle(), RowFilter(), Marks(placed=(np.nan, 1.0)), "/b"), allow_nan=False)


def test_hover_cards_show_id_position_units_and_the_thumbnail_not_predictions(bundle):
    bundle.catalog = bundle.catalog.assign(head_a_probability=0.9)
    bundle.prediction_columns = ["head_a_probability"]
    card = LatentMap(bundle).hover(5)
    source = bundle.catalog.iloc[5]
    assert card["id"] == source["id"] and card["row"] == 5 and card["image"].startswith("data:image/png;base64,")
    assert card["lines"][0] == f"RA {source['ra']:.5f}°  Dec {source['dec']:+.5f}°"
    assert f"flux_mjy = {source['flux_mjy']:.4g} mJy" in card["lines"]
    assert f"morphology: {source['morphology']}" in card["lines"]
    assert not any("head_a" in line for line in card["lines"])


def test_each_rerun_sends_small_json_and_never_the_embeddings(bundle):
    marks = focus_marks(7, [3, 11, 42])
    payload = LatentMap(bundle).payload(MapStyle("morphology"), RowFilter(), marks, "/base")
    text = json.dumps(payload, allow_nan=False)
    assert len(text) < 4_000
    assert payload["marks"]["source"] == 7 and payload["marks"]["neighbours"] == [3, 11, 42]
    assert "embedding" not in text


def test_an_unknown_colour_column_is_refused(bundle):
    with pytest.raises(KeyError, match="no catalogue column"):
        LatentMap(bundle).colouring(MapStyle("not_a_column"))


@pytest.fixture(scope="module")
def routes_url():
    """The map routes on a real server on 127.0.0.1 (uvicorn, as under ``streamlit run``)."""
    import uvicorn
    from starlette.applications import Starlette

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=map_server.ROUTES), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def fetch(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_the_routes_serve_registered_maps_only(routes_url, bundle):
    latent_map = LatentMap(bundle)
    base = map_server.register(latent_map)
    payload = latent_map.payload(MapStyle("morphology"), RowFilter((Condition("flux_mjy", low=10.0),)), Marks(), base)
    status, body, headers = fetch(routes_url + payload["points"])
    assert status == 200 and body == latent_map.points and "immutable" in headers["cache-control"]
    status, body, _ = fetch(routes_url + payload["colour"])
    assert status == 200 and body == latent_map.colouring(MapStyle("morphology")).bytes
    status, body, _ = fetch(routes_url + payload["keep"])
    assert np.frombuffer(body, np.uint8).sum() == (bundle.catalog["flux_mjy"] >= 10).sum()
    status, body, _ = fetch(f"{routes_url}{base}/hover/12?display=linear,zscale,gray")
    assert status == 200 and json.loads(body)["id"] == bundle.catalog["id"].iat[12]
    for missing in (f"{base}/hover/{bundle.n}", f"{base}/data/nope", "/explorer/map/unknowntoken/data/points"):
        assert fetch(routes_url + missing)[0] == 404, missing
    status, body, headers = fetch(routes_url + map_server.script_url())
    assert status == 200 and body == map_server.SCRIPT.read_bytes() and "javascript" in headers["content-type"]


def test_a_hover_display_falls_back_to_the_default_on_junk():
    assert map_server.display_from("linear,zscale,gray").stretch == "linear"
    assert map_server.display_from("<script>,1,2") == map_server.display_from(None)
    assert map_server.display_from("rm -rf,x").is_bundle_default
