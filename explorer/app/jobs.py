"""Background training jobs the Fine-tune page starts, polls and cancels.

- :class:`ThreadJob` runs a frozen head (seconds) in a thread of the app's process;
- :class:`ProcessJob` runs ``python -m training.finetune`` as a subprocess (minutes to hours)
  and reads its progress from ``<bundle>/jobs/<name>.json``; cancel sends SIGTERM.

Both expose the same state: ``state`` (running, done, failed, cancelled), ``fraction`` in
[0, 1], ``message`` and ``error``. The explorer never imports ``training``: the fine-tune
job is a command line.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from explorer.core.config import REPO_ROOT
from explorer.core.errors import InputError
from explorer.core.heads import Cancelled, HeadSpec
from explorer.core.jobfile import FINISHED, job_path, read_progress



class ThreadJob:
    """``work(progress, cancel)`` in a daemon thread; ``progress(fraction, message)`` updates the job."""

    def __init__(self, work: Callable[[Callable[[float, str], None], threading.Event], object], *, name: str = ""):
        self.name = name
        self.state, self.fraction, self.message, self.error, self.result = "running", 0.0, "starting", "", None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True, name=f"head-{name}")
        self._thread.start()

    def _progress(self, fraction: float, message: str) -> None:
        self.fraction, self.message = min(max(fraction, 0.0), 1.0), message

    def _run(self, work) -> None:
        try:
            self.result = work(self._progress, self._cancel)
            self.fraction, self.message, self.state = 1.0, "done", "done"
        except Cancelled:
            self.state, self.message = "cancelled", "cancelled; nothing was written"
        except InputError as e:
            self.state, self.error = "failed", str(e)
        except Exception as e:  # a bug: keep the app alive, say what happened, log the traceback
            traceback.print_exc()
            self.state, self.error = "failed", f"{type(e).__name__}: {e}"

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def finetune_available(bundle) -> tuple[bool, str]:
    """Can the encoder be fine-tuned here? It needs the encoder weights and the images (data spec)."""
    if not bundle.has_encoder:
        return False, "this bundle carries no encoder weights (encoder.safetensors)"
    spec = bundle.manifest.data.spec
    if spec.startswith("sim:") or (spec and Path(spec).expanduser().is_dir()):
        return True, ""
    return False, f"the bundle's images ({spec or 'no data spec'}) are not reachable from here"


def finetune_command(bundle_path: str | Path, spec: HeadSpec, *, epochs: int, stages: int) -> list[str]:
    """The ``training.finetune`` command line for a head spec."""
    command = [sys.executable, "-m", "training.finetune", "--bundle", str(bundle_path), "--label-column", spec.column,
               "--out-name", spec.name, "--device", spec.device, "--task", spec.task, "--test-fraction",
               str(spec.test_fraction), "--seed", str(spec.seed), "--epochs", str(epochs), "--stages", str(stages),
               "--loss", spec.loss, "--alpha", str(spec.alpha)]
    if spec.budget is not None:
        command += ["--labels", str(spec.budget)]
    if spec.log:
        command.append("--log")
    if not spec.weighted:
        command.append("--no-class-weights")
    if spec.replace:
        command.append("--replace")
    return command


class ProcessJob:
    """A ``training.finetune`` subprocess and its progress file."""

    def __init__(self, command: list[str], bundle_path: str | Path, name: str):
        self.name = name
        self.progress_file = job_path(bundle_path, name)
        self.log_file = self.progress_file.with_suffix(".log")
        self.progress_file.parent.mkdir(parents=True, exist_ok=True)
        self.progress_file.unlink(missing_ok=True)  # a previous run's file must not look like this one's
        with open(self.log_file, "wb") as log:
            self._process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
        self.state, self.fraction, self.message, self.error, self.result = "running", 0.0, "starting", "", None
        self._cancelled = False

    def poll(self) -> None:
        """Refresh the state from the progress file and the process."""
        progress = read_progress(self.progress_file)
        self.fraction = progress.fraction
        self.message = progress.summary or self.message
        returncode = self._process.poll()
        if returncode is None:
            return
        if progress.state in FINISHED:
            self.state = progress.state
            self.error = progress.message if progress.state == "failed" else ""
            self.result = progress.metrics if progress.state == "done" else None
        elif self._cancelled:  # stopped by the Cancel button before it could say so itself
            self.state, self.message = "cancelled", "cancelled; nothing was written"
        else:  # it died before saying why: show the end of its output
            self.state, self.error = "failed", f"fine-tuning stopped (exit status {returncode}): {self._log_tail()}"

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_file.read_text(errors="replace").replace("\r", "\n")
        except OSError:
            return ""
        return " | ".join([line for line in text.splitlines() if line.strip()][-lines:])

    def cancel(self) -> None:
        if self._process.poll() is None:
            self._cancelled = True
            self._process.terminate()

    def wait(self, timeout: float | None = None) -> None:
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.poll()

    @property
    def finished(self) -> bool:
        if self.state not in FINISHED:
            self.poll()
        return self.state in FINISHED
