"""The user's own labels: a sidecar in the bundle, with undo and "label these next" suggestions.

``<bundle>/labels.parquet`` holds one row per labelled source (``id``, ``label``, ``time`` in UTC);
``<bundle>/labels_history.json`` keeps the last actions so the latest can be undone. Every write
is atomic, and the history is written before the labels: a crash in between leaves an action
whose undo restores what is already there, so nothing is ever lost or undone twice. Every
read-modify-write holds an exclusive lock on ``<bundle>/.labels.lock`` (``flock``), so labels
given at the same time by two threads, sessions or processes are all kept.

The labels also appear as the catalogue column ``user_label`` (a ``predictions/user_label``
sidecar), so they can colour the map and train a head like any other column.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.core.atomic import atomic_path, file_lock, write_json
from explorer.core.bundle import LABELS_FILE, read_json, reading
from explorer.core.errors import InputError
from explorer.core.heads import is_missing, write_predictions

HISTORY_FILE = "labels_history.json"
LOCK_FILE = ".labels.lock"
USER_LABEL_COLUMN = "user_label"
HISTORY_DEPTH = 20
MAX_LABEL_LENGTH = 64


def read_labels(bundle_path: str | Path) -> pd.DataFrame:
    """id, label, time of every labelled source (empty when nothing is labelled yet)."""
    path = Path(bundle_path) / LABELS_FILE
    if not path.is_file():
        return pd.DataFrame({"id": pd.Series(dtype="string"), "label": pd.Series(dtype="string"),
                             "time": pd.Series(dtype="string")})
    with reading(path, "labels file"):
        labels = pd.read_parquet(path)
    if not {"id", "label", "time"} <= set(labels.columns):
        raise InputError(f"{path.parent.name}/{LABELS_FILE}: expected id, label and time columns")
    return labels


def read_history(bundle_path: str | Path) -> list[dict]:
    path = Path(bundle_path) / HISTORY_FILE
    return read_json(path, list) if path.is_file() else []


def _locked(bundle_path: str | Path):
    """Exclusive lock over the labels of one bundle (threads and processes alike)."""
    return file_lock(Path(bundle_path) / LOCK_FILE)


def check_label(label: str) -> str:
    label = (label or "").strip()
    if not label:
        raise InputError("a label needs a name: type a class name first")
    if len(label) > MAX_LABEL_LENGTH:
        raise InputError(f"label {label[:20]!r}… is longer than {MAX_LABEL_LENGTH} characters")
    return label


def assign(bundle, rows, label: str | None) -> int:
    """Label the sources at ``rows`` (bundle rows) as ``label``, or clear their labels with None.

    Returns how many labels changed; the action can be undone with :func:`undo`.
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if not len(rows):
        raise InputError("no sources selected: click, box or lasso sources on the map first")
    if rows.min() < 0 or rows.max() >= bundle.n:
        raise InputError(f"row {rows.max()} is outside this bundle of {bundle.n} sources")
    label = None if label is None else check_label(label)
    with _locked(bundle.path):
        return _assign(bundle, rows, label)


def _assign(bundle, rows: np.ndarray, label: str | None) -> int:
    ids = bundle.catalog["id"].astype(str).to_numpy()[rows]
    current = read_labels(bundle.path).set_index("id")
    before = [[i, *(current.loc[i, ["label", "time"]].tolist() if i in current.index else [None, None])]
              for i in ids]
    changes = [c for c in before if c[1] != label]
    if not changes:
        return 0
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    changed = [c[0] for c in changes]
    kept = current.drop(index=changed, errors="ignore").reset_index()
    added = pd.DataFrame({"id": changed, "label": label, "time": now}) if label is not None else kept.iloc[:0]
    history = read_history(bundle.path)[-(HISTORY_DEPTH - 1):]
    history.append({"time": now, "label": label, "changes": changes})
    write_json(Path(bundle.path) / HISTORY_FILE, history)
    _write(bundle, pd.concat([kept, added], ignore_index=True))
    return len(changes)


def undo(bundle) -> str | None:
    """Undo the latest action; returns a description of it, or None when there is nothing to undo."""
    with _locked(bundle.path):
        return _undo(bundle)


def _undo(bundle) -> str | None:
    history = read_history(bundle.path)
    if not history:
        return None
    action = history[-1]
    labels = read_labels(bundle.path).set_index("id")
    ids = [c[0] for c in action["changes"]]
    labels = labels.drop(index=ids, errors="ignore")
    restored = pd.DataFrame([{"id": i, "label": lab, "time": t} for i, lab, t in action["changes"] if lab is not None],
                            columns=["id", "label", "time"])
    _write(bundle, pd.concat([labels.reset_index(), restored], ignore_index=True))
    write_json(Path(bundle.path) / HISTORY_FILE, history[:-1])
    what = f"labelled {len(ids)} source(s) as {action['label']!r}" if action["label"] is not None \
        else f"cleared {len(ids)} label(s)"
    return f"undid: {what}"


def _write(bundle, labels: pd.DataFrame) -> None:
    labels = labels.astype({"id": "string", "label": "string", "time": "string"}).sort_values("id", ignore_index=True)
    with atomic_path(Path(bundle.path) / LABELS_FILE) as tmp:
        labels.to_parquet(tmp, index=False)
    column = labels_by_row(bundle, labels)
    write_predictions(bundle.path, USER_LABEL_COLUMN, pd.DataFrame({USER_LABEL_COLUMN: column}),
                      {USER_LABEL_COLUMN: {"unit": "", "description": "your labels (Fine-tune page)"}})


def labels_by_row(bundle, labels: pd.DataFrame | None = None) -> pd.Series:
    """The user's labels aligned with the bundle's rows (missing where unlabelled)."""
    labels = read_labels(bundle.path) if labels is None else labels
    mapping = dict(zip(labels["id"].astype(str), labels["label"]))
    return pd.Series(bundle.catalog["id"].astype(str).map(mapping), dtype="string").reset_index(drop=True)


def classes(bundle) -> list[str]:
    return sorted(read_labels(bundle.path)["label"].dropna().unique().tolist())


def suggest_next(catalog: pd.DataFrame, head: dict, n: int = 12) -> np.ndarray:
    """Rows of the unlabelled sources whose prediction under ``head`` is least certain.

    ``head`` is a saved head's metadata (:func:`explorer.core.heads.head_metadata`): classification
    ranks by the lowest probability of the predicted class, regression by the highest uncertainty.
    Sources labelled in the head's column or in ``user_label`` are skipped.
    """
    name, column = head["name"], head["task"]["column"]
    classification = head["task"]["kind"] == "classification"
    score_column = f"{name}_prob" if classification else f"{name}_uncertainty"
    if score_column not in catalog.columns:
        raise InputError(f"the bundle has no {score_column!r} column; train the head {name!r} again")
    unlabelled = np.ones(len(catalog), dtype=bool)
    for labelled in (column, USER_LABEL_COLUMN):
        if labelled in catalog.columns:
            unlabelled &= is_missing(catalog[labelled])
    scores = pd.to_numeric(catalog[score_column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    candidates = np.flatnonzero(unlabelled & np.isfinite(scores))
    order = np.argsort(scores[candidates] if classification else -scores[candidates], kind="stable")
    return candidates[order[:n]]
