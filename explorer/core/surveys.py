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
