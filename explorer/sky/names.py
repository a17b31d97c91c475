"""Object names to positions: CDS Sesame (SIMBAD, then NED, then VizieR) through astropy's resolver.

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

import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.coordinates.name_resolve import NameResolveError, get_icrs_coordinates, sesame_url
from astropy.utils.data import conf as data_conf

from explorer import config
from explorer.atomic import write_json
from explorer.errors import InputError
from explorer.sky.coords import parse_coordinates
from explorer.sky.network import Offline, Timeout, env_urls, with_retries

OFFLINE_MESSAGE = "offline: cannot resolve names; enter coordinates"
_COORDINATE_TEXT = re.compile(r"[\d+\-.\u2212][\d\s.,:;+\-hmsd°'\"′″\u2212]*")  # "M 31" is a name


class _UnknownName(Exception):
    pass


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
        with sesame_url.set(urls), data_conf.set_temp("remote_timeout", timeout):
            try:
                return get_icrs_coordinates(name, cache=False)
            except NameResolveError as e:
                if str(e).startswith("Unable to find coordinates"):
                    raise _UnknownName() from None
                # astropy folds every mirror's network failure into one error
                raise (Timeout if "took longer" in str(e) or "timed out" in str(e) else Offline)(str(e)) from None

    try:
        coord = SkyCoord(with_retries(ask, timeout=timeout * len(urls) + 1, retries=retries))
    except _UnknownName:
        raise InputError(f"unknown name: {name}") from None
    except Offline:
        raise InputError(OFFLINE_MESSAGE) from None
    except Timeout:
        raise InputError(f"timeout: the name resolver did not answer within {timeout:g} s; enter coordinates") from None
    write_json(cache_file, {"name": name, "ra": float(coord.ra.deg), "dec": float(coord.dec.deg)})
    return coord


def position_of(text: str, frame: str = "icrs", **resolver) -> SkyCoord:
    """Coordinates if ``text`` reads as coordinates (or a J-name), else the position of the named object.

    Text made only of digits, signs and sexagesimal marks is never sent to the resolver:
    its coordinate error (e.g. out of range) is the useful message.
    """
    try:
        return parse_coordinates(text, frame=frame)
    except InputError:
        if not (text or "").strip() or _COORDINATE_TEXT.fullmatch(text.strip()):
            raise
    return resolve_name(text, **resolver)


def _key(name: str) -> str:
    return hashlib.sha1(name.casefold().encode()).hexdigest()[:20]
