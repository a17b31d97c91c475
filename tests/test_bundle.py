"""Bundle I/O: the contract between training and the explorer."""
import json
import shutil

import faiss
import numpy as np
import pandas as pd
import pytest

from explorer.core.bundle import Manifest
from explorer.core.bundle import REQUIRED_FILES, list_bundles, load_bundle, write_bundle
from explorer.core.errors import InputError
from explorer.core.search import build_index


def make_arrays(n=50, d=16, seed=0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    catalog = pd.DataFrame({"id": [f"src{i}" for i in range(n)], "ra": rng.uniform(0, 360, n),
                            "dec": rng.uniform(-30, 60, n), "las_arcsec": rng.uniform(5, 200, n),
                            "morphology": rng.choice(["FRI", "FRII"], n)})
    return dict(manifest=Manifest(description="test", columns={"las_arcsec": {"unit": "arcsec", "description": "size"}}),
                catalog=catalog, embeddings=emb, map_xy=rng.normal(size=(n, 2)),
                thumbnails=rng.integers(0, 255, (n, 8, 8), dtype=np.uint8), index=build_index(emb)[0],
                pca_mean=emb.mean(0), pca_components=np.eye(d, dtype=np.float32)[:4])


def test_round_trip_keeps_every_array_and_column(tmp_path):
    arrays = make_arrays()
    write_bundle(tmp_path / "b", **arrays)
    b = load_bundle(tmp_path / "b")
    assert b.n == 50 and b.dim == 16 and b.name == "b"
    np.testing.assert_array_equal(b.embeddings, arrays["embeddings"])
    np.testing.assert_allclose(b.map_xy, arrays["map_xy"].astype(np.float32))
    np.testing.assert_array_equal(b.thumbnails, arrays["thumbnails"])
    pd.testing.assert_frame_equal(b.catalog, arrays["catalog"])
    assert isinstance(b.embeddings, np.memmap) and isinstance(b.thumbnails, np.memmap)
    assert b.index.ntotal == 50
    assert b.column_unit("las_arcsec") == "arcsec" and b.property_columns == ["las_arcsec", "morphology"]
    mean, comps = b.pca()
    assert comps.shape == (4, 16)
    assert b.manifest.n == 50 and b.manifest.dim == 16 and b.manifest.created


def test_bundle_holds_no_pickles(tmp_path):
    write_bundle(tmp_path / "b", **make_arrays())
    for f in (tmp_path / "b").glob("*.np[yz]"):
        if f.suffix == ".npy":
            np.load(f, allow_pickle=False)
        else:
            np.load(f, allow_pickle=False).close()


def test_rewrite_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    write_bundle(tmp_path / "b", **make_arrays(n=50))
    write_bundle(tmp_path / "b", **make_arrays(n=30, seed=1))
    assert load_bundle(tmp_path / "b").n == 30
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_a_failed_write_keeps_the_previous_bundle(tmp_path):
    write_bundle(tmp_path / "b", **make_arrays(n=50))
    bad = make_arrays(n=30)
    bad["map_xy"] = bad["map_xy"][:10]  # mismatched: the writer's own check refuses it
    with pytest.raises(InputError):
        write_bundle(tmp_path / "b", **bad)
    assert load_bundle(tmp_path / "b").n == 50
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


@pytest.mark.parametrize("broken, message", [
    ("missing", "missing embeddings.npy"),
    ("rows", "map.npy: 208 bytes where the manifest says"),
    ("rows-unsummed", "mismatched bundle"),
    ("manifest", "manifest.json: unreadable JSON"),
    ("index", "index.faiss: .* bytes where the manifest says"),
    ("index-unsummed", "index.faiss: unreadable FAISS index"),
])
def test_broken_bundles_get_a_specific_message(tmp_path, broken, message):
    write_bundle(tmp_path / "b", **make_arrays())
    b = tmp_path / "b"
    if broken == "missing":
        (b / "embeddings.npy").unlink()
    if broken.endswith("-unsummed"):  # a bundle written before checksums: the contents are checked instead
        manifest = json.loads((b / "manifest.json").read_text())
        del manifest["files"]
        (b / "manifest.json").write_text(json.dumps(manifest))
        broken = broken.removesuffix("-unsummed")
    if broken == "rows":
        np.save(b / "map.npy", np.zeros((10, 2), np.float32))
    elif broken == "manifest":
        (b / "manifest.json").write_text("{not json")
    elif broken == "index":
        (b / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(InputError, match=message):
        load_bundle(b)


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_bundle(tmp_path / "nope")


def test_list_bundles_finds_only_complete_ones(tmp_path):
    write_bundle(tmp_path / "a", **make_arrays())
    write_bundle(tmp_path / "b", **make_arrays())
    (tmp_path / "b" / "index.faiss").unlink()
    (tmp_path / "notes").mkdir()
    assert [p.name for p in list_bundles(tmp_path)] == ["a"]


def test_prediction_sidecars_become_catalogue_columns(tmp_path):
    from explorer.core.atomic import write_json
    from explorer.core.bundle import bundle_version

    write_bundle(tmp_path / "b", **make_arrays())
    before = bundle_version(tmp_path / "b")
    (tmp_path / "b" / "predictions").mkdir()
    pd.DataFrame({"fr_head_class": ["FRI"] * 50, "fr_head_p": np.linspace(0, 1, 50)}).to_parquet(
        tmp_path / "b" / "predictions" / "fr_head.parquet")
    write_json(tmp_path / "b" / "predictions" / "fr_head.json",
               {"columns": {"fr_head_p": {"unit": "", "description": "P(predicted class)"}}})
    b = load_bundle(tmp_path / "b")
    assert b.property_columns[-2:] == ["fr_head_class", "fr_head_p"]
    assert b.column_description("fr_head_p") == "P(predicted class)"
    assert bundle_version(tmp_path / "b") >= before
    pd.DataFrame({"x": [1, 2]}).to_parquet(tmp_path / "b" / "predictions" / "short.parquet")
    with pytest.raises(InputError, match="2 rows"):
        load_bundle(tmp_path / "b")
