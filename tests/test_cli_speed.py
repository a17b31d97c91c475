"""Issue 12: the CLIs answer --help and bad arguments before importing torch (it took 10-16 s)."""
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import TOOLS

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import runpy, sys
sys.argv = ["{tool}", *{args!r}]
try:
    runpy.run_module("training.{tool}", run_name="__main__")
except SystemExit as e:
    print("exit", e.code)
print("torch imported:", "torch" in sys.modules)
"""


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("args, code", [(["--help"], 0), (["--no-such-option"], 2)])
def test_help_and_bad_arguments_answer_without_torch(tool, args, code):
    done = subprocess.run([sys.executable, "-c", PROBE.format(tool=tool, args=args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert f"exit {code}" in done.stdout, done.stdout + done.stderr
    assert "torch imported: False" in done.stdout, done.stdout
    if code == 2:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, no traceback
