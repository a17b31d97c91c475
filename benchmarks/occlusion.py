"""One source's occlusion map (issue 14) at the default patch and stride, on the CPU.

    python -m benchmarks.occlusion                  # builds a tiny 5-band band_prediction bundle (~30 s), 32 px
    python -m benchmarks.occlusion --pixels 64      # the same at 64 px
    python -m benchmarks.occlusion --bundle PATH    # an existing bundle (its band classifier and saved heads)

For the band classifier (one band on its own) and frozen heads (every band masked at once) it prints the
batched map's time (median of --repeats, after a warm-up), beside two baselines measured in the same run:
one plain forward pass of the unoccluded source, and the same occluded images scored one forward pass each
(unbatched). Target: <= 2 s per map. Figures depend on what else runs on the machine: the load average is
printed with them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from explorer.core import occlusion


def timed(fn, repeats: int = 1) -> tuple[object, float]:
    """fn's result and its median time over ``repeats`` runs."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def row(name: str, seconds: float, target: str = "") -> None:
    print(f"  {name:<64s} {seconds:8.3f} s  {target}")


def build_bundle(folder: Path, pixels: int):
    """Paper 4's recipe for one epoch on 16 five-band sources, embedded, with a regression and a class head."""
    from explorer.core.bundle import load_bundle
    from explorer.core.heads import HeadSpec, train_frozen_head
    from training.config import config_from_dict
    from training.embed import embed_to_bundle
    from training.train import train

    cfg = config_from_dict({
        "name": "bp", "method": "band_prediction", "encoder": {"architecture": "resnet18-bandwise", "in_channels": 5},
        "data": {"pixels": pixels, "pixel_scale_arcsec": 0.55},
        "preprocessing": {"scaling": "max", "crop_pixels": pixels, "input_pixels": pixels},
        "optim": {"epochs": 1, "batch_size": 8, "base_lr": 0.1, "warmup_epochs": 0}})
    spec = "sim:splus?n=16&seed=9&input=5band"      # rendered at data.pixels
    run = train(cfg, spec, folder / "run", progress=False)
    bundle = load_bundle(embed_to_bundle(run, spec, folder / "bundles" / "bp", progress=False))
    train_frozen_head(bundle, HeadSpec("r_true", "r_true_linear", curve_points=0, device="cpu"))
    train_frozen_head(bundle, HeadSpec("class", "class_mlp", head="mlp", curve_points=0, device="cpu"))
    return bundle


def one_model(bundle, row_index: int, model: str, band: int | None, repeats: int, threads: int) -> float:
    image = occlusion.source_image(bundle, row_index)
    if model == occlusion.BAND_CLASSIFIER:
        scorer, image = occlusion.band_classifier_score(bundle, band), image[band:band + 1]
        name = f"band classifier, band {occlusion.band_names(bundle)[band]} alone"
    else:
        scorer, name = occlusion.head_score(bundle, model), f"head {model!r}, all {len(image)} bands masked"
    side = image.shape[-1]
    patch, stride = occlusion.default_settings(side, input_pixels=bundle.preprocessing().input_pixels,
                                               trunk_passes=occlusion.trunk_passes(bundle, model))
    count = occlusion.occluded_count(image.shape[1:], patch, stride)
    print(f"\n{name}: {side} px image, patch {patch}, stride {stride} -> {count} occluded images")
    with occlusion.cpu_threads(threads) as used:
        occlusion.source_occlusion(bundle, row_index, model, band=band)                   # warm-up
        result, batched = timed(lambda: occlusion.source_occlusion(bundle, row_index, model, band=band), repeats)
        _, plain = timed(lambda: scorer(image[None]), max(repeats, 5))
        corners = [(t, l) for t in occlusion.patch_starts(side, patch, stride)
                   for l in occlusion.patch_starts(side, patch, stride)]

        def unbatched():
            for top, left in corners:
                one = image[None].copy()
                one[:, :, top:top + patch, left:left + patch] = 0
                scorer(one)

        _, single = timed(unbatched)
    row(f"occlusion map, batched ({occlusion.DEFAULT_BATCH} per forward), {used} CPU thread(s)", batched,
        "target <= 2 s")
    row("baseline: one forward pass of the unoccluded source", plain)
    row(f"baseline: the {count} occluded images one forward pass each", single,
        f"(batched is {single / batched:.1f}x faster)")
    print(f"  map range {result.map.min():.3g} .. {result.map.max():.3g}; unoccluded score {result.baseline:.4g}")
    return batched


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.occlusion", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", help="an existing bundle (default: build a tiny band_prediction bundle)")
    parser.add_argument("--pixels", type=int, default=32, help="image size of the bundle built (default 32)")
    parser.add_argument("--row", type=int, default=3, help="the source")
    parser.add_argument("--band", type=int, default=2, help="band index for the band classifier (default 2: r)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=occlusion.THREADS, help="torch CPU threads for the maps")
    args = parser.parse_args(argv)
    print(f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads by default")
    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle:
            from explorer.core.bundle import load_bundle

            bundle = load_bundle(args.bundle)
        else:
            start = time.perf_counter()
            bundle = build_bundle(Path(tmp), args.pixels)
            print(f"built {bundle.name}: {bundle.n} sources, encoder inputs {bundle.encoder_inputs.shape} "
                  f"({time.perf_counter() - start:.0f} s)")
        why = occlusion.unavailable(bundle)
        if why:
            raise SystemExit(why)
        worst = 0.0
        for model in occlusion.occlusion_models(bundle):
            band = args.band if model == occlusion.BAND_CLASSIFIER else None
            worst = max(worst, one_model(bundle, args.row, model, band, args.repeats, args.threads))
    print(f"\nslowest map: {worst:.2f} s ({'within' if worst <= 2 else 'OVER'} the 2 s target)")
    print(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
