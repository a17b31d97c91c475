"""Cutout providers: the real MiraBest folder as a local collection, and the real astroquery
SkyView / hips2fits clients against a loopback server serving real FIRST FITS bytes."""
import re
import time

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from explorer.core.errors import InputError
from explorer.core.fitsio import cutout_at, read_image
from explorer.core.sky.cutouts import Hips2FitsProvider, LocalFitsCollection, SkyViewProvider
from tests.sky_fixtures import MIRABEST, mirabest_catalog
from tests.survey_server import SurveyServer, closed_port_url

EMPTY_SKY = SkyCoord(0.5, -60.0, unit="deg")  # far south of FIRST


def _source(row):
    cat = mirabest_catalog()
    return SkyCoord(cat["ra"][row], cat["dec"][row], unit="deg"), MIRABEST / cat["file"][row]


def _centred(wcs, coord, pixels):
    x, y = wcs.world_to_pixel(coord)
    c = (pixels - 1) / 2
    return abs(x - c) <= 0.5 and abs(y - c) <= 0.5


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    mirabest_catalog()
    return LocalFitsCollection(MIRABEST, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture
def server():
    mirabest_catalog()
    with SurveyServer() as srv:
        yield srv


# ---------------------------------------------------------------- local collection

def test_local_collection_finds_the_image_holding_a_position(collection):
    assert len(collection.footprints) == len(mirabest_catalog())
    for row in (0, 321, 1097):
        coord, path = _source(row)
        assert collection.covering(coord)[0] == path.resolve()  # the collection works on resolved paths
        image, wcs = collection.cutout(coord, 90, 50)
        assert image.shape == (50, 50) and _centred(wcs, coord, 50)
        data, file_wcs, _ = read_image(path)
        assert np.array_equal(image, cutout_at(data, file_wcs, coord, 50, 1.8), equal_nan=True)


def test_local_collection_cuts_off_centre_positions_centred(collection):
    coord, path = _source(40)
    shifted = coord.spherical_offsets_by(60 * u.arcsec, -45 * u.arcsec)  # still inside the 270" image
    image, wcs = collection.cutout(shifted, 72, 40)
    assert _centred(wcs, shifted, 40) and np.isfinite(image).all()
    data, file_wcs, _ = read_image(path)
    assert np.array_equal(image, cutout_at(data, file_wcs, shifted, 40, 1.8))


def test_local_collection_has_no_coverage_between_images(collection):
    with pytest.raises(InputError, match=r"^no coverage at this position in local FITS collection mirabest \(RA 0.50000"):
        collection.cutout(EMPTY_SKY, 90, 50)


def test_local_collection_footprint_table_is_reused(collection, tmp_path):
    cache = collection._cache_dir.parent
    start = time.perf_counter()
    again = LocalFitsCollection(MIRABEST, cache_dir=cache)
    assert again.footprints.equals(collection.footprints)
    assert time.perf_counter() - start < 2  # no header re-reads: the table is checked by size and mtime
    with pytest.raises(InputError, match="local FITS collection not found"):
        LocalFitsCollection(tmp_path / "missing")


# ---------------------------------------------------------------- network providers

PROVIDERS = {
    "skyview": lambda srv, url=None, **kw: SkyViewProvider(url=url or srv.skyview_url, **kw),
    "hips2fits": lambda srv, url=None, **kw: Hips2FitsProvider("CDS/P/FIRST", url=url or srv.hips2fits_url, **kw),
}
# Requests for one image (SkyView's form page is also fetched, but astroquery caches that itself)
REQUESTS = {"skyview": ("skyview-query", "skyview-fits"), "hips2fits": ("hips2fits",)}


def _requests(server, kind):
    return sum(server.hits[k] for k in REQUESTS[kind])


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_network_cutout_is_the_real_image_and_is_cached(server, tmp_path, kind):
    coord, path = _source(12)
    provider = PROVIDERS[kind](server, cache_dir=tmp_path)
    image, wcs = provider.cutout(coord, 108, 60)
    assert image.shape == (60, 60) and _centred(wcs, coord, 60)
    data, file_wcs, _ = read_image(path)
    assert np.array_equal(image, cutout_at(data, file_wcs, coord, 60, 1.8), equal_nan=True)
    served = _requests(server, kind)
    assert served >= 1
    assert provider.is_cached(coord, 108, 60) and not provider.is_cached(coord, 108, 61)
    again, _ = provider.cutout(coord, 108, 60)  # hit: nothing asked of the server
    assert np.array_equal(again, image, equal_nan=True) and _requests(server, kind) == served
    provider.cutout(coord, 90, 60)  # another size is another key: a miss
    assert _requests(server, kind) > served
    # the cache answers with no network at all; an uncached request says it is offline
    offline = PROVIDERS[kind](server, url=closed_port_url("/x"), cache_dir=tmp_path)
    assert np.array_equal(offline.cutout(coord, 108, 60)[0], image, equal_nan=True)
    with pytest.raises(InputError, match="^offline"):
        offline.cutout(coord, 100, 60)


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_no_coverage_is_reported_and_remembered(server, tmp_path, kind):
    provider = PROVIDERS[kind](server, cache_dir=tmp_path)
    for _ in range(2):
        with pytest.raises(InputError, match="^no coverage at this position in "):
            provider.cutout(EMPTY_SKY, 108, 60)
    assert _requests(server, kind) == len(REQUESTS[kind])  # asked once


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_offline_is_quick_and_clear(tmp_path, kind):
    mirabest_catalog()
    provider = PROVIDERS[kind](None, url=closed_port_url("/service"), cache_dir=tmp_path, timeout=5, retries=3)
    start = time.perf_counter()
    with pytest.raises(InputError, match="^offline: cannot reach " + re.escape(provider.name)):
        provider.cutout(_source(0)[0], 108, 60)
    assert time.perf_counter() - start < 1.5  # no retries, no waiting for a timeout


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_stalled_service_times_out_after_bounded_retries(server, tmp_path, kind):
    server.stall_seconds = 3
    provider = PROVIDERS[kind](server, cache_dir=tmp_path, timeout=0.4, retries=1)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"^timeout: .* did not answer within 0.4 s \(2 attempts\)"):
        provider.cutout(_source(0)[0], 108, 60)
    assert time.perf_counter() - start < 2.5
    assert not provider.is_cached(_source(0)[0], 108, 60)  # failures are not cached: the next call asks again


def test_unknown_surveys_are_named(server, tmp_path):
    with pytest.raises(InputError, match="unknown SkyView survey 'VLA NOTHING'"):
        SkyViewProvider("VLA NOTHING", url=server.skyview_url, cache_dir=tmp_path).cutout(_source(0)[0], 108, 60)
    with pytest.raises(InputError, match="hips2fits refused the request for 'CDS/P/NOPE': Bad request: HiPS CDS/P/NOPE not found"):
        Hips2FitsProvider("CDS/P/NOPE", url=server.hips2fits_url, cache_dir=tmp_path).cutout(_source(0)[0], 108, 60)


def test_bad_requests_are_refused_before_any_network(tmp_path):
    provider = SkyViewProvider(url=closed_port_url(), cache_dir=tmp_path)
    with pytest.raises(InputError, match="cutout size must be a positive"):
        provider.cutout(EMPTY_SKY, -5, 60)
    with pytest.raises(InputError, match="cutout pixels must be a whole number"):
        provider.cutout(EMPTY_SKY, 60, 3)
