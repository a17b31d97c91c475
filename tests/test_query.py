"""One-shot queries on a small real bundle: 100 MiraBest images, a randomly initialised ResNet-18."""
from urllib.parse import parse_qs, urlparse

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from explorer.core.bundle import load_bundle
from explorer.core.errors import InputError
from explorer.core.fitsio import cutout_at, read_image
from explorer.app.query import (cutout_geometry, embed_cutout, query_by_coordinates, query_by_image, result_table,
                            source_links)
from explorer.core.search import neighbours_of_row, place_on_map
from explorer.core.sky.cutouts import SkyViewProvider
from explorer.core.sky.upload import read_uploaded_fits
from tests.sky_fixtures import MIRABEST, build_mirabest_bundle, mirabest_catalog
from tests.survey_server import SurveyServer

K = 8


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    mirabest_catalog()
    return load_bundle(build_mirabest_bundle(tmp_path_factory.mktemp("bundles") / "mirabest-small"))


@pytest.fixture(scope="module")
def skyview(tmp_path_factory):
    mirabest_catalog()
    with SurveyServer() as server:
        yield server, SkyViewProvider(url=server.skyview_url, cache_dir=tmp_path_factory.mktemp("cache"))


def _row_position(bundle, row):
    return SkyCoord(bundle.catalog["ra"][row], bundle.catalog["dec"][row], unit="deg")


def _outside_bundle(bundle):
    """A real MiraBest source that is not in the bundle: (position, its FITS file)."""
    cat = mirabest_catalog()
    inside = set(bundle.catalog["id"])
    i = next(i for i, f in enumerate(cat["file"]) if f.split("/")[-1].removesuffix(".fits.gz") not in inside)
    return SkyCoord(cat["ra"][i], cat["dec"][i], unit="deg"), MIRABEST / cat["file"][i]


def test_a_cutout_embeds_exactly_like_the_bundle_did(bundle):
    size, pixels = cutout_geometry(bundle)
    assert (size, pixels) == (70 * 1.8, 70)
    for row in (0, 37, 99):
        path = MIRABEST / mirabest_catalog()["file"][row * 11]
        data, wcs, _ = read_image(path)
        vector = embed_cutout(bundle, cutout_at(data, wcs, _row_position(bundle, row), pixels, 1.8))
        assert vector.shape == (bundle.dim,) and np.linalg.norm(vector) == pytest.approx(1, abs=1e-5)
        assert float(vector @ bundle.embeddings[row]) > 0.9999


def test_a_catalogue_position_uses_the_stored_embedding(bundle, skyview):
    server, provider = skyview
    before = sum(server.hits.values())
    offset = _row_position(bundle, 12).spherical_offsets_by(3 * u.arcsec, -2 * u.arcsec)
    result = query_by_coordinates(bundle, offset, provider, K)
    assert result.used_catalogue_source and result.match.row == 12
    assert result.match.separation_arcsec == pytest.approx(np.hypot(3, 2), abs=0.05)
    expected = neighbours_of_row(bundle, 12, K)
    assert np.array_equal(result.neighbours.rows, expected.rows) and 12 not in result.neighbours.rows
    assert sum(server.hits.values()) == before  # no fetch for a catalogue source
    assert np.allclose(result.map_xy, place_on_map(bundle.map_xy, expected.rows, expected.similarity))


def test_a_new_position_is_fetched_embedded_and_placed(bundle, skyview):
    server, provider = skyview
    coord, path = _outside_bundle(bundle)
    result = query_by_coordinates(bundle, coord, provider, K, radius_arcsec=10)
    assert result.origin == "SkyView VLA FIRST (1.4 GHz)" and not result.match.within_radius
    assert result.match.separation_arcsec > 10
    assert result.image.shape == (70, 70) and server.hits["skyview-fits"] >= 1
    data, wcs, _ = read_image(path)
    direct = embed_cutout(bundle, cutout_at(data, wcs, coord, 70, 1.8))
    assert float(direct @ result.vector) > 0.9999
    sims = bundle.embeddings @ result.vector
    assert np.array_equal(result.neighbours.rows, np.argsort(-sims)[:K])
    lo, hi = bundle.map_xy[result.neighbours.rows].min(0), bundle.map_xy[result.neighbours.rows].max(0)
    assert np.all(lo <= result.map_xy) and np.all(result.map_xy <= hi)
    # the second time the cutout comes from the provider's cache
    asked = server.hits["skyview-fits"]
    again = query_by_coordinates(bundle, coord, provider, K)
    assert server.hits["skyview-fits"] == asked and np.array_equal(again.neighbours.rows, result.neighbours.rows)


