"""Embedding at survey scale: shards of a real FITS catalogue, merged, equal one single run."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.core.bundle import load_bundle
from explorer.core.config import REPO_ROOT
from explorer.core.errors import InputError
from training.config import config_from_dict
from training.embed import embed_shard, embed_to_bundle, merge_shards, parse_shard, shard_rows
from training.train import train

MIRABEST = REPO_ROOT.parent / "shared" / "data" / "mirabest"
N = 60
BATCH = 20  # divides every shard, so each image is encoded in a batch of the same make-up as in the single run
TINY = {"name": "shard-test", "seed": 1, "preprocessing": {"crop_pixels": 70, "input_pixels": 16},
        "byol": {"projection_hidden": 64, "projection_dim": 32, "prediction_hidden": 64},
        "optim": {"epochs": 1, "batch_size": 16, "warmup_epochs": 1}}

pytestmark = pytest.mark.skipif(not (MIRABEST / "catalog.csv").is_file(),
                                reason=f"the real MiraBest FITS files are not at {MIRABEST}")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A 60-source FITS catalogue directory of real MiraBest files, and a tiny trained encoder."""
    root = tmp_path_factory.mktemp("shards")
    sky = root / "sky"
    sky.mkdir()
    table = pd.read_csv(MIRABEST / "catalog.csv").iloc[::18].head(N)
    table["file"] = [str(MIRABEST / f) for f in table["file"]]
    table.to_csv(sky / "catalog.csv", index=False)
    run = root / "run"
    train(config_from_dict(TINY), str(sky), run, device="cpu", progress=False)
    return root, sky, run


@pytest.fixture(scope="module")
def single_and_merged(work):
    root, sky, run = work
    single = embed_to_bundle(run, str(sky), root / "bundles" / "single", device="cpu", batch_size=BATCH,
                             progress=False)
    shards = [embed_shard(run, str(sky), root / "shards" / str(i), shard=(i, 3), device="cpu", batch_size=BATCH,
                          progress=False) for i in (2, 0, 1)]  # any order: a job array finishes as it likes
    merged = merge_shards(shards, root / "bundles" / "merged", progress=False)
    return load_bundle(single), load_bundle(merged), shards


def test_shards_split_the_rows_into_contiguous_blocks():
    blocks = [shard_rows(10, i, 3) for i in range(3)]
    assert [(b.start, b.stop) for b in blocks] == [(0, 3), (3, 6), (6, 10)]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(InputError, match="--shard"):
            parse_shard(bad)


def test_shards_merged_equal_a_single_run(single_and_merged):
    single, merged, shards = single_and_merged
    assert [len(pd.read_parquet(s / "catalog.parquet")) for s in sorted(shards)] == [20, 20, 20]
    pd.testing.assert_frame_equal(merged.catalog, single.catalog)
    np.testing.assert_array_equal(merged.embeddings, single.embeddings)
    np.testing.assert_array_equal(merged.thumbnails, single.thumbnails)
    np.testing.assert_allclose(merged.map_xy, single.map_xy, atol=1e-5)
    np.testing.assert_allclose(merged.pca()[1], single.pca()[1], atol=1e-6)
    assert merged.index.ntotal == single.index.ntotal == N
    for key in ("encoder", "pca", "umap", "index", "columns"):
        assert getattr(merged.manifest, key) == getattr(single.manifest, key), key
    assert merged.manifest.data.shards == 3 and single.manifest.data.shards == 1


def test_a_finished_shard_is_kept_when_its_job_is_rerun(work, single_and_merged, capsys):
    root, sky, run = work
    _, _, shards = single_and_merged
    before = (shards[0] / "embeddings.npy").stat().st_mtime_ns
    embed_shard(run, str(sky), shards[0], shard=(2, 3), device="cpu", progress=False)
    assert "already embedded" in capsys.readouterr().out
    assert (shards[0] / "embeddings.npy").stat().st_mtime_ns == before


def test_merging_refuses_an_incomplete_or_mixed_set(work, single_and_merged, tmp_path):
    root, sky, run = work
    _, _, shards = single_and_merged
    with pytest.raises(InputError, match="missing 1/3"):
        merge_shards([shards[0], shards[1]], tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="given twice"):
        merge_shards([shards[0], shards[0], shards[1], shards[2]], tmp_path / "x", progress=False)
    with pytest.raises(InputError, match="not a finished shard folder"):
        merge_shards([shards[1], shards[2], tmp_path], tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_the_cli_shards_and_merges_and_explains_bad_input(work, tmp_path):
    root, sky, run = work

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "training.embed", *map(str, args)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300)

    bad = cli("--checkpoint", run, "--data", sky, "--out", tmp_path / "s", "--shard", "3/3")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--shard 3/3" in bad.stderr
    mixed = cli("--merge", tmp_path, "--data", sky, "--out", tmp_path / "b")
    assert mixed.returncode == 2 and "--merge takes only shard folders" in mixed.stderr
    done = cli("--merge", *(root / "shards" / str(i) for i in range(3)), "--out", tmp_path / "b")
    assert done.returncode == 0, done.stderr
    assert load_bundle(Path(tmp_path / "b")).n == N
