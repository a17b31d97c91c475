"""Loading and preprocessing the 1,098 real MiraBest FITS files: throughput, side by side with a naive baseline.

    python -m benchmarks.load_fits [--repeat 1]

- explorer.core.fitsio.load_fits_catalogue (thread pool; WCS from headers without commentary
  cards; one vectorised SkyCoord) + explorer.core.preprocess.preprocess on the whole stack;
- the same with one worker;
- a naive single-threaded loop: fits.open, WCS(full header) with its VerifyWarnings
  silenced, a SkyCoord and Cutout2D per row, then preprocess per image.

All three produce the same arrays (checked). Target: well under a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.nddata import Cutout2D
from astropy.wcs import WCS

from explorer.core.fitsio import load_fits_catalogue
from explorer.core.preprocess import Preprocessing, preprocess
from tests.sky_fixtures import MIRABEST

PIXELS, SCALE = 150, 1.8


def ours(workers: int | None) -> np.ndarray:
    images, _, _, skipped = load_fits_catalogue(MIRABEST, pixels=PIXELS, pixel_scale_arcsec=SCALE, progress=False,
                                                workers=workers)
    assert not skipped, skipped[:3]
    return preprocess(images, Preprocessing())


def naive() -> np.ndarray:
    catalog = pd.read_csv(MIRABEST / "catalog.csv")
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        for file, ra, dec in zip(catalog["file"], catalog["ra"], catalog["dec"]):
            with fits.open(MIRABEST / file) as hdul:
                data, header = hdul[0].data.astype(np.float32), hdul[0].header
            cut = Cutout2D(data, SkyCoord(ra, dec, unit="deg"), (PIXELS, PIXELS), wcs=WCS(header), mode="partial",
                           fill_value=np.nan)
            out.append(preprocess(cut.data, Preprocessing())[0])
    return np.stack(out)


def timed(fn, repeat: int):
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_fits", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs (default 1)")
    args = parser.parse_args(argv)
    if not (MIRABEST / "catalog.csv").is_file():
        print(f"skipped: the real MiraBest files are not at {MIRABEST}")
        return 0
    rows = []
    reference = None
    for label, fn in (("load_fits_catalogue, thread pool", lambda: ours(None)),
                      ("load_fits_catalogue, 1 worker", lambda: ours(1)),
                      ("naive loop (baseline)", naive)):
        seconds, images = timed(fn, args.repeat)
        if reference is None:
            reference = images
        assert np.array_equal(images, reference), f"{label} produced different pixels"
        rows.append((label, seconds, len(images)))
    print(f"load + preprocess {rows[0][2]} MiraBest FITS ({PIXELS} px at {SCALE}\"/px -> {reference.shape[-1]} px crop):")
    print(f"{'path':<36}{'seconds':>9}{'images/s':>10}{'speed-up':>10}")
    for label, seconds, n in rows:
        print(f"{label:<36}{seconds:9.2f}{n / seconds:10.0f}{rows[-1][1] / seconds:9.1f}x")
    ok = rows[0][1] < 60
    print(f"\ntarget: well under a minute: {'met' if ok else 'NOT met'} ({rows[0][1]:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
