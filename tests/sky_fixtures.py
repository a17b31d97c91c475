"""Real inputs for the sky/FITS tests and benchmarks: the MiraBest FITS files in ``../shared``."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
MIRABEST = REPO.parent / "shared" / "data" / "mirabest"


def mirabest_catalog() -> pd.DataFrame:
    """MiraBest's catalog.csv, or skip the calling test when ``../shared`` is absent."""
    if not (MIRABEST / "catalog.csv").is_file():
        pytest.skip(f"real MiraBest FITS files not found at {MIRABEST} (../shared/data/mirabest)")
    return pd.read_csv(MIRABEST / "catalog.csv")


def mirabest_file(row: int = 0) -> Path:
    return MIRABEST / mirabest_catalog()["file"].iloc[row]
