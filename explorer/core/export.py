"""Getting results out: CSV and VOTable bytes for downloads, and SAMP broadcasts to TOPCAT/Aladin.

SAMP goes through ``pyvo.samp``: the same code as ``astropy.samp``, which astropy 8 deprecates in its favour.

Column units and descriptions (the bundle manifest's ``columns`` entries) travel into the
VOTable, so TOPCAT shows RA/Dec in degrees and sizes in arcsec.

:func:`broadcast_table` sends ``table.load.votable`` to every client of the running SAMP hub
(found the standard way: ``SAMP_HUB`` or ``~/.samp``). With no hub it raises
``InputError("no SAMP hub is running; start TOPCAT or Aladin")``.
"""
from __future__ import annotations

import io
import re
import time
import uuid
from pathlib import Path

import astropy.units as u
import pandas as pd
from astropy.table import Table

from explorer.core import config
from explorer.core.atomic import atomic_path
from explorer.core.errors import InputError

NO_HUB_MESSAGE = "no SAMP hub is running; start TOPCAT or Aladin"
SAMP_FILES_KEPT_SECONDS = 24 * 3600  # receivers read the file after the message; keep it a while
SAMP_DELIVERY_GRACE_SECONDS = 1.0    # the hub delivers in threads and drops messages whose sender has already left


def to_astropy_table(table: pd.DataFrame, columns: dict | None = None, *, name: str = "results") -> Table:
    """An astropy Table with units and descriptions from ``columns`` ({column: {unit, description}})."""
    frame = table.reset_index(drop=True)
    for c in frame.columns:  # VOTable has no "object" type: text columns go out as strings
        if frame[c].dtype == object:
            frame[c] = frame[c].map(lambda v: "" if pd.isna(v) else str(v))
    out = Table.from_pandas(frame)
    out.meta["name"] = name
    out.meta["ID"] = re.sub(r"\W+", "_", name).strip("_") or "results"  # an XML id: no spaces
    for column, meta in (columns or {}).items():
        if column not in out.colnames:
            continue
        description = meta.get("description", "")
        unit = u.Unit(meta.get("unit") or "", parse_strict="silent") if meta.get("unit") else None
        if isinstance(unit, u.UnrecognizedUnit):  # e.g. log10(W/Hz): say it in words instead
            description = f"{description} [{meta['unit']}]".strip()
            unit = None
        out[column].unit = unit
        out[column].description = description or None
    return out


def to_votable_bytes(table: pd.DataFrame, columns: dict | None = None, *, name: str = "results") -> bytes:
    buffer = io.BytesIO()
    to_astropy_table(table, columns, name=name).write(buffer, format="votable")
    return buffer.getvalue()


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False).encode()


def broadcast_table(table: pd.DataFrame, name: str, columns: dict | None = None, *,
                    client_name: str = "Latent explorer") -> str:
    """Send ``table`` to every SAMP client (TOPCAT, Aladin, ...); returns the table id sent."""
    from pyvo.samp import SAMPHubError, SAMPIntegratedClient  # astropy.samp's successor (deprecated in astropy 8)

    path = _samp_file(name)
    with atomic_path(path) as tmp:
        tmp.write_bytes(to_votable_bytes(table, columns, name=name))
    client = SAMPIntegratedClient(name=client_name, description="interactive latent-space explorer")
    try:
        client.connect()
    except (SAMPHubError, ConnectionError, OSError):
        path.unlink(missing_ok=True)
        raise InputError(NO_HUB_MESSAGE) from None
    table_id = path.stem
    try:
        client.notify_all({"samp.mtype": "table.load.votable",
                           "samp.params": {"url": path.as_uri(), "table-id": table_id, "name": name}})
        time.sleep(SAMP_DELIVERY_GRACE_SECONDS)
    finally:
        client.disconnect()
    return table_id


def _samp_file(name: str) -> Path:
    folder = config.cache_dir() / "samp"
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob("*.xml"):  # tidy files receivers have long since read
        if now - old.stat().st_mtime > SAMP_FILES_KEPT_SECONDS:
            old.unlink(missing_ok=True)
    safe = "".join(ch if ch.isalnum() else "-" for ch in name)[:40].strip("-") or "table"
    return folder / f"{safe}-{uuid.uuid4().hex[:8]}.xml"
