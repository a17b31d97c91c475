"""Coordinate parsing: a table of valid and invalid inputs, then property-based round trips."""
import re

import astropy.units as u
import pytest
from astropy.coordinates import FK5, Angle, SkyCoord
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.core.errors import InputError
from explorer.core.sky.coords import parse_coordinates

# 10h00m28.6s +02d12m21s written in every accepted way
COSMOS_RA, COSMOS_DEC = 150.1191666667, 2.2058333333


@pytest.mark.parametrize("text", [
    "150.1191666667 2.2058333333",
    "150.1191666667, +2.2058333333",
    "150.1191666667,2.2058333333",
    "10h00m28.6s +02d12m21s",
    "10h 00m 28.6s +02d 12m 21s",
    "10h00m28.6s+02d12m21s",
    "10:00:28.6 +02:12:21",
    "10:00:28.6, 02:12:21",
    "10 00 28.6 +02 12 21",
    "10 00 28.6 02 12 21",
    "150.1191666667d 2.2058333333d",
    "150.1191666667° +2°12′21″",
    "  10:00:28.6   +02:12:21  ",
])
def test_valid_forms_give_the_same_position(text):
    c = parse_coordinates(text)
    assert c.separation(SkyCoord(COSMOS_RA, COSMOS_DEC, unit="deg")).arcsec < 0.01


@pytest.mark.parametrize("text, ra, dec, tolerance_arcsec", [
    ("J134541.2+232253", "13h45m41.2s", "+23d22m53s", 0.01),
    ("FIRST J134541.2+232253", "13h45m41.2s", "+23d22m53s", 0.01),
    ("SDSS J134541.23+232253.1", "13h45m41.23s", "+23d22m53.1s", 0.01),
    ("2MASS J12345678-1234567", "12h34m56.78s", "-12d34m56.7s", 0.01),
    ("j000000.0-000030", "0h0m0s", "-0d0m30s", 0.01),
])
def test_iau_names_are_fk5_j2000(text, ra, dec, tolerance_arcsec):
    expected = SkyCoord(ra, dec, frame=FK5(equinox="J2000"))
    assert parse_coordinates(text).separation(expected).arcsec < tolerance_arcsec


def test_negative_zero_degrees_keeps_its_sign():
    assert parse_coordinates("10 00 00 -00 30 00").dec.deg == pytest.approx(-0.5)
    assert parse_coordinates("150 -0.5").dec.deg == pytest.approx(-0.5)
    assert parse_coordinates("150-0.5").dec.deg == pytest.approx(-0.5)


def test_frames_are_converted_to_icrs():
    gal = parse_coordinates("120 45", frame="galactic")
    assert gal.frame.name == "icrs"
    assert gal.separation(SkyCoord(l=120 * u.deg, b=45 * u.deg, frame="galactic")).arcsec < 1e-6
    assert parse_coordinates("-60 10", frame="galactic").separation(
        SkyCoord(l=300 * u.deg, b=10 * u.deg, frame="galactic")).arcsec < 1e-6
    fk5 = parse_coordinates("150.1 2.2", frame="FK5")
    assert fk5.separation(SkyCoord(150.1, 2.2, unit="deg", frame=FK5(equinox="J2000"))).arcsec < 1e-6
    # FK5 J2000 and ICRS differ by tens of milliarcseconds, not zero: the frame is really applied
    assert 0.001 < fk5.separation(SkyCoord(150.1, 2.2, unit="deg")).arcsec < 0.1


def test_galactic_sexagesimal_is_degrees():
    c = parse_coordinates("120:30:00 +45:00:00", frame="galactic")
    assert c.galactic.l.deg == pytest.approx(120.5)


@pytest.mark.parametrize("text, frame, message", [
    ("150 95", "icrs", "Dec +95° is out of range"),
    ("150 -90.5", "icrs", "Dec -90.5° is out of range"),
    ("10:00:00 +91:00:00", "icrs", "Dec +91° is out of range"),
    ("370 2", "icrs", "RA 370° is out of range"),
    ("-5 2", "icrs", "RA -5° is out of range"),
    ("25:00:00 +10:00:00", "icrs", "RA 25h is out of range"),
    ("25h00m00s +10d", "icrs", "RA 25h is out of range"),
    ("120 95", "galactic", "b +95° is out of range"),
    ("400 10", "galactic", "l 400° is out of range"),
    ("10:61:00 +02:00:00", "icrs", "minute"),
    ("10:00:61 +02:00:00", "icrs", "second"),
    ("", "icrs", "no coordinates given"),
    ("   ", "icrs", "no coordinates given"),
    ("150.1", "icrs", "expected two angles"),
    ("1 2 3", "icrs", "expected two angles"),
    ("1,2,3", "icrs", "one comma"),
    ("10 b", "icrs", "cannot read Dec 'b'"),
    ("nan 2", "icrs", "cannot read RA 'nan'"),
    ("M31", "icrs", "expected two angles"),
    ("150 2", "ecliptic", "unknown coordinate frame 'ecliptic'"),
])
def test_invalid_input_is_rejected_with_the_reason(text, frame, message):
    with pytest.raises(InputError, match=re.escape(message)):
        parse_coordinates(text, frame=frame)


