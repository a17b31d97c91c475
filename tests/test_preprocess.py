"""The one preprocessing path shared by training, embedding and queries."""
import numpy as np
import pytest
import torch

from explorer.core.preprocess import Preprocessing, asinh_stretch, encoder_input, preprocess, to_thumbnails

RMS = 1.5e-4  # FIRST-like noise, Jy/beam


def noisy_source(size=150, seed=0, peak=0.01):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    src = peak * np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * 4.0**2))
    return (src + rng.normal(0, RMS, (size, size))).astype(np.float32)


def test_output_is_the_centre_crop_scaled_to_unit_peak():
    out = preprocess(noisy_source(), Preprocessing())
    assert out.shape == (1, 1, 70, 70) and out.dtype == np.float32
    assert out.max() == pytest.approx(1.0)
    assert np.unravel_index(out[0, 0].argmax(), (70, 70)) in {(34, 34), (34, 35), (35, 34), (35, 35)}


def test_noise_below_three_sigma_is_zeroed():
    out = preprocess(noisy_source(), Preprocessing())[0, 0]
    corner = out[:15, :15]  # far from the source: pure noise
    assert (corner == 0).mean() > 0.99  # a 3-sigma floor removes ~99.9% of Gaussian noise pixels


def test_nans_become_zero_and_do_not_poison_the_noise_estimate():
    img = noisy_source()
    img[:40] = np.nan
    out = preprocess(img, Preprocessing())
    assert np.isfinite(out).all() and out.max() == pytest.approx(1.0)


def test_blank_image_stays_blank():
    out = preprocess(np.zeros((150, 150)), Preprocessing())
    assert np.count_nonzero(out) == 0


def test_rotation_margin_keeps_more_pixels():
    p = Preprocessing()
    assert preprocess(noisy_source(), p, margin_for_rotation=True).shape[-1] == p.rotation_safe_pixels


def test_multichannel_images_are_processed_per_channel():
    cube = np.stack([noisy_source(seed=1, peak=0.01), noisy_source(seed=2, peak=1.0)])[None]
    out = preprocess(cube, Preprocessing())
    assert out.shape == (1, 2, 70, 70)
    assert out[0, 0].max() == pytest.approx(1.0) and out[0, 1].max() == pytest.approx(1.0)


def test_encoder_input_resamples_the_crop():
    pre = preprocess(noisy_source(), Preprocessing(input_pixels=32), margin_for_rotation=True)
    x = encoder_input(pre, Preprocessing(input_pixels=32))
    assert x.shape == (1, 1, 32, 32)
    direct = encoder_input(preprocess(noisy_source(), Preprocessing()), Preprocessing(input_pixels=32))
    assert torch.allclose(x, direct, atol=2e-3)  # same pixels whichever crop the caller kept (float rounding)


def test_thumbnails_are_uint8_with_one_fixed_stretch():
    pre = np.linspace(0, 1, 70 * 70, dtype=np.float32).reshape(1, 1, 70, 70)
    thumb = to_thumbnails(pre)
    assert thumb.dtype == np.uint8 and thumb.shape == (1, 70, 70)
    assert thumb[0, 0, 0] == 0 and thumb[0, -1, -1] == 255
    assert np.all(np.diff(thumb.ravel().astype(int)) >= 0)
    assert asinh_stretch(np.array([0.05]))[0] > 0.05  # faint emission is lifted
