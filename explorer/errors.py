"""The one exception type whose message is meant for the user, and the CLI wrapper that shows it.

CLIs print it as a single line and exit 2; pages show it with ``st.error``.
Anything else that escapes is a bug.
"""
from __future__ import annotations

import functools
import sys


class InputError(ValueError):
    """Bad input from the user: a data spec, a file, coordinates, a bundle."""


def cli_entry(main):
    """Run a CLI ``main(argv)``: bad input is one line on stderr and exit status 2, never a traceback."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to resume", file=sys.stderr)
            sys.exit(130)

    return wrapper
