"""Network calls that cannot hang: a hard deadline, bounded retries, and plain-words failures.

Some astroquery requests carry no timeout of their own (SkyView's form requests), so every
remote call runs in a daemon thread that the caller stops waiting for at the deadline.
Failures are reduced to two kinds a user can act on: *offline* (nothing reachable: DNS
failure, connection refused, no route) and *timeout* (a server that does not answer).

Service addresses can be overridden with environment variables, which is how tests and
the browser test point the app at a loopback server::

    EXPLORER_SESAME_URL      Sesame name resolver base URL(s), comma-separated
    EXPLORER_SKYVIEW_URL     SkyView basic form URL
    EXPLORER_HIPS2FITS_URL   hips2fits service URL
"""
from __future__ import annotations

import os
import queue
import socket
import threading
import time
import urllib.error
from typing import Callable, TypeVar

import requests

T = TypeVar("T")


class Offline(Exception):
    """No network path to the service."""


class Timeout(Exception):
    """The service did not answer in time."""


def env_urls(variable: str) -> list[str] | None:
    value = os.environ.get(variable, "").strip()
    return [u.strip() for u in value.split(",") if u.strip()] or None


def call_with_deadline(fn: Callable[[], T], seconds: float) -> T:
    """``fn()``'s result, or :class:`Timeout` once ``seconds`` have passed (the thread is abandoned)."""
    answers: queue.Queue = queue.Queue(maxsize=1)

    def run():
        try:
            answers.put((True, fn()))
        except BaseException as e:  # handed to the caller, who decides
            answers.put((False, e))

    threading.Thread(target=run, daemon=True, name="explorer-network").start()
    try:
        ok, value = answers.get(timeout=seconds)
    except queue.Empty:
        raise Timeout(f"no answer within {seconds:g} s") from None
    if ok:
        return value
    raise value


def classify(error: BaseException) -> type[Exception] | None:
    """Offline, Timeout, or None for errors that retrying will not fix (bad answers, 4xx)."""
    if isinstance(error, (Offline, Timeout)):
        return type(error)
    if isinstance(error, (requests.Timeout, socket.timeout, TimeoutError)):
        return Timeout
    if isinstance(error, requests.HTTPError):
        status = error.response.status_code if error.response is not None else 0
        return Timeout if status >= 500 else None
    if isinstance(error, (requests.ConnectionError, ConnectionError, socket.gaierror)):
        return Offline
    if isinstance(error, urllib.error.URLError):
        reason = getattr(error, "reason", None)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return Timeout
        return Offline
    return None


def with_retries(fn: Callable[[], T], *, timeout: float, retries: int, backoff: float = 0.3) -> T:
    """Call ``fn`` under a deadline, retrying timeouts and server errors at most ``retries`` times.

    Raises :class:`Offline` at once (DNS failure, refused connection: retrying will not help),
    :class:`Timeout` after the last attempt, and any other error as it is.
    """
    attempt = 0
    while True:
        try:
            return call_with_deadline(fn, timeout)
        except Exception as e:  # sorted into offline / timeout / other just below
            kind = classify(e)
            if kind is None:
                raise
            if kind is Offline or attempt >= retries:
                raise kind(str(e)) from None
        attempt += 1
        time.sleep(backoff * attempt)
