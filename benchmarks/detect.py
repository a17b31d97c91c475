"""Detection speed on a 2-core CPU: paper 3's detector per field, beside the classical island finder.

    python -m benchmarks.detect            # about a minute

On the same 40 simulated fields (132 px, 1.375″/px):
1. the baseline: ``explorer.core.islands.find_islands`` (4σ flood, 5σ seed, prominent peaks), per field;
2. the Faster R-CNN of ``explorer.core.detector`` (ResNet-18 + FPN; speed does not depend on training),
   per field, one field at a time and in batches of 8, at input sizes 132, 264 (the CPU recipe) and 600
   (the paper's); paper 3: 220 ms per image on a Tesla K40c, 45 ms on a P100 (VGG-16, 600 px);
3. peak resident memory of the process.

Figures depend on what else runs on the machine: the load average is printed with them.
"""
from __future__ import annotations

import os
import resource
import time

import torch

from explorer.core.detector import DetectorConfig, build_detector, detect
from explorer.core.islands import find_islands
from training.radio_fields import simulate_fields


def per_field(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    fields = list(simulate_fields(40, seed=5, progress=False).images)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, {len(fields)} fields of 132 px")
    print(f"  {'island finder (baseline)':<44s} {per_field(lambda: [find_islands(f) for f in fields], len(fields)):7.1f} ms/field")
    for size in (132, 264, 600):
        config = DetectorConfig(input_size=size)
        model = build_detector(config)
        detect(model, config, fields[:2])                                  # warm-up
        for batch in (1, 8):
            ms = per_field(lambda: detect(model, config, fields, batch_size=batch), len(fields))
            print(f"  {f'Faster R-CNN, input {size} px, batch {batch}':<44s} {ms:7.1f} ms/field")
    print("  paper 3 (VGG-16, 600 px): 220 ms/field on a Tesla K40c, 45 ms on a P100")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