# ---- property-based: format random valid positions in every form and read them back ----

ras = st.floats(min_value=0, max_value=360, exclude_max=True, allow_nan=False)
decs = st.floats(min_value=-90, max_value=90, allow_nan=False)


def _sexagesimal(ra: float, dec: float, sep: str | None) -> str:
    """``sep=None`` writes astropy's unit letters (10h00m28.6s +02d12m21s)."""
    kw = {} if sep is None else {"sep": sep}
    ra_text = Angle(ra, u.deg).to_string(unit=u.hourangle, precision=4, pad=True, **kw)
    dec_text = Angle(dec, u.deg).to_string(unit=u.deg, precision=3, pad=True, alwayssign=True, **kw)
    return f"{ra_text} {dec_text}"


FORMATS = {
    "decimal": lambda ra, dec: f"{ra:.7f} {dec:+.7f}",
    "decimal, comma": lambda ra, dec: f"{ra:.7f},{dec:.7f}",
    "units": lambda ra, dec: _sexagesimal(ra, dec, None),
    "colons": lambda ra, dec: _sexagesimal(ra, dec, ":"),
    "spaces": lambda ra, dec: _sexagesimal(ra, dec, " "),
}


@settings(max_examples=200, deadline=None)
@given(ra=ras, dec=decs, form=st.sampled_from(sorted(FORMATS)))
def test_round_trip_equatorial(ra, dec, form):
    text = FORMATS[form](ra, dec)
    c = parse_coordinates(text)
    assert c.separation(SkyCoord(ra, dec, unit="deg")).arcsec < 0.01, text


@settings(max_examples=100, deadline=None)
@given(ra=ras, dec=decs, prefix=st.sampled_from(["", "FIRST ", "SDSS "]))
def test_round_trip_iau_name(ra, dec, prefix):
    ra_text = Angle(ra, u.deg).to_string(unit=u.hourangle, sep=":", precision=2, pad=True).replace(":", "")
    dec_text = Angle(dec, u.deg).to_string(unit=u.deg, sep=":", precision=1, pad=True, alwayssign=True).replace(":", "")
    text = f"{prefix}J{ra_text}{dec_text}"
    c = parse_coordinates(text)
    # rounding to 0.01 s in RA and 0.1" in Dec
    assert c.separation(SkyCoord(ra, dec, unit="deg", frame=FK5(equinox="J2000"))).arcsec < 0.2, text


@settings(max_examples=100, deadline=None)
@given(lon=st.floats(min_value=-180, max_value=360, allow_nan=False), lat=decs)
def test_round_trip_galactic(lon, lat):
    c = parse_coordinates(f"{lon:.7f} {lat:+.7f}", frame="galactic")
    assert c.separation(SkyCoord(l=lon * u.deg, b=lat * u.deg, frame="galactic")).arcsec < 0.01


too_far_lat = st.floats(min_value=90.01, max_value=1e4, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(ra=ras, lat=too_far_lat, sign=st.sampled_from([1, -1]), frame=st.sampled_from(["icrs", "fk5", "galactic"]))
def test_latitude_beyond_90_is_always_rejected(ra, lat, sign, frame):
    with pytest.raises(InputError, match="out of range: it must be within -90° to \\+90°"):
        parse_coordinates(f"{ra:.4f} {sign * lat:+.4f}", frame=frame)


@settings(max_examples=100, deadline=None)
@given(ra=st.one_of(st.floats(min_value=360.01, max_value=1e5), st.floats(min_value=-1e5, max_value=-0.01)),
       dec=decs)
def test_ra_beyond_360_degrees_is_always_rejected(ra, dec):
    with pytest.raises(InputError, match="RA .* is out of range"):
        parse_coordinates(f"{ra:.4f} {dec:+.4f}")


@settings(max_examples=100, deadline=None)
@given(hours=st.integers(min_value=24, max_value=99), minutes=st.integers(0, 59), dec=decs)
def test_ra_beyond_24_hours_is_always_rejected(hours, minutes, dec):
    if hours == 24 and minutes == 0:
        minutes = 1  # exactly 24h is 0h and allowed
    dec_text = Angle(dec, u.deg).to_string(sep=":", precision=1, alwayssign=True)
    for text in (f"{hours}:{minutes:02d}:00 {dec_text}", f"{hours}h{minutes:02d}m00s {dec_text.replace(':', ' ')}"):
        with pytest.raises(InputError, match="RA .*h is out of range"):
            parse_coordinates(text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40), frame=st.sampled_from(["icrs", "fk5", "galactic"]))
def test_any_text_either_parses_or_raises_input_error(text, frame):
    try:
        c = parse_coordinates(text, frame=frame)
    except InputError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert -90 <= c.dec.deg <= 90
