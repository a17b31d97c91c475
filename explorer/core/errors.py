"""The one exception type whose message is meant for the user, and the CLI wrapper that shows it.

CLIs print it as a single line and exit 2; pages show it with ``st.error``.
Anything else that escapes is a bug.
"""
from __future__ import annotations

import argparse
import functools
import sys


class InputError(ValueError):
    """Bad input from the user: a data spec, a file, coordinates, a bundle.

    The message is always one line (library errors quoted in it often span several).
    """

    def __init__(self, message: str = ""):
        super().__init__(" ".join(str(message).split()))


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


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors as one line and exit status 2 like every other bad input."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def open_fraction(text: str) -> float:
    """A fraction strictly between 0 and 1 (a held-out part that exists and leaves something to train on)."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value
