"""Data-parallel training: two CPU processes (gloo) train like one process on the same global batch.

Each of the two processes trains on half of the global batch, with BatchNorm statistics over the
whole batch (training.distributed.GlobalBatchNorm) and gradients averaged by
DistributedDataParallel. Kept tiny: 32 simulated sources, 16 px, 4 steps.

What "the same trajectory" can mean here: on these sparse radio images (most pixels zero after
the noise clip) the early BatchNorm channels have almost no variance, and a single process's
float32 BatchNorm gets the early layers' gradients wrong by ~1-2% (against float64). The global
statistics are accumulated in float64, so the 2-process gradients match a float64 single-process
step to ~1e-5 (the first test); the float32 CLI runs then agree to a few per cent (the second).
"""
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from explorer.core.config import REPO_ROOT
from explorer.core.encoder import build_encoder
from explorer.core.errors import InputError
from explorer.core.preprocess import preprocess
from training.augment import augment
from training.config import config_from_dict
from training.data import load_data
from training.distributed import Processes, sync_batchnorm
from training.methods import method_class
from training.train import BASELINES, CHECKPOINT, LOSS_LOG, _train, encoder_from_checkpoint, load_checkpoint

DATA = "sim:radio?n=32&seed=5"
TINY = {
    "name": "ddp-test", "method": "byol", "seed": 3,
    "encoder": {"architecture": "resnet18", "in_channels": 1},
    "preprocessing": {"clip_sigma": 3.0, "crop_pixels": 70, "input_pixels": 16},
    "byol": {"projection_hidden": 64, "projection_dim": 32, "prediction_hidden": 64},
    "optim": {"epochs": 2, "batch_size": 16, "base_lr": 0.2, "warmup_epochs": 1},
}


SMALL = {"byol": TINY["byol"], "simsiam": {"projection_hidden": 64, "projection_dim": 64, "prediction_hidden": 16}}


def method(name: str, dtype=torch.float32):
    torch.manual_seed(TINY["seed"])
    encoder, dim = build_encoder("resnet18", 1)
    cls = method_class(name)
    return cls(encoder, dim, cls.Config(**SMALL[name])).to(dtype)


def first_views() -> tuple[torch.Tensor, torch.Tensor]:
    """The two augmented views of the first global batch, drawn as training.train draws them."""
    config = config_from_dict(TINY)
    images = torch.from_numpy(preprocess(load_data(DATA, progress=False).images, config.preprocessing,
                                         margin_for_rotation=True))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed * 100_003))
    views = torch.Generator().manual_seed(config.seed * 100_019)
    batch = images[order[:config.optim.batch_size]]
    return (augment(batch, config.augmentation, config.preprocessing, views),
            augment(batch, config.augmentation, config.preprocessing, views))


def gradients(model) -> dict[str, np.ndarray]:
    return {n: p.grad.double().numpy() for n, p in model.named_parameters() if p.grad is not None}


def one_step_on_a_share(rank: int, port: int, name: str, view1, view2, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = sync_batchnorm(method(name), torch.device("cpu"))
    replicas = torch.nn.parallel.DistributedDataParallel(model)
    share = slice(rank * len(view1) // 2, (rank + 1) * len(view1) // 2)
    replicas({"views": (view1[share], view2[share])}).backward()
    if rank == 0:
        results.put(gradients(model))
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("name, checked", [
    ("byol", ("encoder.conv1.weight", "encoder.bn1.weight", "encoder.layer2.0.conv1.weight",
              "encoder.layer4.1.bn2.bias", "projector.0.weight", "predictor.3.weight")),
    ("simsiam", ("encoder.conv1.weight", "encoder.layer3.1.conv2.weight", "projector.0.weight",
                 "projector.6.weight", "predictor.3.weight")),
])
def test_a_two_process_step_has_the_gradients_of_the_whole_global_batch(name, checked):
    view1, view2 = first_views()
    exact = method(name, torch.float64)
    exact({"views": (view1.double(), view2.double())}).backward()
    reference = gradients(exact)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=one_step_on_a_share, args=(r, port, name, view1, view2, results))
               for r in (0, 1)]
    for w in workers:
        w.start()
    shared = results.get(timeout=120)
    for w in workers:
        w.join(timeout=60)
    assert shared.keys() == reference.keys()
    for weight in checked:
        scale = np.abs(reference[weight]).max()
        assert np.abs(shared[weight] - reference[weight]).max() < 1e-4 * scale, weight


def train_cli(config, out, *launcher):
    return subprocess.run([*launcher, "-m", "training.train", "--config", str(config), "--data", DATA,
                           "--out", str(out), "--device", "cpu"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    single = train_cli(config, root / "single", sys.executable)
    assert single.returncode == 0, single.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    double = train_cli(config, root / "ddp", *torchrun)
    assert double.returncode == 0, double.stderr
    return root / "single", root / "ddp", double


def test_torchrun_with_two_processes_follows_the_single_process_losses(runs):
    single, ddp, _ = runs
    one, two = pd.read_csv(single / LOSS_LOG), pd.read_csv(ddp / LOSS_LOG)
    assert list(one["epoch"]) == list(two["epoch"]) == [0, 1, 2]  # epoch 0: the monitor's random-init row
    np.testing.assert_allclose(two["effective_rank"].iloc[0], one["effective_rank"].iloc[0], rtol=1e-4)
    one, two = one[one["epoch"] > 0], two[two["epoch"] > 0]
    assert list(one["processes"]) == [1, 1] and list(two["processes"]) == [2, 2]
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=0.03)
    assert abs(one["loss"].iloc[1] - one["loss"].iloc[0]) > 0.1  # it trained: the tolerance is small beside that


def test_only_rank_zero_writes_and_its_checkpoint_is_a_plain_one(runs):
    _, ddp, double = runs
    assert sorted(p.name for p in ddp.iterdir()) == sorted([BASELINES, CHECKPOINT, LOSS_LOG])
    assert double.stdout.count("checkpoint:") == 1
    state = load_checkpoint(ddp / CHECKPOINT)
    assert not any("module." in k for k in state["model"])
    encoder, _ = encoder_from_checkpoint(state)  # BatchNorm layers saved as plain BatchNorm
    assert isinstance(encoder.bn1, torch.nn.BatchNorm2d)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    config = config_from_dict({**TINY, "optim": {**TINY["optim"], "batch_size": 15}})
    with pytest.raises(InputError, match="does not split evenly over 2 processes"):
        _train(config, DATA, tmp_path / "odd", torch.device("cpu"), Processes(rank=0, world_size=2), progress=False)
