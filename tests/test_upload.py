"""Uploaded FITS files: real FIRST bytes accepted, every kind of bad file refused with its reason."""
import gzip
import io
import re

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from explorer.core.errors import InputError
from explorer.core.fitsio import read_image, wcs_pixel_scale_arcsec
from explorer.core.sky.upload import read_uploaded_fits
from tests.sky_fixtures import mirabest_catalog, mirabest_file

FIRST_SCALE = 1.8


def _fits_bytes(hdus) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer, output_verify="ignore")
    return buffer.getvalue()


@pytest.fixture
def real():
    mirabest_catalog()
    path = mirabest_file(5)
    with fits.open(path) as hdul:
        hdu = fits.PrimaryHDU(hdul[0].data.copy(), hdul[0].header.copy())
    return path, hdu


def test_real_first_upload_gzipped_or_not(real):
    path, hdu = real
    want, want_wcs, _ = read_image(path)
    for data in (path.read_bytes(), gzip.decompress(path.read_bytes())):
        image, wcs = read_uploaded_fits(data, path.name, expected_pixel_scale_arcsec=FIRST_SCALE)
        assert np.array_equal(image, want, equal_nan=True)
        assert wcs.wcs.compare(want_wcs.wcs)


def test_image_beside_a_table_is_found(real):
    _, hdu = real
    table = fits.BinTableHDU(Table({"flux": [1.0, 2.0]}))
    data = _fits_bytes([fits.PrimaryHDU(), table, fits.ImageHDU(hdu.data, hdu.header)])
    image, _ = read_uploaded_fits(data, "mixed.fits", expected_pixel_scale_arcsec=FIRST_SCALE)
    assert image.shape == (150, 150)


def _bad_uploads(path, hdu):
    real = path.read_bytes()
    no_wcs = fits.Header({"BUNIT": "JY/BEAM"})
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))  # ~8 kB that inflate to 8 MB
    return {
        "empty.fits": (b"", "empty.fits is empty"),
        "huge.fits.gz": (real, f"huge.fits.gz is {len(real) / 1024:.0f} kB; the upload limit is 20 kB"),
        "bomb.fits.gz": (bomb, "bomb.fits.gz decompresses to more than the upload limit of 1.0 MB"),
        "cut.fits.gz": (real[: len(real) // 2], "cut.fits.gz: the gzip file is truncated"),
        "notes.fits": (b"SIMPLE = maybe\n" * 300, "notes.fits: not a readable FITS file"),
        "table.fits": (_fits_bytes([fits.PrimaryHDU(), fits.BinTableHDU(Table({"ra": [1.0], "dec": [2.0]}))]),
                       "table.fits: no image HDU with 2-D data (found PrimaryHDU, BinTableHDU)"),
        "nowcs.fits": (_fits_bytes([fits.PrimaryHDU(hdu.data, no_wcs)]), "nowcs.fits: no celestial WCS"),
        "blank.fits": (_fits_bytes([fits.PrimaryHDU(np.full_like(hdu.data, np.nan), hdu.header)]),
                       "blank.fits: every pixel is NaN"),
    }


def test_bad_uploads_are_refused_with_the_reason(real):
    path, hdu = real
    for name, (data, message) in _bad_uploads(path, hdu).items():
        limit = 20 * 1024 if name == "huge.fits.gz" else 1024 * 1024
        with pytest.raises(InputError, match="^" + re.escape(message)):
            read_uploaded_fits(data, name, max_bytes=limit, expected_pixel_scale_arcsec=FIRST_SCALE)


def test_far_pixel_scale_is_refused_then_resampled_on_request(real):
    path, hdu = real
    data, wcs, _ = read_image(path)
    coarse = data.reshape(75, 2, 75, 2).mean(axis=(1, 3))  # the real image at 3.6"/px
    coarse_wcs = wcs.slice((slice(None, None, 2), slice(None, None, 2)))
    upload = _fits_bytes([fits.PrimaryHDU(coarse, coarse_wcs.to_header())])
    with pytest.raises(InputError, match=r'has 3\.6" pixels but the encoder was trained on 1\.8" pixels; '
                                         r'resample it to 1\.8"/px'):
        read_uploaded_fits(upload, "coarse.fits", expected_pixel_scale_arcsec=FIRST_SCALE)
    image, out_wcs = read_uploaded_fits(upload, "coarse.fits", expected_pixel_scale_arcsec=FIRST_SCALE,
                                        resample=True)
    assert image.shape == (150, 150)  # the same field of view at the encoder's scale
    assert np.allclose(wcs_pixel_scale_arcsec(out_wcs), FIRST_SCALE)
    ok = np.isfinite(image)
    assert ok.mean() > 0.95 and np.corrcoef(image[ok], data[ok])[0, 1] > 0.9
    # a scale within tolerance passes untouched
    near = _fits_bytes([fits.PrimaryHDU(data, wcs.to_header())])
    image, _ = read_uploaded_fits(near, "near.fits", expected_pixel_scale_arcsec=1.9)
    assert np.array_equal(image, data, equal_nan=True)


def test_fits_errors_say_what_is_wrong_without_astropys_advice(real):
    """Issue 12: no "ignore_missing_simple=True" or "buffer is too small" in front of a user."""
    path, hdu = real
    whole = _fits_bytes([fits.PrimaryHDU(hdu.data, hdu.header)])
    cases = {"notes.fits": (b"just some notes " * 400, "does not begin with a FITS header"),
             "short.fits": (whole[: len(whole) - 5000], "shorter than its header says")}
    for name, (data, reason) in cases.items():
        with pytest.raises(InputError) as caught:
            read_uploaded_fits(data, name, expected_pixel_scale_arcsec=FIRST_SCALE)
        message = str(caught.value)
        assert reason in message, message
        assert "ignore_missing_simple" not in message and "buffer is too small" not in message, message
