"""Self-supervised methods: the shared parts, BYOL's EMA, and one contract every registered method keeps."""
import dataclasses

import numpy as np
import pytest
import torch

from explorer.core.encoder import build_encoder, embed
from explorer.core.preprocess import Preprocessing, preprocess
from training.augment import AugmentConfig, augment
from training.config import config_from_dict
from training.methods import METHODS, method_class
from training.methods.byol import BYOL, BYOLConfig
from training.methods.parts import cosine_momentum, learning_rate, negative_cosine, normalised_mse
from training.train import encoder_from_checkpoint, load_checkpoint, train

SIZES = Preprocessing(crop_pixels=32, input_pixels=32)
SMALL = {"byol": {"projection_hidden": 128, "projection_dim": 64, "prediction_hidden": 128},
         "simsiam": {"projection_hidden": 128, "projection_dim": 128, "prediction_hidden": 32}}
SMALL["lensiam"] = SMALL["simsiam"]
# The magnitude pretext regresses catalogue columns; on the radio simulator, two it has (NaN in one is skipped).
SMALL["magnitudes"] = {"columns": ("log_lum_1p4ghz", "peak_snr"), "scale": 30.0, "hidden": 32}
RADIO = ("sim:radio?n=16&seed=2", {}, 150)
DATA = {"lensiam": ("sim:lens?n=16&seed=2&pairs=1", {"pixels": 55, "pixel_scale_arcsec": 0.1}, 55),  # needs pairs
        "band_prediction": ("sim:clusters?n=16&seed=2", {"pixels": 48, "pixel_scale_arcsec": 0.396}, 48)}  # bands
# Band prediction needs a band-wise encoder over several bands (3 in the tiny batch, the cluster sky's 5 in a run).
ENCODERS = {"band_prediction": ("resnet18-bandwise", 3)}
RUN_CHANNELS = {"band_prediction": 5}


def test_normalised_mse_is_two_minus_twice_the_cosine():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    assert normalised_mse(p, z).item() == pytest.approx((0 + 2) / 2)


def test_negative_cosine_stops_the_gradient_of_the_target():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = negative_cosine(p, z)
    assert loss.item() == pytest.approx(-(1 + 2 ** -0.5) / 2)
    loss.backward()
    assert z.grad is None and p.grad is not None


def test_momentum_rises_from_base_to_one():
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert 0.996 < cosine_momentum(50, 100) < 1.0


def test_learning_rate_warms_up_then_decays():
    lrs = [learning_rate(s, 100, 10, 0.2) for s in range(100)]
    assert lrs[9] == pytest.approx(0.2) and lrs[0] < lrs[5] < lrs[9]
    assert lrs[-1] < 0.01 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_byol_target_is_an_ema_of_the_online_network():
    enc, dim = build_encoder("resnet18", 1)
    model = BYOL(enc, dim, BYOLConfig(64, 32, 64))
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = next(model.target_encoder.parameters()).clone()
    online = next(model.encoder.parameters())
    model.update_target(0.9)
    after = next(model.target_encoder.parameters())
    assert torch.allclose(after, 0.9 * before + 0.1 * online, atol=1e-6)
    assert not any(p.requires_grad for p in model.target_encoder.parameters())


def test_an_unknown_method_is_refused_when_the_config_loads():
    from explorer.core.errors import InputError

    with pytest.raises(InputError, match=f"unknown method 'simclr'; choose one of {', '.join(sorted(METHODS))}$"):
        config_from_dict({"method": "simclr", "optim": {"epochs": 1}})
    with pytest.raises(InputError, match="unknown key.*simsiam"):  # another method's section is a typo
        config_from_dict({"method": "byol", "simsiam": {}, "optim": {"epochs": 1}})


