"""Training-platform figures, each beside its baseline in the same run.

    python -m benchmarks.training                 # both parts
    python -m benchmarks.training --part speed    # images/s: the plug-in loop vs the loop before it
    python -m benchmarks.training --part memory   # peak RSS of one epoch over 10^5 cached cutouts vs in RAM

**speed**: ``training.train`` with ``configs/demo.yaml`` on the same simulated sky, here and at the
commit before the platform change (a temporary git worktree), each in a fresh ``EXPLORER_HOME``;
images/s of the second epoch (the first includes one-off costs).

**memory**: 10^5 preprocessed 100 x 100 cutouts (the demo's rotation-safe size) in the on-disk cache;
one epoch of the data path - read each batch, draw both augmented views - in a fresh process, through
the memory-mapped cache and through the in-RAM tensor the loop used before. The model step is left
out: its memory does not grow with N (and it would take ~5 minutes an epoch on a 2-core CPU).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.core.errors import ArgumentParser

REPO = Path(__file__).resolve().parents[1]
BEFORE_PLATFORM = "c0e95fa"   # the last commit before the training platform (issue 9)

EPOCH_DRIVER = """
import json, sys, time
import numpy as np, pandas as pd, torch
from explorer.core.preprocess import Preprocessing
from training.augment import AugmentConfig, augment
from training.dataset import Cutouts
folder, mode, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(2)
images = np.load(folder + "/images.npy", mmap_mode="r")
n = len(images)
if mode == "ram":   # the loop before: every preprocessed cutout in one tensor
    tensor = torch.from_numpy(np.array(images))
    read = lambda rows: tensor[rows]
else:               # this loop: Cutouts.batch over the on-disk cache
    cutouts = Cutouts(images, pd.DataFrame(index=range(n)), ["image"])
    read = lambda rows: cutouts.batch(rows)["images"]
sizes, aug = Preprocessing(crop_pixels=70, input_pixels=32), AugmentConfig()
order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
g = torch.Generator().manual_seed(1)
t0 = time.perf_counter()
for i in range(n // batch_size):
    x = read(order[i * batch_size:(i + 1) * batch_size])
    with torch.no_grad():
        v1, v2 = augment(x, aug, sizes, g), augment(x, aug, sizes, g)
seconds = time.perf_counter() - t0
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "images_per_s": n // batch_size * batch_size / seconds}))
"""


def train_speed(tree: Path, n: int, home: Path) -> dict:
    """images/s of the second demo epoch of ``training.train`` run from ``tree``."""
    run = home / "run"
    env = {**os.environ, "EXPLORER_HOME": str(home), "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-m", "training.train", "--config", "configs/demo.yaml",
                             "--data", f"sim:radio?n={n}&seed=0", "--out", str(run), "--epochs", "2", "--device", "cpu"],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode:
        raise SystemExit(f"training in {tree} failed: {result.stderr.strip().splitlines()[-1]}")
    log = pd.read_csv(run / "loss.csv")
    steps = n // 256
    return {"images_per_s": steps * 256 / log["seconds"].iloc[1], "epoch_s": log["seconds"].iloc[1]}


def speed(n: int, repeats: int) -> None:
    """Alternating runs (before, now, before, now, ...): the best epoch of each, so load on a shared machine
    weighs on both alike."""
    with tempfile.TemporaryDirectory(prefix="bench-training-") as where:
        where = Path(where)
        tree = where / "before"
        made = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), BEFORE_PLATFORM],
                              capture_output=True, text=True)
        runs = {"before": [], "now": []}
        try:
            for i in range(repeats):
                if made.returncode == 0:
                    runs["before"].append(train_speed(tree, n, where / f"home-before-{i}"))
                runs["now"].append(train_speed(REPO, n, where / f"home-now-{i}"))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
    now = max(runs["now"], key=lambda r: r["images_per_s"])
    print(f"\ntraining speed, configs/demo.yaml, {n:,} simulated sources, epoch 2, best of {repeats} (2 CPU threads)")
    print(f"  plug-in loop (this tree):            {now['images_per_s']:7.1f} images/s ({now['epoch_s']:.1f} s); "
          f"all runs {_rates(runs['now'])}")
    if runs["before"]:
        before = max(runs["before"], key=lambda r: r["images_per_s"])
        print(f"  loop before the platform ({BEFORE_PLATFORM}): {before['images_per_s']:7.1f} images/s "
              f"({before['epoch_s']:.1f} s); all runs {_rates(runs['before'])}"
              f"  -> ratio {now['images_per_s'] / before['images_per_s']:.2f}")


def _rates(runs: list[dict]) -> str:
    rates = [r["images_per_s"] for r in runs]
    return f"median {np.median(rates):.0f} (runs {', '.join(f'{v:.0f}' for v in rates)})"


def memory(n: int, batch_size: int = 256) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as folder:
        t0 = time.perf_counter()
        images = np.lib.format.open_memmap(Path(folder) / "images.npy", mode="w+", dtype=np.float32,
                                           shape=(n, 1, 100, 100))
        rng = np.random.default_rng(0)
        for start in range(0, n, 5000):  # sparse, radio-like cutouts in [0, 1]
            images[start:start + 5000] = rng.random((min(5000, n - start), 1, 100, 100), dtype=np.float32) ** 8
        images.flush()
        del images
        made = time.perf_counter() - t0
        results = {}
        for mode in ("mmap", "ram"):
            out = subprocess.run([sys.executable, "-c", EPOCH_DRIVER, folder, mode, str(batch_size)], cwd=REPO,
                                 capture_output=True, text=True, timeout=3600)
            if out.returncode:
                raise SystemExit(out.stderr.strip().splitlines()[-1])
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    size_gb = n * 100 * 100 * 4 / 1e9
    print(f"\none epoch of the data path over {n:,} cached 100x100 cutouts ({size_gb:.1f} GB; cache written in {made:.0f} s)")
    for mode, label in (("mmap", "memory-mapped cache (this tree)"), ("ram", "in-RAM tensor (the loop before)")):
        r = results[mode]
        print(f"  {label:34s} peak RSS {r['peak_mb']:7.0f} MB, {r['images_per_s']:6.0f} images/s")


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("speed", "memory", "both"), default="both")
    parser.add_argument("--n", type=int, default=2048, help="sources for the speed part (default 2048)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each loop (default 3)")
    parser.add_argument("--cached", type=int, default=100_000, help="cutouts for the memory part (default 10^5)")
    args = parser.parse_args(argv)
    if args.part in ("speed", "both"):
        speed(args.n, args.repeats)
    if args.part in ("memory", "both"):
        memory(args.cached)
    return 0


if __name__ == "__main__":
    sys.exit(main())
