"""training.fetch: a catalogue in, a FITS catalogue directory out, through the loopback survey server."""
import json
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
from astropy.io import fits
from astropy.table import Table

from explorer.core.fitsio import cutout_at, load_fits_catalogue, read_image
from training.data import load_data
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
    server.hold_downloads_after = 3   # the fourth download waits, so the interrupt lands mid-batch
    # Ctrl-C as a terminal delivers it: a suite started in the background (nohup, CI) hands its children SIGINT
    # ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen(args, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not server.holding.wait(0.05) and proc.poll() is None and time.time() < deadline:
        pass
    assert server.holding.is_set() and proc.poll() is None, (
        f"no download was held (returncode {proc.poll()}, requests {dict(server.hits)})")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    server.release()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted: rerun the same command to resume"
    partial = pd.read_csv(out / "catalog.csv")
    assert 3 <= len(partial) < 11
    assert sorted(partial["file"]) == sorted(f"fits/{p.name}" for p in out.glob("fits/*.fits"))

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


# ---------------------------------------------------------------- multi-band catalogue directories

def _band_folder(root, name, factor, skip=()):
    """A local collection of the real FIRST images of _catalogue()'s sources, times ``factor`` (so every band is
    told apart from the others by its pixels), leaving out the sources at ``skip``."""
    truth = mirabest_catalog().iloc[::100].reset_index(drop=True)
    folder = root / name
    folder.mkdir(parents=True)
    for i, file in enumerate(truth["file"]):
        if i not in skip:
            with fits.open(MIRABEST / file) as hdus:
                fits.PrimaryHDU(hdus[0].data * np.float32(factor), hdus[0].header).writeto(
                    folder / f"{i}.fits", output_verify="ignore")  # real headers carry tabs in comments
    return folder


def _files_on_disk(out):
    return {p.relative_to(out): p.stat().st_mtime_ns for p in out.glob("fits/**/*.fits")}


def test_multi_band_fetch_writes_a_file_column_per_band_in_the_given_order(server, tmp_path, capsys):
    table, real = _catalogue()
    table.to_csv(tmp_path / "sources.csv", index=False)
    double = _band_folder(tmp_path / "bands", "double", 2.0, skip={5})  # source 5 has no image in this band
    out = tmp_path / "fetched"
    args = ["--catalog", str(tmp_path / "sources.csv"), "--band", "first=hips:CDS/P/FIRST", "--band",
            f"double=local:{double}", "--size", str(SIZE), "--pixels", str(PIXELS), "--out", str(out),
            "--server", server.hips2fits_url, "--workers", "3"]
    status, printed, _ = _run(args, capsys)
    assert status == 0 and "10 sources with all 2 bands" in printed and "3 failed" in printed

    catalog = pd.read_csv(out / "catalog.csv")
    assert list(catalog.columns) == ["file_first", "file_double", "ra", "dec", "z", "las_arcsec", "fr_class", "name"]
    assert catalog["name"].tolist() == [n for n in real["name"] if n != "MB 5"]  # never half its bands
    assert catalog["file_first"].str.startswith("fits/first/").all()
    assert catalog["file_double"].str.startswith("fits/double/").all()
    assert fits.getheader(out / catalog["file_double"][0])["BAND"] == "double"
    assert (out / "fits/first/000005_MB_5.fits").is_file()  # kept for the rerun, listed nowhere as done

    failed = pd.read_csv(out / "failed.csv")
    assert failed["row"].tolist() == [5, 11, 12] and failed["band"].tolist() == ["double", "first,double", "first,double"]
    assert failed["reason"][0].startswith("no coverage at this position in local FITS collection double")
    first, second = failed["reason"][1].split("; ")  # different reasons: one per band, in band order
    assert first.startswith("first: no coverage at this position in hips2fits CDS/P/FIRST")
    assert second.startswith("double: no coverage at this position in local FITS collection double")
    assert failed["reason"][2].startswith("invalid position")
    assert failed["name"].tolist() == ["MB 5", "empty sky", "impossible"]

    settings = json.loads((out / "fetch.json").read_text())
    assert settings["bands"] == [["first", "hips:CDS/P/FIRST"], ["double", f"local:{double}"]]
    assert settings["survey"] == f"first=hips:CDS/P/FIRST, double=local:{double}"

    data = load_data(str(out), pixels=PIXELS, pixel_scale_arcsec=SIZE / PIXELS, progress=False)
    assert data.images.shape == (10, 2, PIXELS, PIXELS) and not data.skipped
    assert data.catalog.attrs["bands"] == ["first", "double"]  # the given order, not the alphabet's
    assert np.isfinite(data.images[:, 0]).any() and np.nanmax(np.abs(data.images[:, 0])) > 0
    np.testing.assert_array_equal(data.images[:, 1], 2 * data.images[:, 0])

    # a rerun fetches nothing; a lost file is fetched again in its band alone
    asked, before = sum(server.hits.values()), _files_on_disk(out)
    status, printed, _ = _run(args, capsys)
    assert status == 0 and "10 sources" in printed and sum(server.hits.values()) == asked
    assert _files_on_disk(out) == before
    lost = out / catalog["file_double"][2]
    lost.unlink()
    status, printed, _ = _run(args, capsys)
    assert status == 0 and "10 sources" in printed and sum(server.hits.values()) == asked and lost.is_file()
    assert {k: v for k, v in _files_on_disk(out).items() if out / k != lost} == {
        k: v for k, v in before.items() if out / k != lost}