def _model(name):
    cls = method_class(name)
    torch.manual_seed(0)
    enc, dim = build_encoder(*ENCODERS.get(name, ("resnet18", 1)))
    return cls(enc, dim, cls.Config(**SMALL.get(name, {})))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_has_a_finite_loss_that_falls_on_a_tiny_batch(name):
    model = _model(name)
    assert model.views == "two_augmentations" or model.views  # declared
    opt = torch.optim.SGD(model.parameter_groups(), lr=0.05, momentum=0.9)
    images = torch.rand(16, 1, 48, 48) ** 4  # sparse, radio-like
    g = torch.Generator().manual_seed(0)
    targets = {"log_lum_1p4ghz": torch.linspace(20, 28, 16), "peak_snr": torch.linspace(5, 60, 16)}
    targets["peak_snr"][3] = float("nan")
    batches = [{"views": (augment(images, AugmentConfig(), SIZES, g), augment(images, AugmentConfig(), SIZES, g)),
                "targets": targets, "band_labels": torch.arange(16) % 3} for _ in range(2)]
    losses = []
    for step in range(12):
        loss = model(batches[step % 2])
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.on_step_end(step, 1000)
        losses.append(loss.item())
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < first - 0.1 * abs(first), losses


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_checkpoint_round_trips_and_its_encoder_embeds(name, tmp_path):
    spec, data, pixels = DATA.get(name, RADIO)
    architecture, _ = ENCODERS.get(name, ("resnet18", 1))
    channels = RUN_CHANNELS.get(name, 1)
    recipe = {"name": f"tiny-{name}", "method": name, "seed": 1, name: SMALL.get(name, {}), "data": data,
              "encoder": {"architecture": architecture, "in_channels": channels},
              "preprocessing": {"crop_pixels": 40, "input_pixels": 16},
              "optim": {"epochs": 1, "batch_size": 8, "base_lr": 0.05, "warmup_epochs": 0}}
    config = config_from_dict(recipe)
    ckpt = train(config, spec, tmp_path / "run", progress=False)
    state = load_checkpoint(ckpt)
    assert state["config"]["method"] == name and state["config"][name] == dataclasses.asdict(config.options)
    encoder, loaded = encoder_from_checkpoint(state)
    assert loaded == config
    model = method_class(name)(*build_encoder(architecture, channels), loaded.options)
    model.load_state_dict(state["model"])  # the whole method, not only the encoder
    images = np.random.default_rng(0).random((4, channels, pixels, pixels)).astype(np.float32)
    emb = embed(encoder, preprocess(images, loaded.preprocessing), loaded.preprocessing, progress=False)
    assert emb.shape == (4, 512 * channels) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_a_checkpoint_from_before_the_platform_still_loads_and_embeds(tmp_path):
    """The layout training.train wrote before methods became plug-ins: a map section, no crop_ratio/blur_sigma,
    no bands, a preprocessing without scaling options."""
    torch.manual_seed(0)
    model = BYOL(*build_encoder("resnet18", 1), BYOLConfig())
    old_config = {
        "name": "demo-radio", "method": "byol", "seed": 0,
        "encoder": {"architecture": "resnet18", "in_channels": 1},
        "data": {"pixels": 150, "pixel_scale_arcsec": 1.8},
        "preprocessing": {"clip_sigma": 3.0, "crop_pixels": 70, "input_pixels": 32, "scaling": "peak"},
        "byol": {"projection_hidden": 512, "projection_dim": 256, "prediction_hidden": 512, "base_momentum": 0.996},
        "augmentation": {"rotation": True, "crop_scale": [0.8, 1.0], "flip_p": 0.5, "jitter_p": 0.8,
                         "jitter_strength": 0.5, "blur_p": 0.1},
        "optim": {"epochs": 6, "batch_size": 256, "base_lr": 0.2, "momentum": 0.9, "weight_decay": 1.5e-6,
                  "warmup_epochs": 1},
        "map": {"pca_components": 200, "umap_neighbors": 15, "umap_min_dist": 0.1},
    }
    torch.save({"config": old_config, "data_spec": "sim:radio?n=8&seed=0", "epoch": 6, "step": 114,
                "model": model.state_dict()}, tmp_path / "checkpoint.pt")
    encoder, config = encoder_from_checkpoint(load_checkpoint(tmp_path))
    assert config.method == "byol" and config.options == BYOLConfig() and config.preprocessing.input_pixels == 32
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, model.encoder.state_dict()[name]), name
    images = np.random.default_rng(1).random((2, 1, 150, 150)).astype(np.float32)
    assert embed(encoder, preprocess(images, config.preprocessing), config.preprocessing, progress=False).shape == (2, 512)


def test_the_single_image_view_is_the_embedding_input():
    from explorer.core.preprocess import encoder_input
    from training.views import make_views

    config = config_from_dict({"optim": {"epochs": 1}, "preprocessing": {"input_pixels": 32}})
    images = torch.rand(3, 1, 100, 100)
    batch = make_views("single_image")({"images": images}, config, torch.Generator(), slice(None), 3)
    assert torch.equal(batch["views"][0], encoder_input(images, config.preprocessing))
    from explorer.core.errors import InputError

    with pytest.raises(InputError, match="unknown views 'pairs'"):
        make_views("pairs")
