"""Invariants of the batched BYOL augmentations (paper 1, Table 1)."""
import numpy as np
import pytest
import torch

from explorer.core.preprocess import Preprocessing, centre_crop, crop_and_resize
from training.augment import AugmentConfig, augment, gaussian_blur, rotate_and_crop

SIZE, CROP = 100, 70


def gaussian_blob(size=SIZE, x0=None, y0=None, sigma=3.0):
    c = (size - 1) / 2
    x0 = c if x0 is None else x0
    y0 = c if y0 is None else y0
    yy, xx = np.mgrid[:size, :size]
    return np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2)).astype(np.float32)


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_zero_rotation_is_the_centre_crop():
    x = torch.rand(3, 1, SIZE, SIZE)
    out = rotate_and_crop(x, torch.zeros(3), CROP)
    assert torch.equal(out, torch.as_tensor(centre_crop(x.numpy(), CROP)))


def test_quarter_turn_is_an_exact_pixel_permutation():
    x = torch.rand(1, 1, SIZE, SIZE)
    out = rotate_and_crop(x, torch.tensor([90.0]), CROP)
    crop = torch.as_tensor(centre_crop(x.numpy(), CROP))
    assert torch.equal(out, torch.rot90(crop, k=-1, dims=(-2, -1))) or torch.equal(out, torch.rot90(crop, k=1, dims=(-2, -1)))


def test_rotation_keeps_a_centred_source_centred_and_its_flux():
    blob = torch.as_tensor(gaussian_blob())[None, None].repeat(8, 1, 1, 1)
    out = rotate_and_crop(blob, torch.linspace(0, 350, 8), CROP)
    ref = out[0].sum()
    assert torch.allclose(out.sum(dim=(1, 2, 3)), ref.expand(8), rtol=0.02)
    peaks = [divmod(int(o.argmax()), CROP) for o in out[:, 0]]
    assert all(abs(r - (CROP - 1) / 2) <= 1 and abs(c - (CROP - 1) / 2) <= 1 for r, c in peaks)


def test_rotation_turns_an_off_centre_source_about_the_centre():
    c = (SIZE - 1) / 2
    blob = torch.as_tensor(gaussian_blob(x0=c + 20, y0=c, sigma=1.5))[None, None]
    out = rotate_and_crop(blob.repeat(2, 1, 1, 1), torch.tensor([0.0, 180.0]), CROP)
    r0, c0 = divmod(int(out[0, 0].argmax()), CROP)
    r1, c1 = divmod(int(out[1, 0].argmax()), CROP)
    centre = (CROP - 1) / 2
    assert abs((c0 - centre) + (c1 - centre)) <= 1 and abs((r0 - centre) + (r1 - centre)) <= 1
    assert abs(c0 - centre - 20) <= 1


def test_full_box_at_the_same_size_is_the_identity():
    x = torch.rand(2, 1, CROP, CROP)
    box = torch.tensor([[0.0, 0.0, CROP, CROP]] * 2)
    assert torch.allclose(crop_and_resize(x, box, CROP), x, atol=1e-6)


def test_views_have_the_right_shape_range_and_are_reproducible():
    x = torch.as_tensor(np.stack([gaussian_blob(sigma=s) for s in (2, 4, 6, 8)]))[:, None]
    cfg, sizes = AugmentConfig(), Preprocessing(crop_pixels=CROP, input_pixels=32)
    v1, v2 = augment(x, cfg, sizes, g(1)), augment(x, cfg, sizes, g(2))
    assert v1.shape == (4, 1, 32, 32)
    assert v1.min() >= 0 and v1.max() <= 1
    assert not torch.allclose(v1, v2)
    assert torch.equal(v1, augment(x, cfg, sizes, g(1)))


def test_augmentation_without_randomness_is_the_centre_crop():
    x = torch.rand(2, 1, SIZE, SIZE)
    cfg = AugmentConfig(rotation=False, crop_scale=(1, 1), crop_ratio=(1, 1), flip_p=0, jitter_p=0, blur_p=0)
    assert torch.allclose(augment(x, cfg, Preprocessing(crop_pixels=CROP, input_pixels=CROP), g()), torch.as_tensor(centre_crop(x.numpy(), CROP)), atol=1e-6)


def test_finetune_views_keep_a_centred_source_centred():
    blob = torch.as_tensor(gaussian_blob(sigma=4))[None, None].repeat(16, 1, 1, 1)
    out = augment(blob, AugmentConfig.finetune(), Preprocessing(crop_pixels=CROP, input_pixels=CROP), g())
    for o in out[:, 0]:
        r, c = divmod(int(o.argmax()), CROP)
        # a 0.9-area crop with aspect up to 4:3 shifts the centre by at most ~7.6 px
        assert abs(r - (CROP - 1) / 2) <= 8 and abs(c - (CROP - 1) / 2) <= 8


def test_blur_conserves_flux_and_widens_a_point_source():
    point = torch.zeros(1, 1, 41, 41)
    point[..., 20, 20] = 1.0
    blurred = gaussian_blur(point, torch.tensor([1.5]))
    assert blurred.sum().item() == pytest.approx(1.0, rel=1e-4)
    assert blurred.max() < 0.2


def test_rotation_margin_covers_the_crop():
    p = Preprocessing(crop_pixels=70)
    assert p.rotation_safe_pixels >= 70 * np.sqrt(2)
    assert (p.rotation_safe_pixels - 70) % 2 == 0
