"""Where things live on the user's machine.

``EXPLORER_HOME`` (default: ``.cache`` in the repository) holds the built-in demo
(simulated FITS catalogue, training run) and ``bundles/``, the folder the app lists.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_BUNDLE_NAME = "demo-radio"


def home() -> Path:
    return Path(os.environ.get("EXPLORER_HOME", REPO_ROOT / ".cache")).expanduser()


def bundles_dir() -> Path:
    return Path(os.environ.get("EXPLORER_BUNDLES", home() / "bundles")).expanduser()


def demo_dir() -> Path:
    return home() / "demo"


def cache_dir() -> Path:
    """On-disk caches for network look-ups (name resolution, survey cutouts)."""
    return home() / "cache"
