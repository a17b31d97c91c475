"""BYOL: the loss, the EMA target and a few real optimisation steps."""
import pytest
import torch

from explorer.encoder import build_encoder
from training.augment import AugmentConfig, augment
from training.ssl import BYOL, cosine_momentum, normalised_mse
from training.train import learning_rate


def test_normalised_mse_is_two_minus_twice_the_cosine():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    assert normalised_mse(p, z).item() == pytest.approx((0 + 2) / 2)


def test_momentum_rises_from_base_to_one():
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert 0.996 < cosine_momentum(50, 100) < 1.0


def test_learning_rate_warms_up_then_decays():
    lrs = [learning_rate(s, 100, 10, 0.2) for s in range(100)]
    assert lrs[9] == pytest.approx(0.2) and lrs[0] < lrs[5] < lrs[9]
    assert lrs[-1] < 0.01 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_target_is_an_ema_of_the_online_network():
    enc, dim = build_encoder("resnet18", 1)
    model = BYOL(enc, dim, 64, 32, 64)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = next(model.target_encoder.parameters()).clone()
    online = next(model.encoder.parameters())
    model.update_target(0.9)
    after = next(model.target_encoder.parameters())
    assert torch.allclose(after, 0.9 * before + 0.1 * online, atol=1e-6)
    assert not any(p.requires_grad for p in model.target_encoder.parameters())


def test_a_few_byol_steps_lower_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    enc, dim = build_encoder("resnet18", 1)
    model = BYOL(enc, dim, 128, 64, 128)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    images = torch.rand(16, 1, 48, 48) ** 4  # sparse, radio-like
    cfg = AugmentConfig(crop_pixels=32, output_pixels=32)
    g = torch.Generator().manual_seed(0)
    views = [(augment(images, cfg, g), augment(images, cfg, g)) for _ in range(2)]
    losses = []
    for step in range(12):
        v1, v2 = views[step % 2]
        loss = model(v1, v2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_target(0.99)
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
