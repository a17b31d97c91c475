"""Object names to positions: CDS Sesame (SIMBAD, then NED, then VizieR), asked over HTTP with real timeouts.

- Answers are cached on disk (``<cache_dir>/names/``), so a name resolved once works offline.
- Without a network the answer comes quickly, as ``offline: cannot resolve names; enter coordinates``.
- An unknown name gives ``unknown name: <name>``.
- :func:`position_of` takes whatever a user typed: coordinates (parsed locally, including
  J-names) or else an object name.

``EXPLORER_SESAME_URL`` (comma-separated) overrides the Sesame mirrors, e.g. for a loopback test server.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from urllib.parse import quote

import requests

import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.coordinates.name_resolve import sesame_url

from explorer.core import config
from explorer.core.atomic import write_json
from explorer.core.errors import InputError
from explorer.core.sky.coords import parse_coordinates
from explorer.core.sky.network import Offline, Timeout, env_urls, with_retries

OFFLINE_MESSAGE = "offline: cannot resolve names; enter coordinates"
_COORDINATE_TEXT = re.compile(r"[\d+\-.\u2212][\d\s.,:;+\-hmsd°'\"′″\u2212]*")  # "M 31" is a name
# Numbers Python would read (nan, inf, 1e309, 0x10): typed as coordinates, never an object's name.
_NUMBER = re.compile(r"[+\-\u2212]?(nan|inf(inity)?|0x[0-9a-f]+|(\d+\.?\d*|\.\d+)(e[+\-]?\d+)?)", re.IGNORECASE)


class _UnknownName(Exception):
    pass


class _Garbled(Exception):
    """The resolver's address answered with something that is not a Sesame reply."""


_SESAME_POSITION = re.compile(r"^%J\s+(?P<ra>[+-]?\d+(?:\.\d*)?)\s+(?P<dec>[+-]?\d+(?:\.\d*)?)", re.MULTILINE)
_SESAME_ANSWER = re.compile(r"^#=\w=", re.MULTILINE)  # a database section of a real reply


def resolve_name(name: str, *, urls: list[str] | None = None, timeout: float = 3.0, retries: int = 1,
                 cache_dir: str | Path | None = None) -> SkyCoord:
    """The ICRS position of a named object, from the disk cache or from Sesame."""
    name = " ".join((name or "").split())
    if not name:
        raise InputError("no name given; enter an object name (e.g. M 31) or coordinates")
    cache_file = Path(cache_dir or config.cache_dir()) / "names" / f"{_key(name)}.json"
    if cache_file.is_file():
        try:
            entry = json.loads(cache_file.read_text())
            return SkyCoord(entry["ra"] * u.deg, entry["dec"] * u.deg, frame="icrs")
        except (ValueError, KeyError, TypeError):
            cache_file.unlink(missing_ok=True)  # a damaged entry is simply asked again
    urls = urls or env_urls("EXPLORER_SESAME_URL") or list(sesame_url.get())

    def ask() -> SkyCoord:
        failures = []
        for base in urls:  # mirrors in turn; a mirror that answers decides
            try:
                return _ask_sesame(base, name, timeout)
            except (Offline, Timeout) as e:
                failures.append(e)
        raise (Timeout if any(isinstance(e, Timeout) for e in failures) else Offline)(str(failures[-1]))

    try:
        coord = SkyCoord(with_retries(ask, timeout=timeout * len(urls) + 1, retries=retries))
    except _UnknownName:
        raise InputError(f"unknown name: {name}") from None
    except _Garbled as e:
        raise InputError(f"the name resolver sent an unreadable answer ({e}); try again later or enter coordinates") from None
    except Offline:
        raise InputError(OFFLINE_MESSAGE) from None
    except Timeout:
        raise InputError(f"timeout: the name resolver did not answer within {timeout:g} s; enter coordinates") from None
    write_json(cache_file, {"name": name, "ra": float(coord.ra.deg), "dec": float(coord.dec.deg)})
    return coord


def _ask_sesame(base: str, name: str, timeout: float) -> SkyCoord:
    """One Sesame request (SIMBAD, then NED, then VizieR) whose timeout really ends it."""
    url = base.rstrip("/") + "/SNV?" + quote(name)
    try:
        response = requests.get(url, timeout=(timeout, timeout))
    except requests.Timeout as e:
        raise Timeout(str(e)) from None
    except requests.RequestException as e:
        raise Offline(str(e)) from None
    if response.status_code >= 500:
        raise Timeout(f"HTTP {response.status_code}")
    text = response.text if response.status_code == 200 else ""
    position = _SESAME_POSITION.search(text)
    if position:
        return SkyCoord(float(position["ra"]) * u.deg, float(position["dec"]) * u.deg, frame="icrs")
    if "Nothing found" in text or _SESAME_ANSWER.search(text):
        raise _UnknownName()
    raise _Garbled(f"HTTP {response.status_code}")


def position_of(text: str, frame: str = "icrs", **resolver) -> SkyCoord:
    """Coordinates if ``text`` reads as coordinates (or a J-name), else the position of the named object.

    Text made only of digits, signs and sexagesimal marks is never sent to the resolver:
    its coordinate error (e.g. out of range) is the useful message.
    """
    try:
        return parse_coordinates(text, frame=frame)
    except InputError:
        if not (text or "").strip() or looks_like_coordinates(text):
            raise
    return resolve_name(text, **resolver)


def looks_like_coordinates(text: str) -> bool:
    text = text.strip()
    tokens = [t for t in re.split(r"[\s,]+", text) if t]
    return bool(_COORDINATE_TEXT.fullmatch(text)) or (len(tokens) >= 2 and all(_NUMBER.fullmatch(t) for t in tokens))


def _key(name: str) -> str:
    return hashlib.sha1(name.casefold().encode()).hexdigest()[:20]
