"""The bad-input tally: every case of ``tests/bad_inputs.py`` run once, counted by outcome.

    python -m benchmarks.bad_inputs            # the table; exit 1 if anything is not clean
    python -m benchmarks.bad_inputs --list     # also every case and what it printed

Goal: 0 traceback, 0 silent, 0 data loss. Cases that need the real FIRST images in
``../shared/data`` are counted as skipped when those are absent.

The baseline, in the same run, is the same table against the code before the reliability work
(``--baseline``, a git revision checked out into a temporary worktree; ``--baseline none`` skips it).
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from explorer.core.errors import ArgumentParser
from tests.bad_inputs import CASES, OUTCOMES, NeedsSharedData, Workspace, run_case, tally


REPO = Path(__file__).resolve().parents[1]
BEFORE_RELIABILITY = "62f86dc"   # the last commit before issue 8's fixes

BASELINE_DRIVER = """
import json, sys, tempfile, logging, warnings
from pathlib import Path
logging.disable(logging.WARNING)
warnings.simplefilter("ignore")
from tests.bad_inputs import CASES, NeedsSharedData, Workspace, run_case, tally
results = []
with tempfile.TemporaryDirectory() as root:
    ws = Workspace(Path(root))
    for case in CASES:
        try:
            results.append(run_case(case, ws))
        except NeedsSharedData:
            pass
        except BaseException as e:  # the old code may even break the harness: count it as a traceback
            results.append(type("R", (), {"outcome": "traceback", "case": case})())
print(json.dumps(tally(results)))
"""


def baseline_tally(revision: str) -> dict | None:
    """The same cases against the code at ``revision`` (a temporary git worktree); None when unavailable."""
    with tempfile.TemporaryDirectory(prefix="bad-inputs-baseline-") as where:
        tree = Path(where) / "tree"
        made = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), revision],
                              capture_output=True, text=True)
        if made.returncode:
            print(f"baseline {revision}: unavailable ({made.stderr.strip().splitlines()[-1]})")
            return None
        try:
            table = (REPO / "tests" / "bad_inputs.py").read_text()
            if not (tree / "explorer" / "core").is_dir():  # the layout before explorer.core / explorer.app
                table = table.replace("explorer.core.", "explorer.").replace("explorer.app.", "explorer.")
            (tree / "tests" / "bad_inputs.py").write_text(table)
            if (REPO.parent / "shared").is_dir():  # the real FIRST images sit beside the repository
                (Path(where) / "shared").symlink_to((REPO.parent / "shared").resolve())
            run = subprocess.run([sys.executable, "-c", BASELINE_DRIVER], cwd=tree, capture_output=True, text=True,
                                 timeout=1800)
            lines = run.stdout.strip().splitlines()
            return json.loads(lines[-1]) if run.returncode == 0 and lines else None
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.bad_inputs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print every case with its outcome and message")
    parser.add_argument("--baseline", default=BEFORE_RELIABILITY, help="git revision to compare with, or none")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # AppTest's "missing ScriptRunContext" chatter
    warnings.simplefilter("ignore")  # astropy's VerifyWarnings on the real FIRST headers (tabs in COMMENT cards)
    before = None if args.baseline == "none" else baseline_tally(args.baseline)
    results, skipped = [], 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as root:
        workspace = Workspace(Path(root))
        for case in tqdm(CASES, desc="bad inputs", unit="case"):
            try:
                results.append(run_case(case, workspace))
            except NeedsSharedData:
                skipped += 1
    seconds = time.perf_counter() - start
    counts = tally(results)
    by_surface = {s: [r for r in results if r.case.surface == s] for s in ("cli", "library", "page")}
    print(f"\n{'surface':<10}{'tried':>7}" + "".join(f"{o:>11}" for o in OUTCOMES))
    for surface, rows in by_surface.items():
        print(f"{surface:<10}{len(rows):>7}" + "".join(f"{tally(rows)[o]:>11}" for o in OUTCOMES))
    print(f"{'all':<10}{len(results):>7}" + "".join(f"{counts[o]:>11}" for o in OUTCOMES))
    if before:
        print(f"{'baseline':<10}{sum(before.values()):>7}" + "".join(f"{before[o]:>11}" for o in OUTCOMES)
              + f"   (the same cases at {args.baseline}, before the reliability fixes)")
    print(f"{skipped} skipped (no ../shared/data); {seconds:.0f} s")
    if args.list or any(counts[o] for o in OUTCOMES[1:]):
        for r in results:
            if args.list or r.outcome != "clean":
                print(f"  [{r.outcome}] {r.case.id}: {r.detail.splitlines()[-1] if r.detail else ''}"[:220])
    return 0 if counts["clean"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
