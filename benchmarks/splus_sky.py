"""The 12-band S-PLUS-like sky: rendering on one process against one per core, reading it back from the cache,
and making each of paper 2's inputs (12 bands, 5 bands, the RGB composite; with the 3 x FWHM crop).

    python -m benchmarks.splus_sky [--n 1000]        # about a minute at the default

The serial render is the baseline; the parallel one gives the same bytes (tests/test_splus.py).
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time

from training import splus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    n = args.n
    timings = {}
    for label, minimum in (("serial (baseline)", 10 ** 9), ("one process per core", 1)):
        splus.PARALLEL_MIN_SOURCES = minimum
        start = time.perf_counter()
        splus.simulate_sky(n, seed=0, progress=False)
        timings[label] = time.perf_counter() - start
        print(f"render {n} sources, {label:22s} {timings[label]:6.1f} s  ({n / timings[label]:5.1f} sources/s)")
    with tempfile.TemporaryDirectory() as tmp:
        splus.cached_sky(n, seed=0, progress=False, root=tmp)
        start = time.perf_counter()
        sky = splus.cached_sky(n, seed=0, progress=False, root=tmp)
        print(f"read the cached sky back               {time.perf_counter() - start:6.2f} s")
        for inputs in splus.INPUTS:
            start = time.perf_counter()
            images, _ = splus.observe(sky, inputs)
            print(f"input {inputs:6s} {tuple(images.shape)!s:22s}      {time.perf_counter() - start:6.2f} s")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
