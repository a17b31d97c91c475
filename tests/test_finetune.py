"""Encoder fine-tuning: layer-wise lr decay, frozen stages, the loop, checkpoint checks and the CLI."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.core.bundle import DataInfo, EncoderInfo, Manifest, load_bundle, sha256_file, write_bundle
from explorer.core.encoder import build_encoder, embed
from explorer.core.errors import InputError
from explorer.core.heads import LabelSet, Task, classification_metrics, label_set
from explorer.core.preprocess import Preprocessing, preprocess, to_thumbnails
from explorer.core.search import build_index
from training import finetune as ft
from training.config import TrainConfig
from training.data import load_data
from training.train import learning_rate

REPO = Path(__file__).resolve().parents[1]
SIM_SPEC = "sim:radio?n=200&seed=1"
PARAMS = Preprocessing(input_pixels=32)  # the demo's small encoder input keeps CPU tests quick


def sim_bundle_at(folder: Path) -> Path:
    """A bundle of 200 simulated sources embedded by a random ResNet-18, with its checkpoint beside it."""
    data = load_data(SIM_SPEC, progress=False)
    torch.manual_seed(0)
    encoder, _ = build_encoder("resnet18", 1)
    checkpoint = folder / "run" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    config = TrainConfig(preprocessing=PARAMS)
    torch.save({"config": config.to_dict(), "data_spec": SIM_SPEC, "epoch": 1, "step": 1,
                "model": {f"encoder.{k}": v for k, v in encoder.state_dict().items()}}, checkpoint)
    pre = preprocess(data.images, PARAMS)
    embeddings = embed(encoder, pre, PARAMS, progress=False)
    manifest = Manifest(encoder=EncoderInfo("resnet18", 1, preprocessing=PARAMS.to_dict(),
                                            checkpoint_sha256=sha256_file(checkpoint)),
                        data=DataInfo(spec=SIM_SPEC, pixels=150, pixel_scale_arcsec=1.8), columns=data.columns)
    return write_bundle(folder / "sim", manifest=manifest, catalog=data.catalog, embeddings=embeddings,
                        map_xy=embeddings[:, :2], thumbnails=to_thumbnails(pre), index=build_index(embeddings)[0],
                        pca_mean=embeddings.mean(0), pca_components=np.eye(embeddings.shape[1], dtype=np.float32)[:2],
                        encoder_state=encoder.state_dict())


@pytest.fixture(scope="module")
def sim_bundle(tmp_path_factory):
    return sim_bundle_at(tmp_path_factory.mktemp("finetune"))


def model_for(classes=3, stages=1, supervised=False):
    torch.manual_seed(0)
    encoder, _ = build_encoder("resnet18", 1)
    labels = LabelSet(Task("c", "classification", tuple("abc"[:classes])), np.arange(classes), np.arange(classes))
    return ft.build_model(encoder, labels, np.arange(classes), ft.FinetuneRecipe(stages=stages, supervised=supervised))


def test_layerwise_decay_gives_the_documented_per_stage_learning_rates():
    recipe = ft.FinetuneRecipe(stages=3)
    model = model_for(stages=3)
    groups = ft.layerwise_param_groups(model, recipe.lr, recipe.decay)
    lr = 1e-3 * 64 / 256                                     # paper 1: 1e-3 x batch / 256
    assert recipe.lr == pytest.approx(lr)
    assert {g["name"]: g["lr"] for g in groups} == pytest.approx(
        {"head": lr, "layer4": lr * 0.75, "layer3": lr * 0.75 ** 2, "layer2": lr * 0.75 ** 3})
    trainable = {id(p) for g in groups for p in g["params"]}
    assert trainable == {id(p) for p in model.parameters() if p.requires_grad}
    assert not any(p.requires_grad for name in ("stem", "layer1") for p in model.stages[name].parameters())
    everything = ft.layerwise_param_groups(model_for(stages=5), lr, 0.75)
    assert [g["name"] for g in everything] == ["head", "layer4", "layer3", "layer2", "layer1", "stem"]
    assert everything[-1]["lr"] == pytest.approx(lr * 0.75 ** 5)
    baseline = ft.FinetuneRecipe(supervised=True)
    assert baseline.trainable is None and baseline.decay == 1.0


def test_the_cosine_schedule_keeps_the_ratio_between_stages():
    lr = 2.5e-4
    for step in (0, 10, 50, 99):
        head, layer4 = learning_rate(step, 100, 0, lr), learning_rate(step, 100, 0, lr * 0.75)
        assert layer4 == pytest.approx(0.75 * head)
    assert learning_rate(0, 100, 0, lr) == pytest.approx(lr) and learning_rate(100, 100, 0, lr) == pytest.approx(0.0)


def blobs_and_rings(n=48, size=48, seed=0):
    """Two morphologies a CNN separates easily: a compact blob, or a ring."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(xx, yy)
    codes = np.arange(n) % 2
    radius = rng.uniform(6, 10, n)
    images = np.where(codes[:, None, None] == 0, np.exp(-(r / radius[:, None, None]) ** 2),
                      np.exp(-((r - radius[:, None, None]) / 1.5) ** 2))
    images = images + 0.05 * rng.normal(size=images.shape)
    return torch.from_numpy(np.clip(images, 0, None).astype(np.float32)[:, None]), codes


