"""training.detect: a detector over a real FIRST catalogue directory -> a catalogue of detections and
det_class / det_prob on the bundle's map; resumable."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from astropy import units as u
from astropy.coordinates import SkyCoord

from explorer.core.bundle import load_bundle
from explorer.core.detector import DetectorConfig, build_detector
from explorer.core.fitsio import catalogue_files, load_fits_catalogue, read_image, wcs_pixel_scale_arcsec
from tests.sky_fixtures import build_mirabest_bundle, mirabest_catalog
from training import detect


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    """A small random-init detector (its boxes are arbitrary, which is all the plumbing needs)."""
    run = tmp_path_factory.mktemp("detector")
    config = DetectorConfig(input_size=132, fpn_channels=16, box_head=32)
    torch.manual_seed(0)
    torch.save({"detector": config.to_dict(), "model": build_detector(config).state_dict()}, run / "checkpoint.pt")
    return run


def test_detect_writes_a_catalogue_of_detections_and_colours_the_bundle_by_class_and_resumes(tmp_path, detector_run,
                                                                                             monkeypatch):
    mirabest_catalog()
    bundle = build_mirabest_bundle(tmp_path / "mb", every=60)           # 21 real FIRST images
    catalogue = tmp_path / ".mb-catalogue"
    rows = catalogue_files(catalogue)[0]
    ids = rows["id"]
    out = tmp_path / "detected"
    # An interrupted earlier run left the first field's detections (marked by an impossible probability) and a
    # line cut short: the rerun keeps the first and detects the second again.
    first = {"id": f"{ids[0]}-d0", "field": ids[0], "ra": rows["ra"][0], "dec": rows["dec"][0], "det_class": "3C_3P", "det_prob": 0.999,
             "side_arcsec": 30.0, "rank": 0, "own": True, "x0": 50.0, "y0": 50.0, "x1": 70.0, "y1": 70.0}
    partial = tmp_path / "detected.partial.jsonl"
    partial.write_text(json.dumps({"field": ids[0], "rows": [first]}) + "\n" + '{"field": "' + ids[1] + '", "ro')
    assert detect.main(["--run", str(detector_run), "--data", str(catalogue), "--out", str(out),
                        "--bundle", str(bundle)]) is None
    assert not partial.exists()

    table = pd.read_csv(out / "catalog.csv")
    assert set(table["field"].astype(str)) == set(ids)
    assert table.groupby("field")["rank"].min().eq(0).all()
    # Paper 3's filter: a field keeps its P >= 0.8 detections, or its single best one.
    assert all((g["det_prob"] >= 0.8).all() or len(g) == 1 for _, g in table.groupby("field"))
    # Each detection's cutout has its input's pixels (150 at 1.8") and is centred on the box's RA/Dec.
    for _, row in table.head(5).iterrows():
        image, wcs, _ = read_image(out / row["file"])
        assert image.shape == (150, 150)
        assert np.mean(wcs_pixel_scale_arcsec(wcs)) == pytest.approx(1.8, rel=1e-3)
        centre = wcs.pixel_to_world(74.5, 74.5)
        assert centre.separation(SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)) < 0.5 * 1.8 * u.arcsec
    images, loaded, _, skipped = load_fits_catalogue(out, pixels=150, pixel_scale_arcsec=1.8, progress=False)
    assert not skipped and len(images) == len(table)                  # ready for training.embed
    assert set(loaded["det_class"]) <= {"1C_1P", "1C_2P", "1C_3P", "2C_2P", "2C_3P", "3C_3P"}

    colored = load_bundle(bundle)
    assert {"det_class", "det_prob"} <= set(colored.prediction_columns)
    by_id = colored.catalog.set_index(colored.catalog["id"].astype(str))
    assert by_id.loc[ids[0], "det_class"] == "3C_3P" and by_id.loc[ids[0], "det_prob"] == pytest.approx(0.999)
    own = table[table["field"].astype(str) == ids[1]]
    assert by_id.loc[ids[1], "det_class"] in set(own["det_class"])

    # The Explore page colours the map by the detected class.
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from tests.app_helpers import map_data

    monkeypatch.setenv("EXPLORER_BUNDLES", str(Path(bundle).parent))
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120).run()
    next(s for s in app.sidebar.selectbox if s.label == "Colour by").set_value("det_class").run()
    assert not app.exception
    legend = {(i["label"], i["count"]) for i in map_data(app)["legend"]["items"]}
    assert legend == set(colored.catalog["det_class"].value_counts().items())


@pytest.mark.parametrize("argv, message", [
    (["--data", "{tmp}/nowhere", "--out", "{tmp}/out"], "FITS catalogue folder not found"),
])
def test_detect_answers_bad_input_in_one_line(tmp_path, detector_run, argv, message):
    import subprocess
    import sys
    from pathlib import Path

    argv = ["--run", str(detector_run), *[a.format(tmp=tmp_path) for a in argv]]
    done = subprocess.run([sys.executable, "-m", "training.detect", *argv], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
