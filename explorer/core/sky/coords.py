"""Parse the coordinates a user types into a :class:`~astropy.coordinates.SkyCoord`.

Accepted forms (the two numbers may be separated by spaces or one comma)::

    150.1 2.2              decimal degrees
    150.1, +2.2
    10h00m28.6s +02d12m21s sexagesimal with units (also ° ' " and spaced fields)
    10:00:28.6 +02:12:21   sexagesimal without units: RA in hours, Dec in degrees
    10 00 28.6 +02 12 21
    J134541.2+232253       IAU-style names (also "FIRST J134541.2+232253", 2MASS-style
                           J12345678+1234567 with implied decimals), always FK5 J2000

``frame`` says which frame the numbers are in: ``icrs`` (default), ``fk5`` (J2000) or
``galactic`` (``l b`` in degrees; ``l`` may be given from -180 to 360). The result is
always transformed to ICRS, the frame of every bundle catalogue.

Values out of range are rejected with the reason (Dec beyond ±90°, RA beyond 0-360° or
0-24h, b beyond ±90°); every rejection is an :class:`~explorer.core.errors.InputError`.
Parsing of each angle is astropy's (:class:`~astropy.coordinates.Angle`); this module
only splits the text into its two angles and checks their ranges.
"""
from __future__ import annotations

import math
import re
import warnings

import astropy.units as u
from astropy.coordinates import FK5, ICRS, Angle, Galactic, SkyCoord
from astropy.coordinates.angles.errors import IllegalHourError, IllegalHourWarning

from explorer.core.errors import InputError

FRAMES = {"icrs": ICRS(), "fk5": FK5(equinox="J2000"), "galactic": Galactic()}
EXAMPLES = "'150.1 2.2', '10h00m28.6s +02d12m21s', '10:00:28.6 +02:12:21' or 'J100028.6+021221'"

# An IAU-style name: optional survey prefix, then J HHMMSS[.s] ±DDMMSS[.s]. Digits after the
# seconds without a decimal point (2MASS style) are decimals of the seconds.
_JNAME = re.compile(
    r"^(?:[\w.\-]+\s+)?J(?P<h>\d{2})(?P<m>\d{2})(?P<s>\d{2})\.?(?P<sf>\d*)"
    r"(?P<sign>[+-])(?P<d>\d{2})(?P<dm>\d{2})(?P<ds>\d{2})\.?(?P<dsf>\d*)$",
    re.IGNORECASE,
)
_UNIT_CHARS = re.compile(r"[hdms°'\"′″]|deg", re.IGNORECASE)
_HOURS = re.compile(r"\d\s*h", re.IGNORECASE)
_SIGN_INSIDE = re.compile(r"^(?P<a>.*[^\seE+-])\s*(?P<b>[+-]\S.*)$")


def parse_coordinates(text: str, frame: str = "icrs") -> SkyCoord:
    """The ICRS position written in ``text`` (see the module docstring for the accepted forms)."""
    frame_key = (frame or "icrs").strip().lower()
    if frame_key not in FRAMES:
        raise InputError(f"unknown coordinate frame {frame!r}; use one of {', '.join(FRAMES)}")
    text = (text or "").strip().replace("\u2212", "-")  # typographic minus from copy-paste
    if not text:
        raise InputError(f"no coordinates given; enter e.g. {EXAMPLES}")
    jname = _JNAME.match(text)
    if jname:
        return _from_jname(jname, text)
    lon_text, lat_text = _split_pair(text)
    galactic = frame_key == "galactic"
    lon_name, lat_name = ("l", "b") if galactic else ("RA", "Dec")
    # Unit-less sexagesimal RA is hours by convention; galactic longitude is always degrees.
    lon_default = u.deg if galactic or not _is_unitless_sexagesimal(lon_text) else u.hourangle
    lon = _angle(lon_text, lon_default, lon_name, text)
    lat = _angle(lat_text, u.deg, lat_name, text)
    in_hours = lon_default is u.hourangle or bool(_HOURS.search(lon_text))
    _check_longitude(lon, lon_name, in_hours, galactic)
    _check_latitude(lat, lat_name)
    return SkyCoord(lon % (360 * u.deg), lat, frame=FRAMES[frame_key]).transform_to(ICRS())


