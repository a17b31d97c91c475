"""Backbones: every architecture embeds, exposes its stages and feature maps, and takes any number of bands."""
import pytest
import torch
import torchvision

from explorer.core.backbones import IMAGE_ARCHITECTURES, build_backbone
from explorer.core.errors import InputError
from training.config import config_from_dict

DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "vgg16": 512, "vgg16_bn": 512}


@pytest.mark.parametrize("architecture", IMAGE_ARCHITECTURES)
def test_every_backbone_pools_maps_and_stages(architecture):
    torch.manual_seed(0)
    model = build_backbone(architecture, in_channels=3).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        pooled, maps = model(x), model.feature_maps(x)
    assert pooled.shape == (2, DIMS[architecture]) == (2, model.dim)
    assert len(maps) == len(model.stages()) == 5
    assert maps[-1].shape[1] == model.dim and all(m.shape[0] == 2 for m in maps)
    with torch.no_grad():  # the pooled embedding is the last feature map, averaged
        assert torch.allclose(pooled, maps[-1].mean(dim=(2, 3)), atol=1e-5)


def test_a_bandwise_backbone_sees_each_band_alone_through_one_shared_extractor():
    torch.manual_seed(0)
    model = build_backbone("resnet18-bandwise", in_channels=5).eval()
    x = torch.rand(2, 5, 32, 32)
    with torch.no_grad():
        pooled = model(x)
        alone = model.band_features(x[:, 3:4])
        shuffled = model(x[:, [3, 0, 1, 2, 4]])
        maps = model.feature_maps(x)
    assert pooled.shape == (2, 5 * 512) == (2, model.dim) and model.band_dim == 512
    assert torch.allclose(pooled.reshape(2, 5, 512)[:, 3], alone, atol=1e-5)   # band 3's slot is band 3 alone
    assert torch.allclose(shuffled.reshape(2, 5, 512)[:, 0], alone, atol=1e-5)  # shared weights, no band mixing
    assert len(maps) == len(model.stages()) == 6 and maps[-1].shape[:2] == (10, 512)
    assert model.trunk.conv1.in_channels == 1


def test_a_resnet_keeps_torchvisions_weight_names_and_initialisation():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    reference.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    reference.fc = torch.nn.Identity()
    torch.manual_seed(0)
    ours = build_backbone("resnet18", 1)
    a, b = reference.state_dict(), ours.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_unknown_architecture_is_refused_when_the_config_loads():
    with pytest.raises(InputError, match="unknown value 'resnet9'; choose one of resnet18"):
        config_from_dict({"encoder": {"architecture": "resnet9"}, "optim": {"epochs": 1}})
