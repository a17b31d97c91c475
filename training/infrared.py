"""A WISE W1-like infrared image for each simulated radio field (paper 3's D3 and D4 inputs).

W1 (3.4 µm) as Radio Galaxy Zoo showed it: on the radio field's own grid (132 px at 1.375″), Gaussian
PSF of 6.1″ FWHM (Wright et al. 2010), pixels in DN with the Vega zero point 20.5 mag (1 DN), white
noise set so that a point source of W1 = 16.9 mag (about AllWISE's 5σ limit) is a 5σ detection.

- The host: an elliptical at every radio core, M_W1 = -25 ± 0.5 (Vega; a few L*, as radio-loud hosts
  are), apparent magnitude through Planck18's distance modulus at the source's redshift (no
  k-correction), half-light radius ~5 kpc. Distant hosts fall below the noise, as many do in RGZ.
- Field sources: stars (points) and galaxies (0.3-2″ Gaussians) drawn from counts rising as
  10^(0.3 m) between W1 = 11 and 18.5, about 60 per 3′ field.

Every profile is a Gaussian, so the PSF is folded into each width and the image is
:func:`training.simulate.render_model` on the field's grid. Each field has its own random stream,
so the radio fields' bytes do not depend on it.
"""
from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.cosmology import Planck18
from astropy.io import fits

from explorer.core.detector import FIELD_PIXELS, FIELD_SCALE_ARCSEC
from training import simulate

PSF_FWHM_ARCSEC = 6.1
ZERO_POINT_MAG = 20.5              # Vega magnitude of 1 DN
LIMIT_MAG_5SIGMA = 16.9
HOST_ABS_MAG = (-25.0, 0.5)        # mean and scatter, Vega
HOST_RADIUS_KPC = 5.0
FIELD_MAG_RANGE = (11.0, 18.5)
FIELD_COUNT_SLOPE = 0.3            # d log10 N / dm
FIELD_SOURCES_MEAN = 60.0
STAR_FRACTION = 0.35
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
PSF_SIGMA_PX = PSF_FWHM_ARCSEC * _FWHM_TO_SIGMA / FIELD_SCALE_ARCSEC
# A point source's flux error is sigma_pixel * sqrt(4 pi sigma_psf^2) (its noise-equivalent area).
NOISE_DN = 10 ** (-0.4 * (LIMIT_MAG_5SIGMA - ZERO_POINT_MAG)) / 5 / np.sqrt(4 * np.pi * PSF_SIGMA_PX ** 2)


def flux_dn(mag):
    return 10 ** (-0.4 * (np.asarray(mag, float) - ZERO_POINT_MAG))


def host_magnitudes(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(*HOST_ABS_MAG, len(z)) + Planck18.distmod(np.asarray(z, float)).value


def _field_magnitudes(rng: np.random.Generator) -> np.ndarray:
    """Magnitudes from counts N(<m) ~ 10^(slope m) between the range's ends (inverse-CDF draw)."""
    low, high = (10 ** (FIELD_COUNT_SLOPE * m) for m in FIELD_MAG_RANGE)
    return np.log10(rng.uniform(low, high, rng.poisson(FIELD_SOURCES_MEAN))) / FIELD_COUNT_SLOPE


def render_w1(hosts_xy: np.ndarray, hosts_z: np.ndarray, seed) -> tuple[np.ndarray, np.ndarray]:
    """One field's W1 image float32 [132, 132] (DN) and its hosts' magnitudes.

    ``hosts_xy`` [k, 2]: the radio cores in field pixels (x, y); ``hosts_z`` their redshifts;
    ``seed``: anything ``np.random.default_rng`` takes, one per field.
    """
    rng = np.random.default_rng(seed)
    mags = host_magnitudes(hosts_z, rng)
    radius = (HOST_RADIUS_KPC * u.kpc / Planck18.angular_diameter_distance(np.asarray(hosts_z, float))).to_value(
        u.dimensionless_unscaled) * u.rad
    host_sigma = radius.to_value(u.arcsec) / 1.18 / FIELD_SCALE_ARCSEC       # Gaussian half-light = 1.18 sigma
    field = _field_magnitudes(rng)
    stars = rng.random(len(field)) < STAR_FRACTION
    field_sigma = np.where(stars, 0.0, rng.uniform(0.3, 2.0, len(field)) / FIELD_SCALE_ARCSEC)
    xy = np.concatenate([np.asarray(hosts_xy, float).reshape(-1, 2),
                         rng.uniform(-0.5, FIELD_PIXELS - 0.5, (len(field), 2))])
    sigma = np.hypot(np.concatenate([host_sigma, field_sigma]), PSF_SIGMA_PX)
    components = np.column_stack([xy, sigma, flux_dn(np.concatenate([mags, field]))])[None]
    image = simulate.render_model(components, FIELD_PIXELS)[0]
    image += rng.normal(0.0, NOISE_DN, image.shape).astype(np.float32)
    return image, mags


def w1_header() -> fits.Header:
    """The W1 extension's header: the radio field's WCS (centre set per field), DN, zero point, PSF."""
    header = simulate.make_wcs(0.0, 0.0, FIELD_PIXELS, FIELD_SCALE_ARCSEC).to_header()
    header["EXTNAME"] = ("W1", "WISE W1-like 3.4 micron image (training.infrared)")
    header["BUNIT"] = ("DN", "pixel unit")
    header["MAGZP"] = (ZERO_POINT_MAG, "Vega magnitude of 1 DN")
    header["PSFFWHM"] = (PSF_FWHM_ARCSEC, "[arcsec] Gaussian PSF FWHM")
    header["TELESCOP"] = ("SIMULATED", "WISE W1-like, on the radio field's grid")
    return header
