"""Atomic, durable writes: a crash at any moment leaves the previous file or folder, or the new one.

Files: written to ``.NAME.<pid>.<random>.tmp`` beside the target, fsynced, renamed into place, and the
parent folder fsynced, so a completed write survives a power loss.

Folders (bundles, shards, simulated catalogues, heads) take three steps:

1. write everything into ``.NAME.<pid>.<random>.tmp/`` and fsync it;
2. rename it to ``.NAME.<pid>.<random>.ready`` (the new version is complete);
3. move the old folder aside to ``.NAME.<pid>.<random>.old``, rename the ready one into place, delete the old.

A crash between the renames of step 3 leaves no folder at ``NAME``; :func:`recover` (called by the next
write and by :func:`explorer.core.bundle.load_bundle`) finishes the swap from the ``.ready`` folder, or rolls
back to the ``.old`` one, and deletes what interrupted writes left behind. The process id in every
temporary name keeps a live writer's files safe from another process's clean-up.

:func:`check_output_folder` is the one rule for every CLI ``--out``: a folder that exists and is not of
the kind being written is never replaced, and one that is is replaced only when asked.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from explorer.core.errors import InputError

_STAGES = ("tmp", "ready", "old")


def _temp_name(path: Path, stage: str) -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{stage}"


def _leftovers(path: Path) -> dict[str, list[Path]]:
    """Temporary siblings of ``path`` left by writers that are no longer running, by stage."""
    found: dict[str, list[Path]] = {s: [] for s in _STAGES}
    if not path.name or not os.access(path.parent, os.W_OK | os.X_OK):
        return found  # nothing we could repair (read-only data, a missing folder)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.({'|'.join(_STAGES)})$")
    for sibling in path.parent.iterdir():
        m = pattern.match(sibling.name)
        if m and not _alive(int(m[1])):
            found[m[2]].append(sibling)
    for stage in found.values():
        stage.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's live process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover(path: str | Path) -> str | None:
    """Finish or roll back an interrupted write of ``path`` and delete its stray temporary files.

    Returns a sentence saying what was done when a swap had to be repaired, else None.
    """
    path = Path(path)
    left = _leftovers(path)
    message = None
    if not path.exists() and (left["ready"] or left["old"]):
        if left["ready"]:
            os.replace(left["ready"].pop(0), path)
            message = f"{path.name}: finished a replacement that was interrupted (the new version is in place)"
        else:
            os.replace(left["old"].pop(0), path)
            message = f"{path.name}: rolled back a replacement that was interrupted (the previous version is back)"
        fsync_directory(path.parent)
    for stale in (*left["tmp"], *left["ready"], *left["old"]):
        _remove(stale)
    return message


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under ``path`` (and ``path`` itself)."""
    if path.is_file():
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        return
    for root, _, files in os.walk(path):
        for name in files:
            with open(Path(root) / name, "rb+") as f:
                os.fsync(f.fileno())
        fsync_directory(Path(root))


def _fresh_temp(path: Path) -> Path:
    """A new temporary name beside ``path``, after repairing what earlier writes of it left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    return _temp_name(path, "tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one durable rename."""
    path = Path(path)
    tmp = _fresh_temp(path)
    tmp.touch()
    try:
        yield tmp
        fsync_tree(tmp)
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """Write a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
    plt.close(fig)
    return path


def _json_default(o):
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it takes ``path``'s place (see the module doc)."""
    path = Path(path)
    tmp = _fresh_temp(path)
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        ready = _temp_name(path, "ready")
        os.replace(tmp, ready)
        old = _temp_name(path, "old")
        if path.exists():
            os.replace(path, old)
        os.replace(ready, path)
        fsync_directory(path.parent)
        _remove(old)
    finally:
        _remove(tmp)


def check_output_folder(path: str | Path, kind: str, is_kind: Callable[[Path], bool], *,
                        overwrite: bool = False, flag: str = "--out") -> Path:
    """Refuse an output folder whose contents would be lost; returns the path to write.

    Allowed: a path that does not exist yet (in a writable folder), an empty folder, or a ``kind``
    folder (``is_kind``) when ``overwrite`` is set. Everything else is an InputError of one line.
    """
    path = Path(path).expanduser()
    repaired = recover(path)
    if repaired:
        print(repaired, file=sys.stderr)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"is under {parent}, which is a file"
            raise InputError(f"{flag} {path} {where}; choose a folder")
        if parent.exists():
            break
    if path.is_dir() and any(path.iterdir()):
        if not is_kind(path):
            raise InputError(f"{flag} {path} exists and is not a {kind}; refusing to replace it (choose a new folder)")
        if not overwrite:
            raise InputError(f"{flag} {path} is an existing {kind}; add --overwrite to replace it")
    try:  # can we write beside it? (permissions, read-only file systems, /proc)
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = _temp_name(path, "tmp")
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise InputError(f"{flag} {path}: cannot write in {path.parent} ({e.strerror or e})") from None
    return path


@contextmanager
def scratch_folder(beside: str | Path) -> Iterator[Path]:
    """A scratch folder next to ``beside`` (same file system), deleted afterwards, or by the next
    :func:`recover` of ``beside`` when a crash left it."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(beside, "tmp")
    tmp.mkdir()
    try:
        yield tmp
    finally:
        _remove(tmp)


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if needed): one read-modify-write at a time, across threads,
    sessions and processes."""
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
