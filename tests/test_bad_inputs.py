"""Bad inputs never give a traceback, a wrong success or a lost file (the table is tests/bad_inputs.py),
labels survive concurrency, and a kill -9 at any moment leaves a loadable state and no stray files."""
from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.core.atomic import atomic_directory, atomic_path, recover
from explorer.core.bundle import load_bundle
from explorer.core.errors import InputError
from tests.bad_inputs import CASES, NeedsSharedData, Workspace, run_case

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("bad-inputs"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_message_and_loses_nothing(case, workspace):
    try:
        result = run_case(case, workspace)
    except NeedsSharedData as e:
        pytest.skip(str(e))
    assert result.outcome == "clean", f"{result.outcome}: {result.detail}"


# ---------------------------------------------------------------- labels under concurrency

def test_labels_given_at_once_by_two_threads_are_all_kept(workspace):
    from explorer.core import labels

    bundle = load_bundle(workspace.copy_bundle("labels-threads"))
    errors = []

    def label(rows, name):
        try:
            for row in rows:
                labels.assign(bundle, [row], name)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=label, args=(range(0, 8), "a")),
               threading.Thread(target=label, args=(range(8, 16), "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    kept = labels.read_labels(bundle.path)
    assert len(kept) == 16 and sorted(kept["label"].value_counts().to_dict().items()) == [("a", 8), ("b", 8)]
    assert labels.labels_by_row(bundle).notna().sum() == 16


def test_labels_given_at_once_by_two_processes_are_all_kept(workspace):
    bundle = workspace.copy_bundle("labels-processes")
    script = ("import sys; from explorer.core.bundle import load_bundle; from explorer.core import labels\n"
              "b = load_bundle(sys.argv[1]); start = int(sys.argv[2])\n"
              "for row in range(start, start + 8): labels.assign(b, [row], sys.argv[3])\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(bundle), str(start), name], cwd=REPO)
             for start, name in ((0, "a"), (8, "b"))]
    assert [p.wait(120) for p in procs] == [0, 0]
    from explorer.core import labels

    assert len(labels.read_labels(bundle)) == 16


def test_duplicate_catalogue_ids_are_made_unique_at_build(workspace, capsys):
    from explorer.core.bundle import unique_ids

    ids, renamed = unique_ids(pd.Series(["a", "b", "a", "a", "a#2"]))
    assert renamed == 2 and ids.is_unique and ids.iloc[0] == "a" and ids.iloc[2] != ids.iloc[3]


# ---------------------------------------------------------------- crash safety (kill -9)

def _kill_when(proc: subprocess.Popen, ready: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited early"
        assert time.monotonic() < deadline, "never reached the point to kill at"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _strays(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith((".tmp", ".ready", ".old")))


KILL_IN_SWAP = """
import os, sys
from pathlib import Path
import explorer.core.atomic as atomic
target, stage, flag = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
real_replace = os.replace
def replace(src, dst):
    if Path(src).name.endswith(stage):      # the rename about to happen: stop the world here
        flag.touch()
        import time; time.sleep(60)
    real_replace(src, dst)
atomic.os.replace = replace
with atomic.atomic_directory(target) as tmp:
    (tmp / "version.txt").write_text("new")
"""


@pytest.mark.parametrize("stage, expected", [
    (".tmp", "old"),      # killed before the new folder was complete: the old one stays
    (".ready", "new"),    # killed between the two renames (no folder at the path): the swap is finished
])
def test_a_kill_during_a_folder_swap_is_repaired_by_the_next_open(tmp_path, stage, expected):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "version.txt").write_text("old")
    flag = tmp_path / "at-the-rename"
    proc = subprocess.Popen([sys.executable, "-c", KILL_IN_SWAP, str(target), stage, str(flag)], cwd=REPO)
    _kill_when(proc, flag)
    if stage == ".ready":
        assert not target.exists()  # the crash window the repair exists for
    message = recover(target)
    assert (target / "version.txt").read_text() == expected
    assert _strays(tmp_path) == []
    if stage == ".ready":
        assert "finished a replacement that was interrupted" in message


KILL_IN_FILE_WRITE = """
import os, sys, time
from pathlib import Path
import explorer.core.atomic as atomic
target, flag = Path(sys.argv[1]), Path(sys.argv[2])
def replace(src, dst):
    flag.touch()       # written and fsynced, about to be renamed: stop here
    time.sleep(60)
atomic.os.replace = replace
with atomic.atomic_path(target) as tmp:
    tmp.write_bytes(b"new checkpoint")
"""


def test_a_kill_during_a_checkpoint_write_keeps_the_last_one_and_the_next_write_cleans_up(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"epoch 3")
    flag = tmp_path / "at-the-rename"
    proc = subprocess.Popen([sys.executable, "-c", KILL_IN_FILE_WRITE, str(ckpt), str(flag)], cwd=REPO)
    _kill_when(proc, flag)
    assert ckpt.read_bytes() == b"epoch 3" and len(_strays(tmp_path)) == 1   # the interrupted write's file
    with atomic_path(ckpt) as tmp:  # the resumed run's next checkpoint
        tmp.write_bytes(b"epoch 4")
    assert ckpt.read_bytes() == b"epoch 4" and _strays(tmp_path) == []


def test_a_kill_with_the_old_folder_aside_rolls_back(tmp_path):
    target = tmp_path / "bundle"
    (tmp_path / ".bundle.999999999.0123abcd.old").mkdir()   # a dead writer moved the old folder aside ...
    (tmp_path / ".bundle.999999999.0123abcd.old" / "version.txt").write_text("old")
    (tmp_path / ".bundle.999999999.89abcdef.tmp").mkdir()   # ... and left an incomplete new one
    assert "rolled back" in recover(target)
    assert (target / "version.txt").read_text() == "old" and _strays(tmp_path) == []


def test_stray_temporary_files_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    for i in range(5):  # five interrupted checkpoint writes
        (tmp_path / f".checkpoint.pt.99999999{i}.0123abcd.tmp").write_bytes(b"x" * 1000)
    live = tmp_path / f".checkpoint.pt.{os.getpid()}.0123abcd.tmp"   # a live writer's file is left alone
    live.write_bytes(b"y")
    with atomic_path(ckpt) as tmp:
        tmp.write_bytes(b"weights")
    assert ckpt.read_bytes() == b"weights"
    assert _strays(tmp_path) == [live.name]


KILL_TRAINING = """
import sys
from training.config import config_from_dict
from training.train import train
from tests.bad_inputs import TINY_CONFIG
config = config_from_dict({**TINY_CONFIG, "optim": {**TINY_CONFIG["optim"], "epochs": 50}})
train(config, "sim:radio?n=16&seed=0", sys.argv[1], progress=False)
"""


def test_kill_during_training_resumes_and_leaves_no_strays(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", KILL_TRAINING, str(run)], cwd=REPO, stderr=subprocess.PIPE)
    _kill_when(proc, run / "checkpoint.pt")
    from training.train import load_checkpoint

    state = load_checkpoint(run)
    assert state["epoch"] >= 1
    resumed = subprocess.run([sys.executable, "-m", "training.train", "--config", str(_tiny_config(tmp_path)),
                              "--data", "sim:radio?n=16&seed=0", "--out", str(run), "--epochs", str(state["epoch"] + 1)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from epoch {state['epoch']}" in resumed.stdout
    assert _strays(run) == []


def _tiny_config(tmp_path: Path) -> Path:
    import yaml

    from tests.bad_inputs import TINY_CONFIG

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY_CONFIG, "optim": {**TINY_CONFIG["optim"], "epochs": 50}}))
    return path


def test_kill_during_embed_keeps_the_old_bundle_and_the_rerun_cleans_up(workspace):
    bundle = workspace.copy_bundle("kill-embed")
    before = (bundle / "manifest.json").read_text()
    args = [sys.executable, "-m", "training.embed", "--checkpoint", str(workspace.checkpoint),
            "--data", "sim:radio?n=16&seed=0", "--out", str(bundle), "--overwrite"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".kill-embed.") for p in bundle.parent.iterdir()):  # its scratch folder exists
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert load_bundle(bundle).manifest and (bundle / "manifest.json").read_text() == before
    rerun = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    load_bundle(bundle)
    assert _strays(bundle.parent) == []


# ---------------------------------------------------------------- network threads do not pile up

def test_stalled_name_queries_leave_no_threads_behind(tmp_path):
    from explorer.core.sky.names import resolve_name
    from tests.bad_inputs import BadServer

    def lingering():
        return [t.name for t in threading.enumerate() if t.name == "explorer-network"]

    with BadServer(stall=30) as server:  # accepts, then never answers
        for i in range(5):
            with pytest.raises(InputError, match="timeout"):
                resolve_name(f"object {i}", urls=[server.url], timeout=0.5, retries=0, cache_dir=tmp_path)
        deadline = time.monotonic() + 5  # the requests' own timeouts end them; the server is still stalling
        while lingering() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lingering() == []


# ---------------------------------------------------------------- property-based fuzz

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
def test_any_typed_position_is_a_position_or_a_clear_message(text):
    from explorer.core.sky.coords import parse_coordinates

    try:
        coord = parse_coordinates(text)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert np.isfinite(coord.ra.deg) and -90 <= coord.dec.deg <= 90


cells = st.one_of(st.none(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
                          max_size=12))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(cells, cells, cells, cells), min_size=1, max_size=4))
