"""training.fetch: a catalogue in, a FITS catalogue directory out, through the loopback survey server."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.coordinates import SkyCoord
from astropy.table import Table

from explorer.core.fitsio import cutout_at, load_fits_catalogue, read_image
from training.fetch import main
from tests.sky_fixtures import MIRABEST, REPO, mirabest_catalog
from tests.survey_server import SurveyServer, closed_port_url

SIZE, PIXELS = 90.0, 50


@pytest.fixture
def server():
    mirabest_catalog()
    with SurveyServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))  # the survey cache lives here


def _catalogue():
    """11 real MiraBest sources, one of them written in sexagesimal, one in empty sky, one impossible."""
    real = mirabest_catalog().iloc[::100][["ra", "dec", "z", "las_arcsec", "fr_class"]].reset_index(drop=True)
    real["name"] = [f"MB {i}" for i in range(len(real))]
    table = real.astype({"ra": object, "dec": object})
    c = SkyCoord(real["ra"][3], real["dec"][3], unit="deg")
    table.loc[3, ["ra", "dec"]] = [c.ra.to_string("hourangle", sep=":", precision=3),
                                   c.dec.to_string(sep=":", precision=2, alwayssign=True)]
    extra = pd.DataFrame({"ra": [0.5, 150.0], "dec": [-60.0, 95.0], "z": [0.1, 0.2], "las_arcsec": [10.0, 20.0],
                          "fr_class": ["FRI", "FRII"], "name": ["empty sky", "impossible"]})
    return pd.concat([table, extra], ignore_index=True), real


def _run(args, capsys):
    try:
        status = main(args)
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def _check_cutouts(out, real):
    catalog = pd.read_csv(out / "catalog.csv")
    assert list(catalog.columns) == ["file", "ra", "dec", "z", "las_arcsec", "fr_class", "name"]
    assert catalog["name"].tolist() == real["name"].tolist()
    truth = mirabest_catalog().iloc[::100].reset_index(drop=True)
    for i, row in catalog.iterrows():
        coord = SkyCoord(row["ra"], row["dec"], unit="deg")
        assert coord.separation(SkyCoord(real["ra"][i], real["dec"][i], unit="deg")).arcsec < 0.01
        image, wcs, _ = read_image(out / row["file"])
        x, y = wcs.world_to_pixel(coord)
        assert abs(x - (PIXELS - 1) / 2) <= 0.5 and abs(y - (PIXELS - 1) / 2) <= 0.5
        data, file_wcs, _ = read_image(MIRABEST / truth["file"][i])
        assert np.array_equal(image, cutout_at(data, file_wcs, coord, PIXELS, SIZE / PIXELS), equal_nan=True)
    return catalog


def test_csv_catalogue_becomes_a_loadable_fits_catalogue_directory(server, tmp_path, capsys):
    table, real = _catalogue()
    table.to_csv(tmp_path / "sources.csv", index=False)
    out = tmp_path / "fetched"
    args = ["--catalog", str(tmp_path / "sources.csv"), "--survey", "VLA FIRST (1.4 GHz)", "--size", str(SIZE),
            "--pixels", str(PIXELS), "--out", str(out), "--server", server.skyview_url, "--workers", "3"]
    status, printed, _ = _run(args, capsys)
    assert status == 0 and "11 cutouts" in printed and "2 failed" in printed
    _check_cutouts(out, real)
    failed = pd.read_csv(out / "failed.csv")
    assert failed["row"].tolist() == [11, 12]
    assert failed["reason"][0].startswith("no coverage at this position in SkyView VLA FIRST (1.4 GHz)")
    assert failed["reason"][1].startswith("invalid position")
    assert failed["name"].tolist() == ["empty sky", "impossible"]
    images, loaded, _, skipped = load_fits_catalogue(out, pixels=PIXELS, pixel_scale_arcsec=SIZE / PIXELS,
                                                     progress=False)
    assert images.shape == (11, 1, PIXELS, PIXELS) and not skipped
    assert loaded["id"].tolist() == real["name"].tolist()
    # a rerun asks the server nothing: done rows are on disk, "no coverage" is cached
    asked = sum(server.hits.values())
    status, printed, _ = _run(args, capsys)
    assert status == 0 and "11 cutouts" in printed and sum(server.hits.values()) == asked


def test_interrupted_fetch_resumes_without_fetching_twice(server, tmp_path):
    table, real = _catalogue()
    table.to_csv(tmp_path / "sources.csv", index=False)
    out = tmp_path / "fetched"
    args = [sys.executable, "-m", "training.fetch", "--catalog", str(tmp_path / "sources.csv"), "--survey",
            "VLA FIRST (1.4 GHz)", "--size", str(SIZE), "--pixels", str(PIXELS), "--out", str(out),
            "--server", server.skyview_url, "--workers", "1"]
    server.stall_seconds = 0.3
    proc = subprocess.Popen(args, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while len(list(out.glob("fits/*.fits"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted: rerun the same command to resume"
    partial = pd.read_csv(out / "catalog.csv")
    assert 3 <= len(partial) < 11
    assert sorted(partial["file"]) == sorted(f"fits/{p.name}" for p in out.glob("fits/*.fits"))

    server.stall_seconds = 0
    done = subprocess.run(args, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _check_cutouts(out, real)
    assert server.hits["skyview-query"] == 12  # 11 sources + the empty sky, each asked once across both runs


def test_votable_and_fits_tables_keep_units_through_hips2fits(server, tmp_path, capsys):
    table, real = _catalogue()
    real = real.rename(columns={"ra": "RAJ2000", "dec": "DEJ2000"})
    t = Table.from_pandas(real)
    t["RAJ2000"].unit = t["DEJ2000"].unit = "deg"
    t["las_arcsec"].unit, t["las_arcsec"].description = "arcsec", "largest angular size"
    for name, fmt in (("sources.vot", "votable"), ("sources.fits", "fits")):
        t.write(tmp_path / name, format=fmt)
        out = tmp_path / f"out_{fmt}"
        status, printed, _ = _run(["--catalog", str(tmp_path / name), "--survey", "hips:CDS/P/FIRST", "--size",
                                   str(SIZE), "--pixels", str(PIXELS), "--out", str(out), "--server",
                                   server.hips2fits_url], capsys)
        assert status == 0 and "11 cutouts" in printed and "0 failed" in printed
        assert not (out / "failed.csv").exists()
        assert yaml.safe_load((out / "columns.yaml").read_text())["las_arcsec"] == {
            "unit": "arcsec", "description": "largest angular size"}
        images, loaded, columns, _ = load_fits_catalogue(out, pixels=PIXELS, pixel_scale_arcsec=SIZE / PIXELS,
                                                         progress=False)
        assert len(images) == 11 and columns["las_arcsec"]["unit"] == "arcsec"


def test_offline_rows_are_listed_with_the_reason(tmp_path, capsys):
    table, _ = _catalogue()
    table.to_csv(tmp_path / "sources.csv", index=False)
    start = time.perf_counter()
    status, printed, _ = _run(["--catalog", str(tmp_path / "sources.csv"), "--survey", "VLA FIRST (1.4 GHz)",
                               "--size", "90", "--pixels", "50", "--out", str(tmp_path / "out"),
                               "--server", closed_port_url("/skyview/basicform.pl")], capsys)
    assert time.perf_counter() - start < 10
    assert status == 1 and "0 cutouts" in printed
    failed = pd.read_csv(tmp_path / "out" / "failed.csv")
    assert len(failed) == 13
    assert failed["reason"].str.startswith("offline: cannot reach SkyView").sum() == 12


@pytest.mark.parametrize("change, message", [
    ({"--catalog": "missing.csv"}, "catalogue not found"),
    ({"--catalog": "nocoords.csv"}, "has no RA and Dec column"),
    ({"--pixels": "3"}, "--pixels must be from 8 to 4096"),
    ({"--size": "-1"}, "--size must be a positive number"),
    ({"--pixels": "many"}, "argument --pixels: invalid int value: 'many'"),
    ({"--survey": "local:/nowhere/at/all"}, "local FITS collection not found"),
    ({"--survey": "hips:"}, "no HiPS survey given"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, change, message):
    pd.DataFrame({"x": [1.0], "y": [2.0]}).to_csv(tmp_path / "nocoords.csv", index=False)
    pd.DataFrame({"ra": [1.0], "dec": [2.0]}).to_csv(tmp_path / "ok.csv", index=False)
    args = {"--catalog": "ok.csv", "--survey": "VLA FIRST (1.4 GHz)", "--size": "90", "--pixels": "50",
            "--out": "out", "--server": closed_port_url()}
    args.update(change)
    argv = [x for k, v in args.items() for x in (k, str(tmp_path / v) if k in ("--catalog", "--out") else v)]
    status, _, err = _run(argv, capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err


def test_a_folder_with_another_fetch_is_refused(tmp_path, capsys):
    pd.DataFrame({"ra": [1.0], "dec": [2.0]}).to_csv(tmp_path / "ok.csv", index=False)
    base = ["--catalog", str(tmp_path / "ok.csv"), "--survey", "VLA FIRST (1.4 GHz)", "--pixels", "50",
            "--out", str(tmp_path / "out"), "--server", closed_port_url()]
    assert _run(base + ["--size", "90"], capsys)[0] == 1  # offline: nothing fetched, but the folder is claimed
    status, _, err = _run(base + ["--size", "120"], capsys)
    assert status == 2 and "holds a fetch with other settings (size_arcsec differ)" in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    status, _, err = _run(base[:-4] + ["--out", str(tmp_path / "other"), "--size", "90"], capsys)
    assert status == 2 and "is not a fetch folder" in err
