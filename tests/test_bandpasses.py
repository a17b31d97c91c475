"""S-PLUS's 12 bands and the spectra of the 12-band sky (paper 2): AB photometry checked against known numbers."""
import numpy as np
import pytest

from training import bandpasses as bp
from training import seds

# AB - Vega for SDSS u, g, r, i, z (Blanton & Roweis 2007).
VEGA_AB = {"u": 0.91, "g": -0.08, "r": 0.16, "i": 0.37, "z": 0.54}


def magnitudes(spectra) -> dict:
    return dict(zip(bp.BANDS, np.atleast_2d(bp.ab_magnitudes(spectra)).T))


def test_a_flat_3631_jy_source_is_magnitude_zero_in_every_band():
    flat = bp.flambda_from_fnu_jy(np.full(bp.WAVELENGTH_GRID.shape, 3631.0))
    np.testing.assert_allclose(bp.ab_magnitudes(flat), 0.0, atol=1e-9)
    # Ten times fainter is 2.5 magnitudes fainter.
    np.testing.assert_allclose(bp.ab_magnitudes(flat / 10), 2.5, atol=1e-9)


def test_vega_through_the_sdss_curves_gives_the_known_ab_offsets():
    import pyphot
    from astropy import units as u

    vega = pyphot.Vega()
    spectrum = np.interp(bp.WAVELENGTH_GRID, vega.wavelength.to_value(u.AA), vega.flux.value)
    mags = magnitudes(spectrum)
    for band, offset in VEGA_AB.items():
        assert mags[band][0] == pytest.approx(offset, abs=0.04), band


def test_the_twelve_bands_are_in_order_and_the_narrow_ones_have_their_published_widths():
    bands = bp.splus_bands()
    assert [b.name for b in bands] == list(bp.BANDS)
    centres = [b.centre_angstrom for b in bands]
    assert centres == sorted(centres)
    for band in bands:
        if band.broad:
            continue
        centre, fwhm = bp.NARROW[band.name]
        above = bp.WAVELENGTH_GRID[band.transmission >= band.transmission.max() / 2]
        assert above.max() - above.min() == pytest.approx(fwhm, abs=4)        # the 2 A grid
        assert band.centre_angstrom == pytest.approx(centre, abs=2)


def test_hot_stars_are_blue_and_a_stars_show_h_alpha_in_f660(monkeypatch):
    temperatures = [3500, 5000, 7000, 9500, 15000]
    mags = magnitudes(seds.star(temperatures))
    assert np.all(np.diff(mags["g"] - mags["r"]) < 0)
    # Hα (EW 8 Å at 9500 K) in the 147-Å F660 band: about 8 / 147 of its light, ~0.06 mag.
    balmer = magnitudes(seds.star([9500]))["F660"][0]
    monkeypatch.setattr(seds, "BALMER_PEAK_EW", 0.0)
    bare = magnitudes(seds.star([9500]))["F660"][0]
    assert 0.04 < balmer - bare < 0.08
    assert abs(magnitudes(seds.star([9500]))["F515"][0] - mags["F515"][3]) < 1e-3     # no Balmer line in F515


def test_quasar_lines_brighten_the_narrow_band_they_fall_in():
    # Mg II (2798 Å) lands in F660 at z = 6614 / 2798 - 1.
    z_in = 6614 / 2798.8 - 1
    inside, outside = magnitudes(seds.quasar([z_in])), magnitudes(seds.quasar([z_in + 0.15]))

    def excess(m):  # F660 against the mean of r and i (the continuum around it)
        return m["F660"][0] - (m["r"][0] + m["i"][0]) / 2

    assert excess(inside) < excess(outside) - 0.1


def test_ellipticals_are_redder_than_irregulars_and_redden_with_redshift():
    e0, e3 = (magnitudes(seds.galaxy("E", [z])) for z in (0.0, 0.3))
    im = magnitudes(seds.galaxy("Im", [0.0]))
    assert (e0["g"] - e0["r"])[0] > (im["g"] - im["r"])[0] + 0.3
    assert (e3["g"] - e3["r"])[0] > (e0["g"] - e0["r"])[0] + 0.3
    with pytest.raises(ValueError, match="unknown galaxy template"):
        seds.galaxy("S0", [0.1])
