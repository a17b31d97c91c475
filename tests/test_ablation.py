"""Ablation grids: variants merged into the base recipe, run as ordinary resumable training runs, summarised."""
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from explorer.core.config import REPO_ROOT
from explorer.core.errors import InputError
from training.ablation import merged, read_grid


def test_overrides_merge_nested_keys_and_replace_the_rest():
    base = {"optim": {"epochs": 60, "batch_size": 128}, "byol": {"projection_dim": 256}, "seed": 0}
    out = merged(base, {"optim": {"batch_size": 32}, "seed": 3})
    assert out == {"optim": {"epochs": 60, "batch_size": 32}, "byol": {"projection_dim": 256}, "seed": 3}
    assert base["optim"]["batch_size"] == 128


def test_the_committed_grid_reads_and_every_variant_differs_from_the_base():
    variants = read_grid(REPO_ROOT / "configs" / "ablations" / "mirabest_byol.yaml")
    assert len({yaml.safe_dump(c.to_dict()) + d for c, d in variants.values()}) == len(variants)
    config, data = variants["mix-sim10k"]
    assert " + sim:radio" in data and config.monitor.label_column == "fr_class" and config.monitor.test_fraction > 0
    assert variants["sim10k"][0].monitor.data.endswith("mirabest")


def test_a_tiny_grid_runs_resumes_and_summarises(tmp_path):
    recipe = {"name": "tiny", "method": "byol", "preprocessing": {"input_pixels": 16},
              "byol": {"projection_hidden": 32, "projection_dim": 16, "prediction_hidden": 32},
              "optim": {"epochs": 1, "batch_size": 16, "warmup_epochs": 0},
              "monitor": {"label_column": "morphology", "every": 1, "folds": 2, "max_images": 40}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({
        "base": str(tmp_path / "base.yaml"), "data": "sim:radio?n=48&seed=1",
        "variants": {"plain": {}, "wide-crop": {"augmentation": {"crop_scale": [0.9, 1.0]}}}}))
    command = [sys.executable, "-m", "training.ablation", "--grid", str(tmp_path / "grid.yaml"),
               "--out", str(tmp_path / "runs")]
    first = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    summary = pd.read_csv(tmp_path / "runs" / "summary.csv")
    assert list(summary["variant"]) == ["plain", "wide-crop"] and (summary["steps"] == 3).all()
    assert summary[["linear_final", "knn_random_init", "linear_pixels"]].notna().all().all()
    assert (tmp_path / "runs" / "monitor.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "runs" / "summary.md").read_text()
    assert "| plain | 3 |" in table and "| wide-crop | 3 |" in table and table.count("\n") == 4
    again = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert again.stdout.count("already trained for 1 epochs") == 2


@pytest.mark.parametrize("grid, message", [
    ({"base": "configs/mirabest_byol.yaml"}, "a grid needs base"),
    ({"base": "configs/nope.yaml", "data": "x", "variants": {"a": {}}}, "base recipe not found"),
    ({"base": "configs/mirabest_byol.yaml", "data": "x", "variants": {"a": {"optim": {"epochs": "many"}}}},
     "optim.epochs must be a whole number"),
])
def test_a_bad_grid_is_one_clear_message(tmp_path, grid, message):
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    with pytest.raises(InputError, match=message):
        read_grid(tmp_path / "grid.yaml")
