"""Survey defaults in one place: the cutout geometry a survey's images are read at, and its service names.

The built-in demo and the MiraBest data are VLA FIRST (1.4 GHz): 1.8″ pixels, a 5.4″ beam, cut into
150 × 150 px cutouts (paper 1). Bundles record their own geometry in the manifest; these are the
defaults for data that does not say.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Survey:
    name: str
    pixels: int                  # cutout side
    pixel_scale_arcsec: float
    beam_fwhm_arcsec: float
    skyview: str                 # SkyView's survey name
    hips: str                    # the CDS HiPS id


FIRST = Survey("VLA FIRST", pixels=150, pixel_scale_arcsec=1.8, beam_fwhm_arcsec=5.4,
               skyview="VLA FIRST (1.4 GHz)", hips="CDS/P/FIRST")


# S-PLUS's 12 filters (paper 2), blue to red, with their central wavelengths in angstrom (Mendes de Oliveira
# et al. 2019, Table 1). Catalogue columns mag_<band> (and mag_err_<band>) in any of them make an SED.
SPLUS_BANDS = {"u": 3536.0, "F378": 3770.0, "F395": 3940.0, "F410": 4094.0, "F430": 4292.0, "g": 4751.0,
               "F515": 5133.0, "r": 6258.0, "F660": 6614.0, "i": 7690.0, "F861": 8611.0, "z": 8831.0}
