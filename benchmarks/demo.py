"""The demo build on this machine against its 5-minute target, beside paper 1's encoder input size.

    python -m benchmarks.demo [--baseline-epochs 1] [--threads 2]

- Ours: ``training.demo``'s whole build (simulate 5,000 sources -> BYOL on ``configs/demo.yaml``,
  70 px crops resampled to 32 px -> embed into a bundle), in a fresh directory, each step timed.
- Baseline: the same recipe with paper 1's encoder input (the 70 px crop, not resampled). Its
  training epochs are timed on the same simulated sky (``--baseline-epochs``, 1 by default) and
  scaled to the demo's epoch count; its simulate and embed steps are taken as ours (a lower bound).
- The SimSiam demo (``configs/demo_simsiam.yaml``) on the same sky, its map quality beside BYOL's
  (``--no-simsiam`` skips it), and both beside a random-init ResNet-18 on the same input and the
  preprocessed pixels themselves (:func:`training.quality.baseline_organisation`), scored on the
  same held-out sources.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from training.config import load_config
from explorer.core.config import REPO_ROOT
from training.dataset import open_cutouts
from training.demo import DEMO_CONFIG, build_demo
from training.quality import baseline_organisation
from training.train import LOSS_LOG, train

TARGET_S = 300.0


def epoch_seconds(run_dir: Path) -> list[float]:
    log = pd.read_csv(run_dir / LOSS_LOG)
    return log.loc[log["epoch"] > 0, "seconds"].tolist()  # epoch 0 is the monitor's look at the random init


def row(label: str, ours: str, baseline: str = "") -> None:
    print(f"{label:<46}{ours:>16}{baseline:>26}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-epochs", type=int, default=1, help="70 px epochs to time (0: skip the baseline)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target is for 2 cores)")
    parser.add_argument("--simsiam", action=argparse.BooleanOptionalAction, default=True,
                        help="also build the SimSiam demo and compare its map quality")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(DEMO_CONFIG)
    epochs = config.optim.epochs

    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        result = build_demo(force=True, sky_dir=tmp / "sky", run_dir=tmp / "run", bundle_dir=tmp / "bundle")
        wall = time.perf_counter() - start
        ours = result["seconds"]
        ours_epochs = epoch_seconds(tmp / "run")
        quality = json.loads((result["bundle"] / "manifest.json").read_text()).get("quality", {})

        simsiam = None
        if args.simsiam:
            start = time.perf_counter()
            built = build_demo(force=True, config_path=REPO_ROOT / "configs" / "demo_simsiam.yaml", sky_dir=tmp / "sky",
                               run_dir=tmp / "run-simsiam", bundle_dir=tmp / "bundle-simsiam")
            simsiam = {"wall": time.perf_counter() - start, "seconds": built["seconds"],
                       "quality": json.loads((built["bundle"] / "manifest.json").read_text()).get("quality", {})}

        cutouts = open_cutouts(str(tmp / "sky"), pixels=config.data.pixels,
                               pixel_scale_arcsec=config.data.pixel_scale_arcsec, params=config.preprocessing,
                               progress=False)
        baselines = baseline_organisation(cutouts.images, cutouts.catalog, config.preprocessing,
                                          config.encoder.architecture, config.seed)

        baseline_epochs = []
        if args.baseline_epochs:
            paper_input = dataclasses.replace(
                config, preprocessing=dataclasses.replace(config.preprocessing, input_pixels=config.preprocessing.crop_pixels),
                optim=dataclasses.replace(config.optim, epochs=args.baseline_epochs))
            train(paper_input, str(tmp / "sky"), tmp / "baseline-run")
            baseline_epochs = epoch_seconds(tmp / "baseline-run")

    p = config.preprocessing
    per_epoch = sum(ours_epochs) / len(ours_epochs)
    baseline_epoch = sum(baseline_epochs) / len(baseline_epochs) if baseline_epochs else None
    extra = epochs * (baseline_epoch - per_epoch) if baseline_epoch else None  # the baseline's added training time
    print(f"\nDemo build, {torch.get_num_threads()} torch threads, {epochs} epochs of "
          f"{config.optim.batch_size}-image batches over 5,000 sources")
    row("", f"ours ({p.input_pixels} px)", f"paper-1 input ({p.crop_pixels} px)")
    row("simulate (s)", f"{ours['simulate']:.0f}", "same")
    row("one training epoch (s)", f"{per_epoch:.1f}", f"{baseline_epoch:.1f}" if extra else "skipped")
    row("train, load + all epochs (s)", f"{ours['train']:.0f}", f"~{ours['train'] + extra:.0f} (scaled)" if extra else "")
    row("embed: encode, PCA, UMAP, index (s)", f"{ours['embed']:.0f}", ">= ours")
    row("whole build, wall clock (s)", f"{wall:.0f}", f">= {wall + extra:.0f}" if extra else "")
    row(f"within {TARGET_S:.0f} s target", "yes" if wall <= TARGET_S else "NO",
        ("yes" if wall + extra <= TARGET_S else "no") if extra else "")
    quality = {k: v for k, v in quality.items() if "score" in v}  # map scores; the full-sky baselines come below
    for name, q in quality.items():
        row(f"{name} ({q['column']})", f"{q['score']:.3f}", f"chance {q['chance']:.3f}")
    columns = {"BYOL": quality, **({"SimSiam": simsiam["quality"]} if simsiam else {}), **baselines}
    print(f"\nMap quality on the same sky and held-out sources"
          + (f" (SimSiam built in {simsiam['wall']:.0f} s, train {simsiam['seconds']['train']:.0f} s)" if simsiam else ""))
    print(f"{'':<46}" + "".join(f"{name:>14}" for name in columns) + f"{'chance':>10}")
    for metric, q in quality.items():
        print(f"{metric + ' (' + q['column'] + ')':<46}"
              + "".join(f"{c.get(metric, {}).get('score', float('nan')):>14.3f}" for c in columns.values())
              + f"{q['chance']:>10.3f}")

if __name__ == "__main__":
    main()
