"""Run a trained detector over a FITS catalogue directory: every source it finds becomes a catalogue row.

    python -m training.detect --run runs/claran-d1 --data ../shared/data/mirabest --out data/detected \
        [--bundle bundles/mirabest]

Each image's 3′ around its row's position is resampled onto the detector's field
(:func:`explorer.core.detector.field_around`); detectors that read D3 or D4 take W1 from the file's
``W1`` extension. Paper 3's P filter is on unless ``--all-detections``. Writes:

- ``--out``: a FITS catalogue directory of the detected sources, one row per detection (``det_class``,
  ``det_prob``, RA/Dec of the box centre, its side, the field it came from), each with a cutout of the
  input's own pixel scale and size centred on the box: ``python -m training.embed`` takes it as it is,
  and its bundle can be coloured by ``det_class`` and ``det_prob``.
- ``--bundle``: in a bundle made from the same catalogue, ``predictions/detections.parquet`` with the
  ``det_class`` and ``det_prob`` of each source's own detection (the most probable box holding its
  position; else the nearest box), so the map can be coloured by detected class.

Detections are appended per field to ``<out>.partial.jsonl``; rerunning the command resumes there.
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("detect")

import json
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from tqdm.auto import tqdm

from explorer.core.atomic import check_output_folder
from explorer.core.bundle import load_bundle
from explorer.core.detector import FIELD_PIXELS, detect_field, detection_at, field_around, needs_infrared
from explorer.core.errors import InputError, cli_entry
from explorer.core.fitsio import catalogue_files, cutout_with_wcs, read_image, wcs_pixel_scale_arcsec
from explorer.core.heads import write_predictions
from training.simulate import write_fits_catalogue

DETECTED_COLUMNS = {
    "id": {"unit": "", "description": "detection identifier: <field id>-d<rank>"},
    "field": {"unit": "", "description": "id of the catalogue row whose image held the detection"},
    "ra": {"unit": "deg", "description": "box centre, right ascension (ICRS)"},
    "dec": {"unit": "deg", "description": "box centre, declination (ICRS)"},
    "det_class": {"unit": "", "description": "detected morphology iC_jP: i components, j peaks (paper 3)"},
    "det_prob": {"unit": "", "description": "detector probability of the class"},
    "side_arcsec": {"unit": "arcsec", "description": "side of the detection's square box"},
    "rank": {"unit": "", "description": "0 for the field's most probable detection, 1 for the next, ..."},
}
BUNDLE_COLUMNS = {"det_class": DETECTED_COLUMNS["det_class"], "det_prob": DETECTED_COLUMNS["det_prob"]}
NO_DETECTION = "none"


def _read_field(path: Path, infrared: bool):
    """(image, its WCS, (W1 image, its WCS) or None) of one catalogue file."""
    image, wcs, _ = read_image(path)
    if not infrared:
        return image, wcs, None
    with fits.open(path) as hdus:
        if "W1" not in hdus:
            raise InputError(f"{path} has no W1 extension, and this detector reads radio contours over W1 "
                             "(D3/D4); use a radio-only (D1) detector")
        return image, wcs, (hdus["W1"].data.astype(np.float32), WCS(hdus["W1"].header).celestial)


def detect_catalogue(model, config, directory, partial: Path, *, apply_filter: bool = True,
                     progress: bool = True) -> pd.DataFrame:
    """The detections of every row of a FITS catalogue directory: id, field, ra, dec, det_class, det_prob,
    side_arcsec, rank, ``own`` (the detection of the row's own source) and the field-pixel box (x0..y1).

    Each field's detections are appended to ``partial`` (JSON lines) as they come; fields found there
    are not detected again."""
    table, skipped = catalogue_files(directory)
    if skipped:
        print(f"skipping {len(skipped)} rows without a usable position, e.g. {skipped[0][0]}: {skipped[0][1]}")
    done = {}
    if partial.is_file():
        for line in partial.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:                       # a line cut short by an interruption: detect that field again
                continue
            done[record["field"]] = record["rows"]
    infrared = needs_infrared(config.input)
    centre = (FIELD_PIXELS - 1) / 2
    with partial.open("a") as log:
        for _, row in tqdm(table.iterrows(), total=len(table), desc="detecting", unit="field", disable=not progress):
            field_id = str(row["id"])
            if field_id in done:
                continue
            image, wcs, w1 = _read_field(row["path"], infrared)
            position = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
            field, field_wcs = field_around(image, wcs, position)
            w1_field = None if w1 is None else field_around(w1[0], w1[1], position)[0]
            found = detect_field(model, config, field, field_wcs, infrared=w1_field, apply_filter=apply_filter)
            own = detection_at(found, centre, centre)
            rows = [{"id": f"{field_id}-d{k}", "field": field_id, "ra": d["ra"], "dec": d["dec"],
                     "det_class": d["det_class"], "det_prob": round(float(d["det_prob"]), 4),
                     "side_arcsec": d["side_arcsec"], "rank": k, "own": own is not None and d.name == own.name,
                     **{c: round(float(d[c]), 3) for c in ("x0", "y0", "x1", "y1")}}
                    for k, (_, d) in enumerate(found.iterrows())]
            done[field_id] = rows
            log.write(json.dumps({"field": field_id, "rows": rows}) + "\n")
            log.flush()
    records = [r for field_id in table["id"] for r in done[field_id]]
    return pd.DataFrame(records, columns=[*DETECTED_COLUMNS, "own", "x0", "y0", "x1", "y1"])


def write_detected_catalogue(detections: pd.DataFrame, directory, out, *, progress: bool = True) -> Path:
    """The detections as a FITS catalogue directory: a cutout of each, at its input image's scale and size."""
    paths = catalogue_files(directory)[0].set_index("id")["path"]
    cutouts, cached = [], {}
    for _, d in tqdm(detections.iterrows(), total=len(detections), desc="cutting out detections", unit="source",
                     disable=not progress):
        if d["field"] not in cached:
            cached = {d["field"]: read_image(paths[d["field"]])[:2]}
        image, wcs = cached[d["field"]]
        scale = float(np.mean(wcs_pixel_scale_arcsec(wcs)))
        cutout, _ = cutout_with_wcs(image, wcs, SkyCoord(d["ra"] * u.deg, d["dec"] * u.deg), image.shape[-1], scale)
        cutouts.append(np.asarray(cutout, np.float32))
    if not cutouts:
        raise InputError(f"the detector found no source in {directory}")
    shapes = {c.shape for c in cutouts}
    if len(shapes) > 1:
        raise InputError(f"the images of {directory} differ in size ({sorted(shapes)}); the detected catalogue "
                         "needs one cutout size")
    scale = float(np.mean(wcs_pixel_scale_arcsec(cached[next(iter(cached))][1])))
    catalogue = detections[list(DETECTED_COLUMNS)].reset_index(drop=True)
    return write_fits_catalogue(out, np.stack(cutouts), catalogue, pixel_scale_arcsec=scale, columns=DETECTED_COLUMNS,
                                provenance={"generator": "training.detect", "data": str(directory)},
                                progress=progress)


def bundle_detections(detections: pd.DataFrame, bundle_path) -> Path:
    """``predictions/detections.parquet``: each bundle source's own detection (``none`` where its field had none)."""
    bundle = load_bundle(bundle_path)
    own = detections[detections["own"]].set_index("field")
    ids = bundle.catalog["id"].astype(str)
    matched = ids.isin(own.index)
    if not matched.any():
        raise InputError(f"no source of {bundle_path} is a row of the detected catalogue (ids differ); give the "
                         "bundle made from the same catalogue directory")
    table = pd.DataFrame({"det_class": ids.map(own["det_class"]).fillna(NO_DETECTION).to_numpy(),
                          "det_prob": ids.map(own["det_prob"]).fillna(0.0).to_numpy(float)})
    return write_predictions(bundle_path, "detections", table, BUNDLE_COLUMNS)


@cli_entry
def main(argv=None):
    from training import cli
    from training.detector import load_detector

    args = cli.parser("detect").parse_args(argv)
    model, config = load_detector(args.run)
    out = Path(args.out)
    check_output_folder(out, "detected catalogue", lambda p: (p / "provenance.json").exists(), overwrite=True)
    partial = out.with_name(out.name + ".partial.jsonl")
    detections = detect_catalogue(model, config, args.data, partial, apply_filter=not args.all_detections)
    found = detections[detections["det_class"] != NO_DETECTION]
    write_detected_catalogue(found, args.data, out)
    print(found["det_class"].value_counts().to_string())
    print(f"{len(found)} detections in {detections['field'].nunique()} fields: {out}")
    if args.bundle:
        print(f"det_class and det_prob of each source: {bundle_detections(detections, args.bundle)}")
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