def test_no_fetch_without_a_provider_and_no_coverage_is_reported(bundle, skyview):
    _, provider = skyview
    coord, _ = _outside_bundle(bundle)
    with pytest.raises(InputError, match=r"no catalogue source within 10″ \(nearest: .*[″′°]\); choose a survey"):
        query_by_coordinates(bundle, coord, None, K)
    with pytest.raises(InputError, match="^no coverage at this position in SkyView"):
        query_by_coordinates(bundle, SkyCoord(0.5, -60, unit="deg"), provider, K)


def test_an_uploaded_bundle_image_finds_itself_first(bundle):
    path = MIRABEST / mirabest_catalog()["file"][5 * 11]
    image, wcs = read_uploaded_fits(path.read_bytes(), path.name, expected_pixel_scale_arcsec=1.8)
    result = query_by_image(bundle, image, K, wcs=wcs)
    # the file is centred on its own centre, the bundle's cutout on the (rounded) catalogue position:
    # a pixel apart, so nearly but not exactly the same vector
    assert result.neighbours.rows[0] == 5 and result.neighbours.similarity[0] > 0.99
    assert result.match.row == 5 and result.match.within_radius


def test_bad_query_images_are_refused(bundle):
    with pytest.raises(InputError, match="the image has 2 band\\(s\\) but the bundle's encoder takes 1"):
        embed_cutout(bundle, np.ones((2, 80, 80), np.float32))
    with pytest.raises(InputError, match="the image is 40x40 px; the encoder needs at least 70x70 px"):
        embed_cutout(bundle, np.ones((40, 40), np.float32))
    with pytest.raises(InputError, match="no finite pixels"):
        embed_cutout(bundle, np.full((80, 80), np.nan, np.float32))


def test_results_carry_links_to_simbad_ned_the_legacy_survey_and_aladin(bundle):
    result = query_by_coordinates(bundle, _row_position(bundle, 3), None, K)
    table = result_table(bundle, result)
    assert list(table.columns[:5]) == ["rank", "cosine_similarity", "id", "ra", "dec"]
    first = table.iloc[0]
    simbad = parse_qs(urlparse(first["simbad"]).query)
    ra, dec = (float(v) for v in simbad["Coord"][0].split())
    assert (ra, dec) == pytest.approx((first["ra"], first["dec"]), abs=1e-6)
    assert urlparse(first["simbad"]).netloc == "simbad.cds.unistra.fr"
    ned = parse_qs(urlparse(first["ned"]).query)
    assert ned["lon"][0] == f"{first['ra']:.6f}d" and ned["search_type"][0] == "Near Position Search"
    legacy = parse_qs(urlparse(first["legacy_survey"]).query)
    assert float(legacy["ra"][0]) == pytest.approx(first["ra"]) and float(legacy["dec"][0]) == pytest.approx(first["dec"])
    aladin = parse_qs(urlparse(first["aladin"]).query)
    assert urlparse(first["aladin"]).netloc == "aladin.cds.unistra.fr" and aladin["survey"][0] == "CDS/P/VLA/FIRST"
    assert [float(v) for v in aladin["target"][0].split()] == pytest.approx([first["ra"], first["dec"]], abs=1e-6)
    assert source_links(float("nan"), 1.0) == {"simbad": "", "ned": "", "legacy_survey": "", "aladin": ""}