def _from_jname(m: re.Match, text: str) -> SkyCoord:
    ra = f"{m['h']}:{m['m']}:{m['s']}.{m['sf'] or '0'}"
    dec = f"{m['sign']}{m['d']}:{m['dm']}:{m['ds']}.{m['dsf'] or '0'}"
    lon = _angle(ra, u.hourangle, "RA", text)
    lat = _angle(dec, u.deg, "Dec", text)
    _check_longitude(lon, "RA", in_hours=True, galactic=False)
    _check_latitude(lat, "Dec")
    return SkyCoord(lon % (360 * u.deg), lat, frame=FRAMES["fk5"]).transform_to(ICRS())


def _split_pair(text: str) -> tuple[str, str]:
    """Split into (longitude, latitude) text: at a comma, a signed token, half the fields, or an inner sign."""
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) == 2 and all(parts):
            return parts[0], parts[1]
        raise InputError(f"cannot read {text!r} as coordinates: expected two values separated by one comma")
    tokens = text.split()
    signed = [i for i, t in enumerate(tokens) if i > 0 and t[0] in "+-"]
    if len(signed) == 1:
        i = signed[0]
        return " ".join(tokens[:i]), " ".join(tokens[i:])
    if len(tokens) in (2, 4, 6) and not signed:
        half = len(tokens) // 2
        return " ".join(tokens[:half]), " ".join(tokens[half:])
    if len(tokens) == 1:
        m = _SIGN_INSIDE.match(text)
        if m:
            return m["a"], m["b"]
    raise InputError(f"cannot read {text!r} as coordinates: expected two angles (longitude and latitude), "
                     f"e.g. {EXAMPLES}")


def _is_unitless_sexagesimal(s: str) -> bool:
    return (":" in s or len(s.split()) > 1) and not _UNIT_CHARS.search(s)


def _angle(s: str, default_unit, name: str, text: str) -> Angle:
    s = s.strip()
    if _is_unitless_sexagesimal(s):
        s = ":".join(s.replace(":", " ").split())  # astropy reads "10 00 28.6" and "10:00:28.6" alike
    try:
        with warnings.catch_warnings():  # exactly 24h is accepted (it is 0h); beyond is an error below
            warnings.simplefilter("ignore", IllegalHourWarning)
            angle = Angle(s, unit=default_unit).to(u.deg)
    except IllegalHourError as e:
        raise InputError(f"{name} {e.hour:g}h is out of range: it must be within 0h to 24h") from None
    except (ValueError, u.UnitsError) as e:
        reason = str(e).rstrip(".")
        raise InputError(f"cannot read {name} {s!r} in {text!r}: {reason}; enter e.g. {EXAMPLES}") from None
    if not angle.isscalar or not math.isfinite(angle.value):
        raise InputError(f"cannot read {name} {s!r} in {text!r} as one finite angle")
    return Angle(angle)


def _check_longitude(lon: Angle, name: str, in_hours: bool, galactic: bool) -> None:
    if in_hours:
        hours = lon.to_value(u.hourangle)
        if not 0 <= hours <= 24:
            raise InputError(f"{name} {hours:g}h is out of range: it must be within 0h to 24h")
        return
    low = -180 if galactic else 0  # galactic longitudes are often written -180..180
    if not low <= lon.deg <= 360:
        raise InputError(f"{name} {lon.deg:g}° is out of range: it must be within {low}° to 360°")


def _check_latitude(lat: Angle, name: str) -> None:
    if not -90 <= lat.deg <= 90:
        raise InputError(f"{name} {lat.deg:+g}° is out of range: it must be within -90° to +90°")
