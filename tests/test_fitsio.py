"""FITS images and catalogue directories, on the real VLA FIRST files of MiraBest."""
import gzip
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from explorer.core.errors import InputError
from explorer.core.fitsio import cutout_at, cutout_with_wcs, load_fits_catalogue, read_image, wcs_pixel_scale_arcsec
from tests.sky_fixtures import MIRABEST, mirabest_catalog, mirabest_file


def _centre_offset_px(cut_wcs, coord, pixels):
    """How far (px) the position lands from the geometric centre of a pixels-square cutout."""
    x, y = cut_wcs.world_to_pixel(coord)
    c = (pixels - 1) / 2
    return float(np.hypot(x - c, y - c))


def _real_hdu(row=0):
    with fits.open(mirabest_file(row)) as hdul:
        return fits.PrimaryHDU(hdul[0].data.copy(), hdul[0].header.copy())


def _write(path, hdus):
    fits.HDUList(hdus).writeto(path, output_verify="ignore")  # keep the real header as it is
    return path


def _catalogue_dir(tmp_path, rows: pd.DataFrame, name="cat"):
    """A catalogue folder whose file column points (absolute) at the real files."""
    d = tmp_path / name
    d.mkdir()
    rows = rows.copy()
    for column in [c for c in rows.columns if c.startswith("file")]:
        rows[column] = [str(MIRABEST / f) for f in rows[column]]  # absolute paths are kept as they are
    rows.to_csv(d / "catalog.csv", index=False)
    return d


# ---------------------------------------------------------------- read_image

