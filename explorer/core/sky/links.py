"""Links out from a sky position: SIMBAD, NED, the Legacy Survey viewer and Aladin Lite."""
from __future__ import annotations

from urllib.parse import urlencode

import numpy as np

def simbad_url(ra: float, dec: float, radius_arcsec: float = 10) -> str:
    return "https://simbad.cds.unistra.fr/simbad/sim-coo?" + urlencode({
        "Coord": f"{ra:.6f} {dec:+.6f}", "CooFrame": "ICRS", "CooEpoch": "2000", "CooEqui": "2000",
        "Radius": f"{radius_arcsec:g}", "Radius.unit": "arcsec", "submit": "submit query"})


def ned_url(ra: float, dec: float, radius_arcsec: float = 10) -> str:
    return "https://ned.ipac.caltech.edu/cgi-bin/objsearch?" + urlencode({
        "search_type": "Near Position Search", "in_csys": "Equatorial", "in_equinox": "J2000.0",
        "lon": f"{ra:.6f}d", "lat": f"{dec:+.6f}d", "radius": f"{radius_arcsec / 60:.4g}", "out_csys": "Equatorial",
        "out_equinox": "J2000.0", "obj_sort": "Distance to search center"})


def legacy_survey_url(ra: float, dec: float, zoom: int = 15, layer: str = "ls-dr10") -> str:
    return "https://www.legacysurvey.org/viewer?" + urlencode({
        "ra": f"{ra:.6f}", "dec": f"{dec:+.6f}", "layer": layer, "zoom": zoom, "mark": f"{ra:.6f},{dec:+.6f}"})


def aladin_url(ra: float, dec: float, fov_deg: float = 0.1, survey: str = "CDS/P/VLA/FIRST") -> str:
    return "https://aladin.cds.unistra.fr/AladinLite/?" + urlencode({
        "target": f"{ra:.6f} {dec:+.6f}", "fov": f"{fov_deg:g}", "survey": survey})


LINKS = {"simbad": simbad_url, "ned": ned_url, "legacy_survey": legacy_survey_url, "aladin": aladin_url}
LINK_TITLES = {"simbad": "SIMBAD", "ned": "NED", "legacy_survey": "Legacy Survey", "aladin": "Aladin Lite"}


def source_links(ra: float, dec: float) -> dict[str, str]:
    """Links to the position in SIMBAD, NED, the Legacy Survey viewer and Aladin Lite (empty without a position)."""
    finite = np.isfinite(ra) and np.isfinite(dec)
    return {name: make(ra, dec) if finite else "" for name, make in LINKS.items()}
