"""The fine-tune job-file protocol: ``<bundle>/jobs/<name>.json``, written by ``training.finetune`` and polled by the app.

The writer rewrites the whole file atomically on every change, so a reader never sees half a state.
Fields: ``name``, ``pid``, ``state`` (starting, loading, running, predicting, then done / failed /
cancelled), ``epoch`` and ``total``, ``loss``, ``metrics``, ``message``, ``started``, ``updated``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from explorer.core.atomic import write_json

JOBS_DIR = "jobs"
FINISHED = ("done", "failed", "cancelled")


def job_path(bundle_path: str | Path, name: str) -> Path:
    return Path(bundle_path) / JOBS_DIR / f"{name}.json"


class JobFile:
    """The writer: the state of a run, rewritten atomically for the app to poll."""

    def __init__(self, bundle_path: str | Path, name: str):
        self.path = job_path(bundle_path, name)
        self.state = {"name": name, "pid": os.getpid(), "state": "starting", "epoch": 0, "total": 0,
                      "metrics": {}, "message": "", "started": _now()}

    def update(self, **changes) -> None:
        self.state.update(changes, updated=_now())
        write_json(self.path, self.state)

    def reading(self, done: int, total: int) -> None:
        """Progress through the images before training starts (about every 2 %, not every image)."""
        if done == total or done % max(1, total // 50) == 0:
            self.update(state="loading", epoch=done, total=total, message=f"reading images: {done:,} of {total:,}")


@dataclass
class JobProgress:
    """The reader's view of a job file (empty when the file is missing or unreadable)."""
    state: str = ""
    epoch: int = 0
    total: int = 0
    loss: float | None = None
    message: str = ""
    metrics: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.epoch / self.total if self.total else 0.0

    @property
    def summary(self) -> str:
        if self.state == "running" and self.total:
            return f"epoch {self.epoch}/{self.total}" + (f", loss {self.loss:.4f}" if self.loss is not None else "")
        return self.message


def read_progress(path: str | Path) -> JobProgress:
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return JobProgress()
    if not isinstance(values, dict):
        return JobProgress()
    return JobProgress(str(values.get("state", "")), int(values.get("epoch") or 0), int(values.get("total") or 0),
                       values.get("loss"), str(values.get("message", "")), values.get("metrics") or {})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
