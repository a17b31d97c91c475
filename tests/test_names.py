"""Name resolution through astropy's real Sesame client against a loopback Sesame server."""
import time

import pytest
from astropy.coordinates import SkyCoord

from explorer.core.errors import InputError
from explorer.core.sky.names import OFFLINE_MESSAGE, position_of, resolve_name
from tests.sky_fixtures import mirabest_catalog
from tests.survey_server import SESAME_NAMES, SurveyServer, closed_port_url


@pytest.fixture
def server():
    mirabest_catalog()  # the server serves the real files; skip without them
    with SurveyServer() as srv:
        yield srv


def test_name_resolves_then_comes_from_the_disk_cache(server, tmp_path):
    coord = resolve_name("M 31", urls=[server.sesame_url], cache_dir=tmp_path)
    assert coord.separation(SkyCoord(*SESAME_NAMES["m 31"], unit="deg")).arcsec < 0.01
    assert server.hits["sesame"] == 1
    again = resolve_name("  m   31 ", urls=[server.sesame_url], cache_dir=tmp_path)  # same name, other spelling
    assert again.separation(coord).arcsec < 1e-6
    assert server.hits["sesame"] == 1
    # the cache answers even with no network at all
    offline = resolve_name("M 31", urls=[closed_port_url("/sesame/")], cache_dir=tmp_path)
    assert offline.separation(coord).arcsec < 1e-6


def test_unknown_name_is_reported_and_not_cached(server, tmp_path):
    for _ in range(2):
        with pytest.raises(InputError, match="^unknown name: Nowhere Galaxy 42$"):
            resolve_name("Nowhere Galaxy 42", urls=[server.sesame_url], cache_dir=tmp_path)
    assert server.hits["sesame"] == 2


def test_offline_is_detected_at_once_with_the_exact_message(tmp_path):
    start = time.perf_counter()
    with pytest.raises(InputError) as err:
        resolve_name("M 31", urls=[closed_port_url("/sesame/")], cache_dir=tmp_path)
    assert str(err.value) == OFFLINE_MESSAGE == "offline: cannot resolve names; enter coordinates"
    assert time.perf_counter() - start < 2


def test_a_stalled_resolver_times_out_instead_of_hanging(server, tmp_path):
    server.stall_seconds = 5
    start = time.perf_counter()
    with pytest.raises(InputError, match="^timeout: the name resolver did not answer within 0.5 s"):
        resolve_name("M 31", urls=[server.sesame_url], cache_dir=tmp_path, timeout=0.5, retries=1)
    assert time.perf_counter() - start < 3.5


def test_position_of_reads_coordinates_locally_and_names_remotely(server, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_SESAME_URL", server.sesame_url)  # the app's way to choose a resolver
    assert position_of("150.1 2.2", cache_dir=tmp_path).ra.deg == pytest.approx(150.1)
    assert position_of("FIRST J134541.2+232253", cache_dir=tmp_path).dec.deg == pytest.approx(23.3814, abs=1e-4)
    assert server.hits["sesame"] == 0
    with pytest.raises(InputError, match="Dec \\+95° is out of range"):
        position_of("150 95", cache_dir=tmp_path)  # a coordinate mistake is never sent to the resolver
    assert server.hits["sesame"] == 0
    assert position_of("3C 273", cache_dir=tmp_path).separation(
        SkyCoord(*SESAME_NAMES["3c 273"], unit="deg")).arcsec < 0.01
    assert server.hits["sesame"] == 1
    assert position_of("M 31", cache_dir=tmp_path).separation(  # letters of h/m/s/d alone do not make coordinates
        SkyCoord(*SESAME_NAMES["m 31"], unit="deg")).arcsec < 0.01
    with pytest.raises(InputError, match="no coordinates given"):
        position_of("   ", cache_dir=tmp_path)
