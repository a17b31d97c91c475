"""Build the built-in demo: simulate a FIRST-like radio sky -> train BYOL -> embed into a bundle.

    python -m training.demo            # skips every step that is already done
    python -m training.demo --force    # rebuild the bundle (the simulation and run are reused)
    python -m training.demo --config configs/demo_simsiam.yaml   # the SimSiam demo on the same sky

Everything lives under ``EXPLORER_HOME`` (default ``.cache/`` in the repository):
``demo/sky`` (FITS catalogue directory), ``demo/run`` (checkpoints, loss log) and
``bundles/demo-radio`` (the bundle the app opens first). Another recipe (``--config``) trains on the
same sky into ``demo/run-<recipe name>`` and writes ``bundles/<recipe name>``.
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("demo")

import dataclasses
import json
import time
from pathlib import Path

from explorer.core.bundle import REQUIRED_FILES
from explorer.core.config import DEMO_BUNDLE_NAME, bundles_dir, demo_dir
from explorer.core.errors import cli_entry
from training import cli
from training.config import load_config
from training.embed import embed_to_bundle
from training.quality import baseline_report
from training.simulate import simulate_to_directory
from training.train import train

DEMO_CONFIG = cli.DEMO_CONFIG


def build_demo(*, n: int = 5000, seed: int = 0, epochs: int | None = None, force: bool = False,
               config_path: Path = DEMO_CONFIG, sky_dir: Path | None = None, run_dir: Path | None = None,
               bundle_dir: Path | None = None, progress: bool = True) -> dict:
    """Run the missing steps of the demo build; returns the bundle path and the time of each step."""
    config = load_config(config_path)
    suffix = "" if (n, seed, epochs) == (5000, 0, None) else f"-n{n}-s{seed}" + (f"-e{epochs}" if epochs else "")
    recipe = "" if config.name == DEMO_BUNDLE_NAME else f"-{config.name}"
    sky_dir = sky_dir or demo_dir() / f"sky{suffix}"
    run_dir = run_dir or demo_dir() / f"run{recipe}{suffix}"
    bundle_dir = bundle_dir or bundles_dir() / f"{config.name}{suffix}"
    if not force and all((bundle_dir / f).is_file() for f in REQUIRED_FILES):
        return {"bundle": bundle_dir, "seconds": {}}

    config = dataclasses.replace(config, seed=seed)
    if epochs is not None:
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, epochs=epochs))
    seconds = {}
    t = time.perf_counter()
    simulate_to_directory(sky_dir, n=n, seed=seed)
    seconds["simulate"] = time.perf_counter() - t
    t = time.perf_counter()
    train(config, str(sky_dir), run_dir, progress=progress)
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    embed_to_bundle(run_dir, str(sky_dir), bundle_dir, overwrite=True, progress=progress)  # the demo owns its bundle
    seconds["embed"] = time.perf_counter() - t
    seconds["total"] = sum(seconds.values())
    return {"bundle": bundle_dir, "seconds": seconds}


@cli_entry
def main(argv=None):
    parser = cli.parser("demo")
    args = parser.parse_args(argv)
    result = build_demo(n=args.n, seed=args.seed, epochs=args.epochs, force=args.force, config_path=args.config)
    bundle = result["bundle"]
    if not result["seconds"]:
        print(f"demo bundle ready: {bundle}")
        return
    timing = ", ".join(f"{k} {v:.0f}s" for k, v in result["seconds"].items())
    print(f"demo bundle built: {bundle} ({timing})")
    for line in quality_lines(bundle):
        print(f"  {line}")


def quality_lines(bundle: Path) -> list[str]:
    """What a freshly built bundle's manifest says about its map, and the learned encoder beside the baselines."""
    quality = json.loads((Path(bundle) / "manifest.json").read_text()).get("quality", {})
    lines = [f"{name} ({q['column']}): {q['score']:.3f} vs chance {q['chance']:.3f} on {q['held_out']} held-out sources"
             for name, q in quality.items() if "score" in q]  # the map scores (baselines, neighbourhood: below / none)
    return lines + baseline_report(quality.get("baselines", {}))

if __name__ == "__main__":
    main()
