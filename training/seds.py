"""Spectra of stars, galaxies and quasars on :data:`training.bandpasses.WAVELENGTH_GRID` (f_λ, arbitrary scale).

- Stars: a blackbody at T with Balmer absorption lines (Hα-Hε and H8, Gaussian, σ = 8 Å), whose equivalent
  width peaks at 8 Å for A stars (T ≈ 9500 K) and falls off as a Gaussian in log T (0.08 dex), as the
  Balmer lines of main-sequence stars do. No metal lines and no Balmer jump: the narrow bands see the
  continuum slope and the Balmer lines only.
- Galaxies: Coleman, Wu & Weedman (1980) templates (E, Sbc, Scd, Im) as GalSim ships them, redshifted.
- Quasars: a power law f_ν ∝ ν^-0.44 with the broad lines of the SDSS composite (Vanden Berk et al. 2001:
  Lyα, C IV, C III], Mg II, Hγ, Hβ, Hα at their rest equivalent widths, FWHM 4,000 km/s), redshifted, and
  the Lyα forest's mean transmission exp(-0.0036 (1 + z_abs)^3.46) blueward of Lyα.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from training.bandpasses import WAVELENGTH_GRID

GALAXY_TEMPLATES = ("E", "Sbc", "Scd", "Im")
BALMER_ANGSTROM = (6562.8, 4861.3, 4340.5, 4101.7, 3970.1, 3889.0)
BALMER_PEAK_EW = 8.0
BALMER_PEAK_T = 9500.0
BALMER_LOG_WIDTH = 0.08
BALMER_SIGMA_ANGSTROM = 8.0
QUASAR_ALPHA_NU = -0.44
QUASAR_LINES = {"Lya": (1215.7, 92.9), "CIV": (1549.1, 23.8), "CIII]": (1908.7, 21.2), "MgII": (2798.8, 32.3),
                "Hg": (4340.5, 13.0), "Hb": (4861.3, 46.2), "Ha": (6562.8, 194.5)}    # rest wavelength, EW (Å)
QUASAR_LINE_FWHM_KMS = 4000.0
_C_KMS = 299_792.458
_H_C_OVER_K = 1.438776877e8        # h c / k in Å K


def star(temperature_k) -> np.ndarray:
    """Spectra [n, L] of stars at these temperatures."""
    t = np.atleast_1d(np.asarray(temperature_k, float))[:, None]
    lam = WAVELENGTH_GRID[None]
    continuum = lam ** -5 / np.expm1(_H_C_OVER_K / (lam * t))
    ew = BALMER_PEAK_EW * np.exp(-0.5 * (np.log10(t / BALMER_PEAK_T) / BALMER_LOG_WIDTH) ** 2)      # [n, 1]
    depth = sum(np.exp(-0.5 * ((lam - line) / BALMER_SIGMA_ANGSTROM) ** 2) for line in BALMER_ANGSTROM)
    absorbed = np.clip(1 - ew / (BALMER_SIGMA_ANGSTROM * np.sqrt(2 * np.pi)) * depth, 0.0, None)
    return continuum * absorbed


@lru_cache(maxsize=None)
def _template(name: str) -> tuple[np.ndarray, np.ndarray]:
    import galsim

    table = np.loadtxt(Path(galsim.meta_data.share_dir) / "SEDs" / f"CWW_{name}_ext.sed")
    return table[:, 0], table[:, 1]


def galaxy(template: str, z) -> np.ndarray:
    """Spectra [n, L] of a CWW template at redshifts ``z``: f_λ,obs(λ) = f_λ,rest(λ / (1 + z)) / (1 + z)."""
    if template not in GALAXY_TEMPLATES:
        raise ValueError(f"unknown galaxy template {template!r}; use one of {', '.join(GALAXY_TEMPLATES)}")
    rest_lam, rest_flux = _template(template)
    z = np.atleast_1d(np.asarray(z, float))[:, None]
    return np.interp(WAVELENGTH_GRID[None] / (1 + z), rest_lam, rest_flux) / (1 + z)


def quasar(z) -> np.ndarray:
    """Spectra [n, L] of quasars at redshifts ``z``."""
    z = np.atleast_1d(np.asarray(z, float))[:, None]
    rest = WAVELENGTH_GRID[None] / (1 + z)
    continuum = rest ** (-2 - QUASAR_ALPHA_NU)                     # f_ν ∝ ν^α  <=>  f_λ ∝ λ^(-2-α)
    lines = np.zeros_like(rest)
    for centre, ew in QUASAR_LINES.values():
        sigma = centre * QUASAR_LINE_FWHM_KMS / _C_KMS / (2 * np.sqrt(2 * np.log(2)))
        lines += ew / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((rest - centre) / sigma) ** 2)
    spectrum = continuum * (1 + lines)
    forest = rest < QUASAR_LINES["Lya"][0]
    absorber_z = WAVELENGTH_GRID[None] / QUASAR_LINES["Lya"][0] - 1            # where Lyα of an absorber lands
    return np.where(forest, spectrum * np.exp(-0.0036 * (1 + absorber_z) ** 3.46), spectrum)