def test_finetuning_learns_in_memory_images_and_leaves_frozen_stages_untouched():
    images, codes = blobs_and_rings()
    params = Preprocessing(crop_pixels=32, input_pixels=32)
    labels = LabelSet(Task("shape", "classification", ("blob", "ring")), np.arange(len(codes)), codes)
    model = model_for(classes=2, stages=2)
    frozen_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("stages.stem", "stages.layer1",
                                                                                           "stages.layer2"))}
    recipe = ft.FinetuneRecipe(stages=2, epochs=12, base_lr=4e-3)
    history = ft.finetune(model, images, params, labels, np.arange(len(codes)), recipe, device=torch.device("cpu"),
                          progress=False)
    assert history[-1] < 0.5 * history[0]
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen_before.items())   # weights and BatchNorm statistics
    prediction = ft.predict_images(model, images, params, np.arange(len(codes)), labels.task, device=torch.device("cpu"))
    assert classification_metrics(codes, prediction.codes, ("blob", "ring"))["accuracy"] >= 0.9
    assert set(model.trained_state()) == {k for k in after if not k.startswith(("stages.stem", "stages.layer1",
                                                                                 "stages.layer2"))}


def test_a_checkpoint_is_checked_against_the_bundle_encoder(sim_bundle, tmp_path):
    bundle = load_bundle(sim_bundle)
    run = sim_bundle.parent / "run"
    encoder = ft.bundle_encoder(bundle, run)                          # the matching run: accepted
    assert all(torch.equal(v, bundle.encoder().state_dict()[k]) for k, v in encoder.state_dict().items())
    other = tmp_path / "other.pt"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["epoch"] = 2
    torch.save(state, other)
    with pytest.raises(InputError, match="is not the encoder of bundle 'sim'"):
        ft.bundle_encoder(bundle, other)
    with pytest.raises(InputError, match="no checkpoint at"):
        ft.bundle_encoder(bundle, tmp_path / "missing.pt")


def test_the_cli_fine_tunes_and_writes_head_predictions_and_progress(sim_bundle, capsys):
    ft.main(["--bundle", str(sim_bundle), "--label-column", "morphology", "--labels", "100", "--out-name", "morph_ft",
             "--epochs", "2", "--device", "cpu"])
    job = json.loads((sim_bundle / "jobs" / "morph_ft.json").read_text())
    assert job["state"] == "done" and job["epoch"] == job["total"] == 2 and job["metrics"]["n"] == 40
    bundle = load_bundle(sim_bundle)
    assert {"morph_ft_class", "morph_ft_prob", "morph_ft_split"} <= set(bundle.catalog.columns)
    assert (bundle.catalog["morph_ft_split"] == "train").sum() == 100
    meta = json.loads((sim_bundle / "heads" / "morph_ft" / "head.json").read_text())
    assert meta["kind"] == "finetune" and meta["config"]["stages"] == 1 and meta["config"]["lr_decay"] == 0.75
    assert "morph_ft" in capsys.readouterr().out


def test_the_supervised_baseline_regresses_from_scratch(sim_bundle):
    ft.main(["--bundle", str(sim_bundle), "--label-column", "las_arcsec", "--log", "--labels", "60", "--out-name",
             "size_scratch", "--epochs", "1", "--device", "cpu", "--supervised", "--loss", "mse+scatter"])
    meta = json.loads((sim_bundle / "heads" / "size_scratch" / "head.json").read_text())
    assert meta["kind"] == "supervised" and meta["task"]["log"] and meta["config"]["supervised"]
    catalog = load_bundle(sim_bundle).catalog
    assert catalog["size_scratch_pred"].notna().all() and catalog["size_scratch_uncertainty"].gt(0).all()


@pytest.mark.parametrize("argv, message", [
    (["--device", "cuda"], "CUDA was requested but no CUDA GPU is available"),
    (["--labels", "5000"], "5000 labels were requested but only 160"),
    (["--label-column", "bent_type"], None),
    (["--label-column", "nope"], "no column 'nope'"),
    (["--checkpoint", "/nonexistent/run"], "no checkpoint at"),
])
def test_cli_bad_input_is_one_line_and_exit_status_2(sim_bundle, capsys, argv, message):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    base = {"--bundle": str(sim_bundle), "--label-column": "morphology", "--out-name": "bad", "--epochs": "1",
            "--device": "cpu"}
    options = dict(base, **dict(zip(argv[::2], argv[1::2])))
    if options["--label-column"] == "bent_type":
        # only bent tails carry a subtype: 40 labels, three classes, held-out 8
        options["--labels"] = "33"
        message = "33 labels were requested but only 32"
    with pytest.raises(SystemExit) as stop:
        ft.main([x for pair in options.items() for x in pair])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (sim_bundle / "heads" / "bad").exists()


def test_sigterm_cancels_cleanly(sim_bundle):
    command = [sys.executable, "-m", "training.finetune", "--bundle", str(sim_bundle), "--label-column", "morphology",
               "--out-name", "cancel_me", "--epochs", "500", "--device", "cpu"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress = sim_bundle / "jobs" / "cancel_me.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = json.loads(progress.read_text()) if progress.exists() else {}
        if state.get("epoch", 0) >= 1:
            break
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == ft.CANCELLED_EXIT, output
    assert "cancelled: nothing was written" in output and "Traceback" not in output
    assert json.loads(progress.read_text())["state"] == "cancelled"
    assert not (sim_bundle / "heads" / "cancel_me").exists()
    assert not (sim_bundle / "predictions" / "cancel_me.parquet").exists()


def test_bundle_images_line_up_with_the_bundle_rows(sim_bundle):
    bundle = load_bundle(sim_bundle)
    images = ft.bundle_images(bundle, progress=False)
    again = preprocess(load_data(SIM_SPEC, progress=False).images, bundle.preprocessing(), margin_for_rotation=True)
    assert images.shape[0] == bundle.n and np.array_equal(images.numpy(), again)
    labels = label_set(bundle.catalog, "morphology")
    assert len(labels) == bundle.n
