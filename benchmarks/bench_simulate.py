"""Simulated radio sky: time to simulate N sources and to write them as a FITS catalogue directory.

Prints the figures side by side: uncompressed FITS (what the demo writes) against gzip level-1
FITS, with the folder sizes (noisy float32 pixels barely compress, so gzip is not worth its time).
Target: simulating 5,000 sources <= 15 s wall on 2 cores.

    python -m benchmarks.bench_simulate [--n 5000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from training.simulate import simulate_sources, write_fits_catalogue


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()

    start, cpu = time.perf_counter(), time.process_time()
    images, catalogue = simulate_sources(args.n, seed=0, progress=False)
    print(f"simulate {args.n} sources: {time.perf_counter() - start:6.1f} s wall, "
          f"{time.process_time() - cpu:6.1f} s CPU (target <= 15 s wall on 2 cores)")

    with tempfile.TemporaryDirectory() as tmp:
        for label, compress in (("FITS (default)", False), ("FITS gzip -1", True)):
            out = Path(tmp) / ("gz" if compress else "plain")
            start = time.perf_counter()
            write_fits_catalogue(out, images, catalogue, compress=compress, progress=False)
            print(f"write {args.n} x {label:16s}: {time.perf_counter() - start:6.1f} s, {_folder_mb(out):7.1f} MB")


if __name__ == "__main__":
    main()
