"""The labels sidecar: round trip, undo, the user_label column, crash safety, suggestions."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.core.bundle import Manifest
from explorer.core import heads, labels
from explorer.core.atomic import atomic_path
from explorer.core.bundle import load_bundle, write_bundle
from explorer.core.errors import InputError
from explorer.core.search import build_index
from tests.test_bundle import make_arrays

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bundle(tmp_path):
    write_bundle(tmp_path / "b", **make_arrays(n=40, d=8))
    return load_bundle(tmp_path / "b")


def ids(bundle, rows):
    return bundle.catalog["id"].iloc[list(rows)].tolist()


def test_labels_round_trip_and_become_a_catalogue_column(bundle):
    assert labels.assign(bundle, [3, 1, 2], "bent") == 3
    assert labels.assign(bundle, [5], " hybrid ") == 1
    stored = labels.read_labels(bundle.path)
    assert sorted(stored["id"]) == sorted(ids(bundle, [1, 2, 3, 5]))
    assert dict(zip(stored["id"], stored["label"]))[ids(bundle, [5])[0]] == "hybrid"
    assert stored["time"].str.endswith("+00:00").all()
    column = load_bundle(bundle.path).catalog[labels.USER_LABEL_COLUMN]
    assert column.iloc[[1, 2, 3]].tolist() == ["bent"] * 3 and column.iloc[5] == "hybrid"
    assert column.isna().sum() == bundle.n - 4
    assert labels.classes(bundle) == ["bent", "hybrid"]
    assert labels.assign(bundle, [1, 2], "bent") == 0          # nothing changes: no history entry
    assert len(labels.read_history(bundle.path)) == 2


def test_undo_restores_the_previous_labels_one_action_at_a_time(bundle):
    labels.assign(bundle, [1, 2], "FRI")
    labels.assign(bundle, [2, 3], "FRII")                      # relabels 2, adds 3
    labels.assign(bundle, [1], None)                           # clears 1
    assert labels.undo(bundle) == "undid: cleared 1 label(s)"
    assert labels.labels_by_row(bundle).iloc[[1, 2, 3]].tolist() == ["FRI", "FRII", "FRII"]
    assert labels.undo(bundle) == "undid: labelled 2 source(s) as 'FRII'"
    current = labels.labels_by_row(bundle)
    assert current.iloc[[1, 2]].tolist() == ["FRI", "FRI"] and pd.isna(current.iloc[3])
    assert labels.undo(bundle) is not None and labels.read_labels(bundle.path).empty
    assert labels.undo(bundle) is None


def test_history_keeps_only_the_last_actions(bundle):
    for i in range(labels.HISTORY_DEPTH + 5):
        labels.assign(bundle, [i % bundle.n], f"c{i}")
    assert len(labels.read_history(bundle.path)) == labels.HISTORY_DEPTH


@pytest.mark.parametrize("rows, label, message", [
    ([], "x", "no sources selected"),
    ([1], "   ", "a label needs a name"),
    ([1], "x" * 65, "longer than 64 characters"),
    ([400], "x", "outside this bundle"),
])
def test_bad_labelling_actions_are_refused(bundle, rows, label, message):
    with pytest.raises(InputError, match=message):
        labels.assign(bundle, rows, label)
    assert not (bundle.path / labels.LABELS_FILE).exists()


def test_a_failure_inside_the_write_keeps_the_previous_labels(bundle):
    labels.assign(bundle, [1, 2], "FRI")
    before = (bundle.path / labels.LABELS_FILE).read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(bundle.path / labels.LABELS_FILE) as tmp:
            tmp.write_bytes(before[: len(before) // 2])        # half a parquet file, then the crash
            raise RuntimeError("crash mid-write")
    assert (bundle.path / labels.LABELS_FILE).read_bytes() == before
    assert not list(bundle.path.glob(".labels.parquet.*.tmp"))


def test_killing_a_labelling_process_mid_write_never_leaves_a_broken_file(bundle):
    """A real crash: SIGKILL a process that relabels in a loop, at several moments; the file stays readable."""
    script = textwrap.dedent(f"""
        import itertools, sys
        from explorer.core import labels
        from explorer.core.bundle import load_bundle
        bundle = load_bundle({str(bundle.path)!r})
        print("ready", flush=True)
        for i in itertools.count():
            labels.assign(bundle, range(bundle.n), f"class{{i % 2}}")
    """)
    labels.assign(bundle, range(bundle.n), "start")
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.05, 0.6, 3):
        process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stored = labels.read_labels(bundle.path)                # a torn file would not parse
        assert len(stored) == bundle.n and stored["label"].nunique() == 1
        assert load_bundle(bundle.path).catalog[labels.USER_LABEL_COLUMN].notna().all()


def test_suggestions_are_the_least_certain_unlabelled_sources():
    catalog = pd.DataFrame({"kind": ["a", None, None, "b", None, None],
                            "h_prob": [0.2, 0.9, 0.51, 0.6, 0.4, 0.7],
                            labels.USER_LABEL_COLUMN: [None, None, None, None, "a", None]})
    meta = {"name": "h", "task": {"column": "kind", "kind": "classification"}}
    assert labels.suggest_next(catalog, meta, n=2).tolist() == [2, 5]
    catalog["r_uncertainty"] = [5.0, 0.1, 0.3, 9.0, 7.0, 0.2]
    meta = {"name": "r", "task": {"column": "kind", "kind": "regression"}}
    assert labels.suggest_next(catalog, meta, n=3).tolist() == [2, 5, 1]
    with pytest.raises(InputError, match="no 'x_prob' column"):
        labels.suggest_next(catalog, {"name": "x", "task": {"column": "kind", "kind": "classification"}})


def test_user_labels_train_a_head_and_drive_suggestions(tmp_path):
    from tests.test_heads import clustered

    catalog, x = clustered(n=200, classes=2, seed=2)
    write_bundle(tmp_path / "b", manifest=Manifest(), catalog=catalog, embeddings=x, map_xy=x[:, :2],
                 thumbnails=np.zeros((200, 4, 4), np.uint8), index=build_index(x)[0],
                 pca_mean=x.mean(0), pca_components=np.eye(32, dtype=np.float32)[:2])
    bundle = load_bundle(tmp_path / "b")
    for name in ("FRI", "FRII"):
        labels.assign(bundle, np.flatnonzero(catalog["kind"] == name)[:15], name)
    bundle = load_bundle(bundle.path)
    report = heads.train_frozen_head(bundle, heads.HeadSpec(labels.USER_LABEL_COLUMN, "mine", budget=20, device="cpu",
                                                            curve_points=0))
    assert report.metrics["accuracy"] == 1.0
    bundle = load_bundle(bundle.path)
    suggested = labels.suggest_next(bundle.catalog, heads.head_metadata(bundle.path, "mine"), n=5)
    assert len(suggested) == 5 and bundle.catalog[labels.USER_LABEL_COLUMN].iloc[suggested].isna().all()
    probabilities = bundle.catalog["mine_prob"].to_numpy()
    unlabelled = bundle.catalog[labels.USER_LABEL_COLUMN].isna().to_numpy()
    assert probabilities[suggested].max() <= np.sort(probabilities[unlabelled])[4] + 1e-9