def test_real_first_file_reads_with_tab_comment_cards_and_warnings_as_errors():
    path = mirabest_file(0)
    with fits.open(path) as hdul:  # the premise: this header really has tab characters
        assert any("\t" in str(v) for v in hdul[0].header["COMMENT"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any VerifyWarning escaping would fail here
        data, wcs, header = read_image(path)
    assert data.shape == (150, 150) and data.dtype == np.float32
    assert wcs.has_celestial and wcs.naxis == 2
    assert np.allclose(wcs_pixel_scale_arcsec(wcs), 1.8)
    assert header["SURVEY"].strip() == "FIRST"


def test_degenerate_frequency_and_stokes_axes_are_dropped(tmp_path):
    hdu = _real_hdu()
    h = hdu.header
    h["NAXIS"] = 4
    for i, (ctype, crval, cdelt) in enumerate([("FREQ", 1.4e9, 1e7), ("STOKES", 1, 1)], start=3):
        h[f"CTYPE{i}"], h[f"CRVAL{i}"], h[f"CDELT{i}"], h[f"CRPIX{i}"] = ctype, crval, cdelt, 1.0
    cube = _write(tmp_path / "four_axes.fits", [fits.PrimaryHDU(hdu.data[None, None], h)])
    data, wcs, _ = read_image(cube)
    assert data.shape == (150, 150)
    assert np.array_equal(data, hdu.data, equal_nan=True)
    assert wcs.naxis == 2


def test_image_in_first_extension_is_found(tmp_path):
    hdu = _real_hdu()
    path = _write(tmp_path / "ext.fits.gz", [fits.PrimaryHDU(), fits.ImageHDU(hdu.data, hdu.header)])
    data, _, _ = read_image(path)
    assert np.array_equal(data, hdu.data, equal_nan=True)


def _rejections(tmp_path):
    real = mirabest_file(0).read_bytes()
    hdu = _real_hdu()
    no_wcs = hdu.header.copy()
    for key in list(no_wcs):
        if key[:5] in ("CTYPE", "CRVAL", "CRPIX", "CDELT", "RADES", "EQUIN"):
            del no_wcs[key]
    spectral = hdu.header.copy()
    spectral["CTYPE1"], spectral["CTYPE2"] = "FREQ", "VELO"
    table = fits.BinTableHDU(Table.from_pandas(mirabest_catalog().head(5)[["ra", "dec", "z"]]))
    (tmp_path / "truncated.fits.gz").write_bytes(real[: len(real) // 2])
    (tmp_path / "garbage.fits").write_bytes(gzip.decompress(real)[2880:2880 * 3])  # data blocks, no header
    _write(tmp_path / "no_wcs.fits", [fits.PrimaryHDU(hdu.data, no_wcs)])
    _write(tmp_path / "spectral.fits", [fits.PrimaryHDU(hdu.data, spectral)])
    _write(tmp_path / "nan_only.fits", [fits.PrimaryHDU(np.full_like(hdu.data, np.nan), hdu.header)])
    _write(tmp_path / "table_only.fits", [fits.PrimaryHDU(), table])
    return {
        "truncated.fits.gz": "not a readable FITS file",
        "garbage.fits": "not a readable FITS file",
        "no_wcs.fits": "no celestial WCS",
        "spectral.fits": "no celestial WCS (CTYPE: 'FREQ', 'VELO')",
        "nan_only.fits": "every pixel is NaN",
        "table_only.fits": "no image HDU with 2-D data (found PrimaryHDU, BinTableHDU)",
        "missing.fits": "file not found",
    }


def test_bad_files_are_rejected_with_a_specific_message_naming_the_file(tmp_path):
    for name, message in _rejections(tmp_path).items():
        with pytest.raises(InputError, match=re.escape(f"{name}: {message}")):
            read_image(tmp_path / name)


# ---------------------------------------------------------------- cutouts

def test_cutout_at_the_file_centre_reproduces_the_file():
    data, wcs, _ = read_image(mirabest_file(3))
    centre = wcs.pixel_to_world(74.5, 74.5)
    assert np.array_equal(cutout_at(data, wcs, centre, 150, 1.8), data, equal_nan=True)


@pytest.mark.parametrize("row", [0, 100, 500, 1000])
def test_catalogue_position_lands_at_the_cutout_centre(row):
    cat = mirabest_catalog()
    data, wcs, _ = read_image(MIRABEST / cat["file"][row])
    coord = SkyCoord(cat["ra"][row], cat["dec"][row], unit="deg")
    for pixels in (150, 70, 71):
        cut, cut_wcs = cutout_with_wcs(data, wcs, coord, pixels, 1.8)
        assert cut.shape == (pixels, pixels)
        assert _centre_offset_px(cut_wcs, coord, pixels) <= 0.5 * np.sqrt(2)
        x, y = cut_wcs.world_to_pixel(coord)
        assert abs(x - (pixels - 1) / 2) <= 0.5 and abs(y - (pixels - 1) / 2) <= 0.5


def test_off_centre_source_still_gives_a_centred_cutout(tmp_path):
    """A sub-image whose source sits near a corner: the cutout follows the WCS, not the array centre."""
    cat = mirabest_catalog()
    row = cat.iloc[7]
    data, wcs, _ = read_image(MIRABEST / row["file"])
    coord = SkyCoord(row["ra"], row["dec"], unit="deg")
    sub = (slice(50, 150), slice(0, 100))  # source now ~35 px from the sub-image centre
    sub_data, sub_wcs = data[sub], wcs[sub]
    sx, sy = sub_wcs.world_to_pixel(coord)
    assert np.hypot(sx - 49.5, sy - 49.5) > 30
    want, want_wcs = cutout_with_wcs(data, wcs, coord, 40, 1.8)
    got, got_wcs = cutout_with_wcs(sub_data, sub_wcs, coord, 40, 1.8)
    assert np.isfinite(got).all() and np.array_equal(got, want)
    x, y = got_wcs.world_to_pixel(coord)
    assert abs(x - 19.5) <= 0.5 and abs(y - 19.5) <= 0.5
    # and through a catalogue directory holding the off-centre file
    h = sub_wcs.to_header()
    path = _write(tmp_path / "offcentre.fits", [fits.PrimaryHDU(sub_data, h)])
    folder = _catalogue_dir(tmp_path, pd.DataFrame({"file": [str(path)], "ra": [row["ra"]], "dec": [row["dec"]]}))
    images, loaded, _, skipped = load_fits_catalogue(folder, pixels=40, progress=False)
    assert not skipped
    assert np.array_equal(images[0, 0], want, equal_nan=True)


def test_cutout_reaching_past_the_edge_is_nan_padded():
    data, wcs, _ = read_image(mirabest_file(2))
    edge = wcs.pixel_to_world(5, 74.5)  # 5 px from the left edge
    cut = cutout_at(data, wcs, edge, 40, 1.8)
    assert np.isnan(cut[:, :14]).all() and np.isfinite(cut[:, 16:]).all()
    with pytest.raises(InputError, match="outside the image"):
        cutout_at(data, wcs, wcs.pixel_to_world(500, 500), 40, 1.8)


def _block_average(data, wcs):
    """A genuinely 3.6"/px version of a real 1.8"/px image, with the matching WCS."""
    h, w = (s // 2 * 2 for s in data.shape)
    blocks = data[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return blocks, wcs.slice((slice(None, None, 2), slice(None, None, 2)))


def _correlation(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    return np.corrcoef(a[ok], b[ok])[0, 1]


def test_coarser_file_is_resampled_to_the_configured_scale(tmp_path):
    cat = mirabest_catalog()
    row = cat.iloc[11]
    data, wcs, _ = read_image(MIRABEST / row["file"])
    coarse, coarse_wcs = _block_average(data, wcs)
    assert np.allclose(wcs_pixel_scale_arcsec(coarse_wcs), 3.6)
    coord = SkyCoord(row["ra"], row["dec"], unit="deg")
    up, up_wcs = cutout_with_wcs(coarse, coarse_wcs, coord, 100, 1.8)
    assert up.shape == (100, 100)
    assert np.allclose(wcs_pixel_scale_arcsec(up_wcs), 1.8)
    assert _centre_offset_px(up_wcs, coord, 100) < 1e-6  # resampled grids are centred exactly
    truth = cutout_at(data, wcs, coord, 100, 1.8)
    assert _correlation(up, truth) > 0.9
    # the same through a catalogue directory: the file's own scale is detected from its WCS
    path = _write(tmp_path / "coarse.fits", [fits.PrimaryHDU(coarse, coarse_wcs.to_header())])
    folder = _catalogue_dir(tmp_path, pd.DataFrame({"file": [str(path)], "ra": [row["ra"]], "dec": [row["dec"]]}))
    images, _, _, _ = load_fits_catalogue(folder, pixels=100, progress=False)
    assert np.array_equal(images[0, 0], up, equal_nan=True)


def test_finer_file_is_smoothed_and_resampled_down():
    cat = mirabest_catalog()
    row = cat.iloc[11]
    data, wcs, _ = read_image(MIRABEST / row["file"])
    coarse, coarse_wcs = _block_average(data, wcs)
    coord = SkyCoord(row["ra"], row["dec"], unit="deg")
    down, down_wcs = cutout_with_wcs(data, wcs, coord, 60, 3.6)
    assert np.allclose(wcs_pixel_scale_arcsec(down_wcs), 3.6)
    truth = cutout_at(coarse, coarse_wcs, coord, 60, 3.6)  # coarse file is already at 3.6"
    assert _correlation(down, truth) > 0.9
    # surface brightness (Jy/beam) is preserved, so the total scales with pixel area
    assert np.nansum(down) * 4 == pytest.approx(np.nansum(cutout_at(data, wcs, coord, 120, 1.8)), rel=0.1)


# ---------------------------------------------------------------- catalogue directories

def test_subset_of_real_catalogue_loads_with_ids_columns_and_metadata(tmp_path):
    subset = mirabest_catalog().iloc[::40].reset_index(drop=True)
    folder = _catalogue_dir(tmp_path, subset)
    (folder / "columns.yaml").write_text("z:\n  unit: ''\n  description: spectroscopic redshift (SDSS)\n"
                                         "las_arcsec:\n  unit: arcsec\n")
    images, loaded, columns, skipped = load_fits_catalogue(folder, pixels=70, progress=False)
    assert skipped == []
    assert images.shape == (len(subset), 1, 70, 70) and images.dtype == np.float32
    assert list(loaded.columns[:3]) == ["id", "ra", "dec"] and "file" not in loaded.columns
    assert loaded["id"].tolist() == [f.split("/")[-1].removesuffix(".fits.gz") for f in subset["file"]]
    assert loaded["fr_class"].tolist() == subset["fr_class"].tolist()
    assert columns["z"]["description"] == "spectroscopic redshift (SDSS)"
    assert columns["las_arcsec"]["unit"] == "arcsec"
    assert columns["ra"] == {"unit": "deg", "description": "right ascension (ICRS)"}
    assert loaded.attrs["bands"] == ["image"]


def test_unreadable_rows_are_named_counted_and_skipped(tmp_path):
    subset = mirabest_catalog().iloc[:6].copy()
    real = (MIRABEST / subset["file"].iloc[0]).read_bytes()
    (tmp_path / "broken.fits.gz").write_bytes(real[:1000])
    subset.loc[subset.index[1], "file"] = str(tmp_path / "broken.fits.gz")
    subset.loc[subset.index[2], "file"] = str(tmp_path / "gone.fits")
    subset.loc[subset.index[3], "dec"] = 123.0
    subset["name"] = [f"src{i}" for i in range(6)]
    folder = _catalogue_dir(tmp_path, subset)
    images, loaded, _, skipped = load_fits_catalogue(folder, pixels=50, progress=False)
    assert len(images) == len(loaded) == 3
    assert loaded["id"].tolist() == ["src0", "src4", "src5"] and "name" not in loaded.columns
    reasons = dict(skipped)
    assert len(skipped) == 3
    assert "broken.fits.gz: not a readable FITS file" in reasons[str(tmp_path / "broken.fits.gz")]
    assert "gone.fits: file not found" in reasons[str(tmp_path / "gone.fits")]
    assert any("invalid position" in r and "123" in r for r in reasons.values())


def test_multi_band_columns_and_cubes(tmp_path):
    subset = mirabest_catalog().iloc[:3].reset_index(drop=True)
    bands = subset.rename(columns={"file": "file_first"})
    coarse_files = []  # a second band: the same real sky at half the resolution
    for i, f in enumerate(subset["file"]):
        coarse, coarse_wcs = _block_average(*read_image(MIRABEST / f)[:2])
        coarse_files.append(str(_write(tmp_path / f"coarse{i}.fits", [fits.PrimaryHDU(coarse, coarse_wcs.to_header())])))
    bands["file_coarse"] = coarse_files
    folder = _catalogue_dir(tmp_path, bands)
    images, loaded, _, skipped = load_fits_catalogue(folder, pixels=40, progress=False)
    assert images.shape == (3, 2, 40, 40) and not skipped
    assert loaded.attrs["bands"] == ["first", "coarse"]
    assert not any(c.startswith("file") for c in loaded.columns)
    assert all(_correlation(im[0], im[1]) > 0.8 for im in images)

    # a cube: three real planes along a spectral axis
    hdu = _real_hdu(0)
    h = hdu.header
    h["NAXIS"], h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"] = 3, "FREQ", 1.4e9, 1e8, 1.0
    planes = np.stack([hdu.data, 2 * hdu.data, 3 * hdu.data])
    cube = _write(tmp_path / "cube.fits", [fits.PrimaryHDU(planes, h)])
    data, _, _ = read_image(cube)
    assert data.shape == (3, 150, 150)
    row = mirabest_catalog().iloc[0]
    folder = _catalogue_dir(tmp_path, pd.DataFrame({"file": [str(cube)], "ra": [row["ra"]], "dec": [row["dec"]]}),
                            name="cube")
    images, loaded, _, _ = load_fits_catalogue(folder, pixels=40, progress=False)
    assert images.shape == (1, 3, 40, 40)
    assert np.allclose(images[0, 2], 3 * images[0, 0], equal_nan=True)
    assert loaded.attrs["bands"] == ["plane0", "plane1", "plane2"]


def test_bad_catalogue_folders_get_specific_messages(tmp_path):
    with pytest.raises(InputError, match="FITS catalogue folder not found"):
        load_fits_catalogue(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no catalog.csv"):
        load_fits_catalogue(tmp_path / "empty")
    (tmp_path / "nofile").mkdir()
    pd.DataFrame({"ra": [1.0], "declination": [2.0]}).to_csv(tmp_path / "nofile" / "catalog.csv", index=False)
    with pytest.raises(InputError, match=r"lacks the column\(s\) file \(or file_<band>\), dec"):
        load_fits_catalogue(tmp_path / "nofile")
    (tmp_path / "badyaml").mkdir()
    pd.DataFrame({"file": [str(mirabest_file(0))], "ra": [10.451], "dec": [-9.284]}).to_csv(
        tmp_path / "badyaml" / "catalog.csv", index=False)
    (tmp_path / "badyaml" / "columns.yaml").write_text("z: redshift\n")
    with pytest.raises(InputError, match="wrong entries: z"):
        load_fits_catalogue(tmp_path / "badyaml", progress=False)


def test_reading_a_catalogue_reports_its_progress_to_a_job_file(tmp_path):
    """Issue 12: encoder fine-tuning showed an empty bar while it read the images; the job file now says how far."""
    from explorer.core.jobfile import JobFile, job_path, read_progress

    folder = _catalogue_dir(tmp_path, mirabest_catalog().iloc[:60].copy())
    heard = []
    job = JobFile(tmp_path, "head")
    load_fits_catalogue(folder, pixels=50, progress=False,
                        on_progress=lambda done, total: (heard.append((done, total)), job.reading(done, total)))
    assert [d for d, _ in heard] == list(range(1, 61)) and {t for _, t in heard} == {60}
    progress = read_progress(job_path(tmp_path, "head"))
    assert progress.state == "loading" and progress.fraction == 1.0 and "60 of 60" in progress.message