def test_any_catalogue_rows_load_or_skip_with_reasons(rows, tmp_path_factory):
    from explorer.core.fitsio import load_fits_catalogue

    folder = tmp_path_factory.mktemp("fuzz-catalogue")
    pd.DataFrame(rows, columns=["file", "ra", "dec", "file_notes"]).to_csv(folder / "catalog.csv", index=False)
    try:
        images, catalog, _, skipped = load_fits_catalogue(folder, progress=False, workers=1)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert len(catalog) + len(skipped) == len(rows)
    assert all(reason for _, reason in skipped)


header_values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(["CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRPIX1", "CTYPE1",
                                                "CTYPE2", "NAXIS", "BITPIX", "CUNIT1", "PC1_1"]),
                               header_values, max_size=4))
def test_any_damaged_fits_header_loads_or_is_a_counted_skip(changes, tmp_path_factory):
    from astropy.io import fits

    from explorer.core.fitsio import load_fits_catalogue
    from tests.sky_fixtures import MIRABEST, mirabest_catalog, mirabest_file

    if not MIRABEST.is_dir():
        pytest.skip(f"real FIRST images not found at {MIRABEST}")
    raw = mirabest_file().read_bytes()
    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    end = next(i for i in range(0, len(raw), 80) if raw[i:i + 80].rstrip() == b"END")
    header = fits.Header.fromstring(raw[:end + 80].decode("ascii"))
    try:
        for key, value in changes.items():
            header[key] = value
        block = header.tostring(padding=True).encode("ascii")
    except (ValueError, UnicodeEncodeError):
        return  # astropy itself would not write such a card
    folder = tmp_path_factory.mktemp("fuzz-header")
    (folder / "damaged.fits").write_bytes(block + raw[(end // 2880 + 1) * 2880:])
    row = mirabest_catalog().iloc[0]
    pd.DataFrame([{"file": "damaged.fits", "ra": row["ra"], "dec": row["dec"]}]).to_csv(folder / "catalog.csv", index=False)
    images, catalog, _, skipped = load_fits_catalogue(folder, progress=False, workers=1)
    assert len(catalog) + len(skipped) == 1
    assert all(reason and "\n" not in reason for _, reason in skipped)
