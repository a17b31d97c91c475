"""S-PLUS's 12 filters (paper 2) and AB synthetic photometry of a spectrum through them.

Broad bands u, g, r, i, z: SDSS's curves as pyphot ships them (the S-PLUS broad bands are SDSS-like; its u
is the bluer "uJAVA", whose centre and width we do not impose). Narrow bands: approximate curves, flat
topped (a super-Gaussian of order 6, peak 0.9) with the central wavelength and FWHM of Mendes de Oliveira
et al. (2019, Table 1): the real curves have steeper wings and ripples that matter little to these
magnitudes.

Magnitudes are AB for a photon-counting detector,
m = -2.5 log10( ∫ f_λ T λ dλ / ∫ f_λ,AB T λ dλ ), with f_λ,AB = 3631 Jy · c / λ².
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from astropy import constants as const
from astropy import units as u

from explorer.core.surveys import SPLUS_BANDS

BANDS = tuple(SPLUS_BANDS)
BROAD_BANDS = ("u", "g", "r", "i", "z")
# Narrow bands: central wavelength and FWHM in angstrom (Mendes de Oliveira et al. 2019, Table 1).
NARROW_FWHM = {"F378": 151.0, "F395": 103.0, "F410": 201.0, "F430": 201.0, "F515": 207.0, "F660": 147.0, "F861": 408.0}
NARROW = {band: (SPLUS_BANDS[band], fwhm) for band, fwhm in NARROW_FWHM.items()}
SUPER_GAUSSIAN_ORDER = 6
NARROW_PEAK = 0.9
WAVELENGTH_GRID = np.arange(2800.0, 11500.0, 2.0)        # angstrom: every band's support, 2 A steps
_AB_FLAMBDA = (3631 * u.Jy * const.c / (WAVELENGTH_GRID * u.AA) ** 2).to_value(u.erg / u.s / u.cm ** 2 / u.AA)


@dataclass(frozen=True)
class Band:
    name: str
    transmission: np.ndarray        # on WAVELENGTH_GRID
    centre_angstrom: float          # photon-weighted mean wavelength

    @property
    def broad(self) -> bool:
        return self.name in BROAD_BANDS


def _narrow_curve(centre: float, fwhm: float) -> np.ndarray:
    x = np.abs(WAVELENGTH_GRID - centre) / (fwhm / 2)
    return NARROW_PEAK * np.exp(-np.log(2) * x ** SUPER_GAUSSIAN_ORDER)


@lru_cache(maxsize=1)
def splus_bands() -> tuple[Band, ...]:
    """The 12 bands in S-PLUS's order (blue to red)."""
    import pyphot

    library = pyphot.get_library()
    bands = []
    for name in BANDS:
        if name in NARROW:
            curve = _narrow_curve(*NARROW[name])
        else:
            sdss = library[f"SDSS_{name}"]
            curve = np.interp(WAVELENGTH_GRID, sdss.wavelength.to_value(u.AA), np.asarray(sdss.transmit, float),
                              left=0.0, right=0.0)
        weight = curve * WAVELENGTH_GRID
        bands.append(Band(name, curve, float(np.sum(weight * WAVELENGTH_GRID) / np.sum(weight))))
    return tuple(bands)


def ab_magnitudes(flambda: np.ndarray, bands=None) -> np.ndarray:
    """AB magnitudes [..., n_bands] of spectra ``flambda`` [..., len(WAVELENGTH_GRID)] in erg/s/cm²/Å.

    A band the spectrum does not reach (zero flux through it) gives +inf.
    """
    bands = splus_bands() if bands is None else bands
    weights = np.stack([b.transmission * WAVELENGTH_GRID for b in bands])          # [B, L]
    flux = np.asarray(flambda, float) @ weights.T
    reference = weights @ _AB_FLAMBDA
    with np.errstate(divide="ignore"):
        return -2.5 * np.log10(flux / reference)


def flambda_from_fnu_jy(fnu_jy) -> np.ndarray:
    """f_ν in Jy on the grid -> f_λ in erg/s/cm²/Å."""
    return (np.asarray(fnu_jy) * u.Jy * const.c / (WAVELENGTH_GRID * u.AA) ** 2).to_value(
        u.erg / u.s / u.cm ** 2 / u.AA)
