"""Where things live on the user's machine.

``EXPLORER_HOME`` (default: ``.cache`` in the repository) holds the built-in demo
(simulated FITS catalogue, training run) and ``bundles/``, the folder the app lists
(``EXPLORER_BUNDLES`` points it elsewhere). The app opens bundles only inside that folder
unless the server sets ``EXPLORER_OPEN_FOLDERS=1``.
"""
from __future__ import annotations

import os
from pathlib import Path

from explorer.core.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_BUNDLE_NAME = "demo-radio"
HEAD_KINDS = ("linear", "mlp", "knn", "bandwise")     # frozen heads, shared by the app and the CLIs
TASK_KINDS = ("classification", "regression")


def home() -> Path:
    return Path(os.environ.get("EXPLORER_HOME", REPO_ROOT / ".cache")).expanduser()


def bundles_dir() -> Path:
    return Path(os.environ.get("EXPLORER_BUNDLES", home() / "bundles")).expanduser()


def demo_dir() -> Path:
    return home() / "demo"


def cache_dir() -> Path:
    """On-disk caches for network look-ups (name resolution, survey cutouts)."""
    return home() / "cache"


MAX_TYPED_PATH = 1024
OUTSIDE_MESSAGE = ("only bundles inside the explorer's bundle folder can be opened here "
                   "(the server can allow other folders with EXPLORER_OPEN_FOLDERS=1)")


def open_any_folder() -> bool:
    return os.environ.get("EXPLORER_OPEN_FOLDERS", "").strip().lower() in ("1", "true", "yes")


def resolve_typed_bundle(text: str) -> Path:
    """The folder a user typed into the app: a name or path inside the bundle folder.

    Messages never say whether a path outside the bundle folder exists, and never echo server paths.
    """
    text = (text or "").strip()
    if len(text) > MAX_TYPED_PATH or any(ord(c) < 32 for c in text):
        raise InputError("that is not a folder name (too long, or it holds control characters)")
    root = bundles_dir().resolve()
    try:
        typed = Path(text)
        path = (typed.expanduser() if open_any_folder() else typed)
        path = (path if path.is_absolute() else root / path).resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loops, names the OS refuses
        raise InputError("cannot open that folder") from None
    if not open_any_folder() and not path.is_relative_to(root):
        raise InputError(OUTSIDE_MESSAGE)
    if not path.is_dir():
        raise InputError(f"no bundle named {text!r} in the bundle folder" if not open_any_folder()
                         else "cannot open that folder")
    return path