def test_band_template_matches_the_band_list_and_a_changed_list_is_refused(tmp_path, capsys):
    table, _ = _catalogue()
    table.iloc[:4].to_csv(tmp_path / "sources.csv", index=False)
    bands = tmp_path / "bands"
    for name, factor in (("first", 1.0), ("double", 2.0)):
        _band_folder(bands, name, factor)
    out = tmp_path / "fetched"
    base = ["--catalog", str(tmp_path / "sources.csv"), "--size", str(SIZE), "--pixels", str(PIXELS), "--out", str(out)]
    template = ["--bands", "double,first", "--survey", f"local:{bands}/{{band}}"]
    status, printed, _ = _run(base + template, capsys)
    assert status == 0 and "4 sources with all 2 bands" in printed and "0 failed" in printed
    assert not (out / "failed.csv").exists()
    images, catalog, _, _ = load_fits_catalogue(out, pixels=PIXELS, pixel_scale_arcsec=SIZE / PIXELS, progress=False)
    assert catalog.attrs["bands"] == ["double", "first"] and images.shape == (4, 2, PIXELS, PIXELS)
    np.testing.assert_array_equal(images[:, 0], 2 * images[:, 1])

    # the same bands spelled one by one are the same fetch: accepted, nothing fetched again
    before = _files_on_disk(out)
    same = ["--band", f"double=local:{bands}/double", "--band", f"first=local:{bands}/first"]
    assert _run(base + same, capsys)[0] == 0 and _files_on_disk(out) == before
    for changed in (["--bands", "first,double", "--survey", f"local:{bands}/{{band}}"],  # another order
                    ["--bands", "double", "--survey", f"local:{bands}/{{band}}"],        # a band fewer
                    ["--survey", f"local:{bands}/first"]):                               # one survey
        status, _, err = _run(base + changed, capsys)
        assert status == 2 and len(err.strip().splitlines()) == 1
        assert "holds a fetch with other settings (survey" in err and "differ" in err, err
    assert _files_on_disk(out) == before


@pytest.mark.parametrize("bands, message", [
    (["--band", "u"], "--band expects NAME=SURVEY"),
    (["--band", "u=DSS", "--band", "u=NVSS"], "band u is given twice"),
    (["--band", "u=DSS", "--band", "U=NVSS"], "band U is given twice (u and U)"),
    (["--band", "u/x=DSS"], "band name 'u/x' is not usable"),
    (["--band", "u="], "band u has no survey"),
    (["--band", "u=local:/nowhere/at/all"], "band u: local FITS collection not found"),
    (["--survey", "DSS", "--band", "u=DSS"], "give it without --survey and --bands"),
    (["--bands", "u,g", "--band", "u=DSS"], "give it without --survey and --bands"),
    (["--bands", "u,g", "--survey", "DSS"], "--bands needs a --survey template with {band} in it"),
    (["--bands", "u,g"], "--bands needs a --survey template"),
    (["--bands", "u,,g", "--survey", "hips:CDS/P/SDSS9/{band}"], "band name '' is not usable"),
    (["--survey", "hips:CDS/P/SDSS9/{band}"], "is a template: add --bands"),
    ([], "give --survey (one band), or --bands"),
    (["--bands", "u,g", "--survey", "hips:x/{band}", "--catalog", "clash.csv"], "has a column named file_g"),
])
def test_bad_band_input_is_one_line_and_exit_2(tmp_path, capsys, bands, message):
    pd.DataFrame({"ra": [1.0], "dec": [2.0]}).to_csv(tmp_path / "ok.csv", index=False)
    pd.DataFrame({"ra": [1.0], "dec": [2.0], "file_g": ["a.fits"]}).to_csv(tmp_path / "clash.csv", index=False)
    args = {"--catalog": "ok.csv", "--size": "90", "--pixels": "50", "--out": "out", "--server": closed_port_url()}
    args.update(zip(bands[::2], bands[1::2]) if "--catalog" in bands else {})
    rest = [] if "--catalog" in bands else bands
    argv = [x for k, v in args.items() for x in (k, str(tmp_path / v) if k in ("--catalog", "--out") else v)]
    status, _, err = _run(argv + rest, capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()  # nothing claimed
