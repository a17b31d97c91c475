"""Exports: CSV and VOTable bytes, and a SAMP broadcast to a real hub with a real receiving client."""
import io
import threading
import time
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd
import pytest
from pyvo.samp import SAMPHubServer, SAMPIntegratedClient
from astropy.table import Table

from explorer.core.errors import InputError
from explorer.core.export import NO_HUB_MESSAGE, broadcast_table, to_csv_bytes, to_votable_bytes
from explorer.core.fitsio import column_metadata
from tests.sky_fixtures import mirabest_catalog


@pytest.fixture
def results():
    table = mirabest_catalog().head(8).drop(columns=["file"])
    table.insert(0, "id", [f"src{i}" for i in range(8)])
    table["similarity"] = np.linspace(1, 0.5, 8).astype(np.float32)
    table.loc[2, "morphology"] = None
    return table, column_metadata(table)


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))


def _read_votable(data: bytes) -> Table:
    return Table.read(io.BytesIO(data), format="votable")


def test_votable_keeps_values_units_and_descriptions(results):
    table, columns = results
    votable = _read_votable(to_votable_bytes(table, columns, name="neighbours"))
    assert list(votable.colnames) == list(table.columns)
    assert np.allclose(votable["ra"], table["ra"]) and str(votable["ra"].unit) == "deg"
    assert str(votable["las_arcsec"].unit) == "arcsec"
    assert votable["log_lum_1p4ghz"].unit is None  # not an astropy unit: kept in the description
    assert "[log10(W/Hz)]" in votable["log_lum_1p4ghz"].description
    assert list(votable["id"]) == list(table["id"])
    assert votable["morphology"][2] in ("", np.ma.masked)


def test_csv_round_trip(results):
    table, _ = results
    back = pd.read_csv(io.BytesIO(to_csv_bytes(table)))
    assert back["id"].tolist() == table["id"].tolist()
    assert np.allclose(back["similarity"], table["similarity"])


@pytest.fixture
def hub(tmp_path, monkeypatch):
    lockfile = tmp_path / "samp-lock"
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{lockfile.as_uri()}")  # the SAMP standard's way to name a hub
    server = SAMPHubServer(web_profile=False, lockfile=str(lockfile))
    server.start()
    yield server
    server.stop()


def test_broadcast_reaches_a_real_samp_client(results, hub):
    table, columns = results
    received = []
    arrived = threading.Event()

    def on_table(private_key, sender_id, msg_id, mtype, params, extra):
        received.append((mtype, params))
        arrived.set()

    receiver = SAMPIntegratedClient(name="test receiver")
    receiver.connect()
    try:
        receiver.bind_receive_notification("table.load.votable", on_table)
        table_id = broadcast_table(table.iloc[[1, 4, 6]], "lasso selection", columns)
        assert arrived.wait(10), "the receiver got no table.load.votable"
    finally:
        receiver.disconnect()
    mtype, params = received[0]
    assert mtype == "table.load.votable" and params["table-id"] == table_id and params["name"] == "lasso selection"
    sent = _read_votable(open(url2pathname(urlparse(params["url"]).path), "rb").read())
    assert list(sent["id"]) == ["src1", "src4", "src6"] and str(sent["dec"].unit) == "deg"


def test_no_hub_gives_the_clear_message(results, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'no-hub-here').as_uri()}")
    start = time.perf_counter()
    with pytest.raises(InputError) as err:
        broadcast_table(results[0], "results")
    assert str(err.value) == NO_HUB_MESSAGE == "no SAMP hub is running; start TOPCAT or Aladin"
    assert time.perf_counter() - start < 5
    assert not list((tmp_path / "home" / "cache" / "samp").glob("*.xml"))  # nothing left behind
