"""Named saved selections: a sidecar in the bundle, beside the labels.

``<bundle>/selections.json`` maps a name to the selected ids, when it was saved and the filter that
was active. Sources are stored by ``id`` (rows change when a bundle is rebuilt; ids do not). Writes
are atomic and hold ``<bundle>/.selections.lock``, so two sessions saving at once both keep theirs.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from explorer.core.atomic import file_lock, write_json
from explorer.core.bundle import read_json
from explorer.core.errors import InputError

SELECTIONS_FILE = "selections.json"
LOCK_FILE = ".selections.lock"
NAME_PATTERN = re.compile(r"^[^\x00-\x1f/\\]{1,64}$")


def read_selections(bundle_path: str | Path) -> dict[str, dict]:
    """name -> {"ids": [...], "time": ..., "filter": ...}, newest first (empty when none was saved)."""
    path = Path(bundle_path) / SELECTIONS_FILE
    saved = read_json(path, dict) if path.is_file() else {}
    for name, entry in saved.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("ids"), list):
            raise InputError(f"{Path(bundle_path).name}/{SELECTIONS_FILE}: selection {name!r} has no id list")
    return dict(sorted(saved.items(), key=lambda item: item[1].get("time", ""), reverse=True))


def check_selection_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise InputError("a saved selection needs a name of 1-64 characters, without / or \\")
    return name


def save_selection(bundle, name: str, rows, *, filter_text: str = "", replace: bool = False) -> int:
    """Save the sources at ``rows`` under ``name``; a name in use is refused unless ``replace``. Returns the count."""
    name = check_selection_name(name)
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if not len(rows):
        raise InputError("nothing to save: the selection is empty")
    ids = bundle.catalog["id"].iloc[rows].astype(str).tolist()
    with file_lock(Path(bundle.path) / LOCK_FILE):
        saved = read_selections(bundle.path)
        if name in saved and not replace:
            raise InputError(f"a selection named {name!r} already exists ({len(saved[name]['ids']):,} sources); "
                             "choose another name, or replace it deliberately")
        saved[name] = {"ids": ids, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "filter": filter_text}
        write_json(Path(bundle.path) / SELECTIONS_FILE, saved)
    return len(ids)


def delete_selection(bundle_path: str | Path, name: str) -> None:
    with file_lock(Path(bundle_path) / LOCK_FILE):
        saved = read_selections(bundle_path)
        if name not in saved:
            raise InputError(f"no saved selection named {name!r}")
        del saved[name]
        write_json(Path(bundle_path) / SELECTIONS_FILE, saved)


def selection_rows(bundle, name: str) -> tuple[np.ndarray, int]:
    """The bundle rows of a saved selection, and how many of its ids the bundle no longer has."""
    saved = read_selections(bundle.path)
    if name not in saved:
        raise InputError(f"no saved selection named {name!r}")
    ids = bundle.catalog["id"].astype(str)
    found = np.flatnonzero(ids.isin(set(saved[name]["ids"])).to_numpy())
    return found, len(saved[name]["ids"]) - len(found)
