"""Detection speed on a 2-core CPU: paper 3's detector per field, beside the classical island finder.

    python -m benchmarks.detect            # about a minute

On the same 40 simulated fields (132 px, 1.375″/px):
1. the baseline: ``explorer.core.islands.find_islands`` (4σ flood, 5σ seed, prominent peaks), per field;
2. the Faster R-CNN of ``explorer.core.detector`` (ResNet-18 + FPN; speed does not depend on training),
   per field, one field at a time and in batches of 8, at input sizes 132, 264 (the CPU recipe) and 600
   (the paper's); paper 3: 220 ms per image on a Tesla K40c, 45 ms on a P100 (VGG-16, 600 px);
3. the inputs alone: D1 (log min-max) against D3 (W1 + radio contours) and D4 (D3 + convex hull), per field,
   and the detector at 264 px reading D3 (two channels);
4. peak resident memory of the process.

Figures depend on what else runs on the machine: the load average is printed with them.
"""
from __future__ import annotations

import os
import resource
import time

import torch

from explorer.core.detector import DetectorConfig, build_detector, detect, render_input
from explorer.core.islands import find_islands
from training.radio_fields import simulate_fields


def per_field(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    simulated = simulate_fields(40, seed=5, progress=False)
    fields, infrared = list(simulated.images), list(simulated.infrared)
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
    fill = [0.3, 0.01]
    for kind in ("D1", "D3", "D4"):
        ms = per_field(lambda: [render_input(f, kind, infrared=w, outside_fill=fill) for f, w in zip(fields, infrared)],
                       len(fields))
        print(f"  {f'input {kind} alone':<44s} {ms:7.1f} ms/field")
    config = DetectorConfig(input="D3", channel_mean=[0.0, 0.0])
    model = build_detector(config)
    detect(model, config, fields[:2], infrared=infrared[:2])
    ms = per_field(lambda: detect(model, config, fields, infrared=infrared, batch_size=1), len(fields))
    print(f"  {'Faster R-CNN reading D3, 264 px, batch 1':<44s} {ms:7.1f} ms/field")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
