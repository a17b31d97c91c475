"""Train paper 3's radio source detector (CLARAN) on simulated fields: one readable loop.

    python -m training.detector --config configs/claran_d1.yaml --out runs/claran-d1

The network, its input and post-filter are :mod:`explorer.core.detector`'s; the fields are
:mod:`training.radio_fields`'. Only fields whose every source is one of the six classes are used
(paper 3's selection). Augmentation: a horizontal flip of half the fields (no rotation, as the paper).
Momentum SGD with a short warm-up, gradient-norm clipping, and the paper's ×0.1 step at 5/8 of training
(50k of 80k iterations); a diverging loss stops the run with a message.
A checkpoint is written atomically after every epoch; rerunning the same command resumes.
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("detector")

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_path, check_output_folder, write_json
from explorer.core.backbones import IMAGE_ARCHITECTURES
from explorer.core.detector import INPUTS, DetectorConfig, build_detector, needs_infrared, render_input
from explorer.core.encoder import resolve_device
from explorer.core.errors import InputError, cli_entry
from training import cli
from training.options import build, fraction, limited, read_yaml
from training.radio_fields import Fields, open_fields

CHECKPOINT = "checkpoint.pt"
LOSS_LOG = "loss.csv"
MARKER = "detector.json"       # the network's config: tells the explorer this folder is a detector


@dataclass
class NetworkRecipe:
    architecture: str = limited("resnet18", choices=IMAGE_ARCHITECTURES)
    input: str = limited("D1", choices=INPUTS)
    input_size: int = limited(264, 64, 1200)     # the 132-px field upscaled to this (paper: 600)
    fpn_channels: int = limited(128, 8)
    box_head: int = limited(1024, 16)           # paper: 4096


@dataclass
class DataRecipe:
    train: str = "sim:fields?n=1500&seed=0"
    test: str = "sim:fields?n=500&seed=1"


@dataclass
class OptimRecipe:
    epochs: int = limited(8, 1)
    batch_size: int = limited(4, 1)
    lr: float = limited(0.01, 0.0)
    momentum: float = fraction(0.9)
    weight_decay: float = limited(1.0e-4, 0.0)
    warmup_steps: int = limited(100, 0)
    decay_at: float = fraction(0.625)            # paper: x0.1 after 50k of 80k iterations
    clip_grad_norm: float = limited(10.0, 0.0)   # random-init detectors spike early without it


@dataclass
class DetectorRecipe:
    name: str = "claran"
    seed: int = limited(0, 0)
    detector: NetworkRecipe = field(default_factory=NetworkRecipe)
    data: DataRecipe = field(default_factory=DataRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)

    def to_dict(self) -> dict:
        return asdict(self)


def load_recipe(path) -> DetectorRecipe:
    return build(DetectorRecipe, read_yaml(path, "detector recipe"), str(path))


def rendered_inputs(fields: Fields, kind: str) -> tuple[np.ndarray, list[float]]:
    """The fields as the detector sees them [N, C, H, W], and D4's outside fill (the D3 mean; [] otherwise)."""
    if needs_infrared(kind) and fields.infrared is None:
        raise InputError(f"input {kind} needs a W1 image of every field, and these fields have none "
                         "(simulate them with python -m training.radio_fields)")
    infrared = [None] * len(fields.images) if fields.infrared is None else fields.infrared

    def render(as_kind, fill=None):
        return np.stack([render_input(r, as_kind, infrared=w, outside_fill=fill) for r, w in zip(fields.images, infrared)])

    if kind != "D4":
        return render(kind), []
    fill = [float(m) for m in render("D3").mean(axis=(0, 2, 3))]
    return render("D4", fill), fill


def inputs_and_targets(fields: Fields, kind: str, classes) -> tuple[np.ndarray, list[dict], list[float]]:
    """Rendered inputs [N, C, H, W], torchvision targets (boxes in pixel edges, labels 1..K), D4's fill."""
    inputs, fill = rendered_inputs(fields, kind)
    index = {c: i + 1 for i, c in enumerate(classes)}
    by_field = dict(tuple(fields.sources.groupby("field")))
    targets = []
    for field_id in fields.catalog["id"]:
        rows = by_field[field_id]
        targets.append({"boxes": torch.tensor(rows[["x0", "y0", "x1", "y1"]].to_numpy(np.float32) + 0.5),
                        "labels": torch.tensor([index[c] for c in rows["det_class"]], dtype=torch.int64)})
    return inputs, targets, fill


def flipped(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """The horizontal mirror of a field and its boxes (pixel-edge coordinates: x -> W - x)."""
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes}


def detector_config(recipe: DetectorRecipe, channel_mean, outside_fill=()) -> DetectorConfig:
    net = recipe.detector
    return DetectorConfig(architecture=net.architecture, input=net.input, input_size=net.input_size,
                          fpn_channels=net.fpn_channels, box_head=net.box_head,
                          channel_mean=[float(m) for m in channel_mean], outside_fill=list(outside_fill))


def load_detector(run_dir) -> tuple[torch.nn.Module, DetectorConfig]:
    """The trained detector of a run folder (or checkpoint file), in eval mode on the CPU."""
    path = Path(run_dir)
    path = path / CHECKPOINT if path.is_dir() else path
    if not path.is_file():
        raise InputError(f"no detector checkpoint at {path}; train one with python -m training.detector")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        config = DetectorConfig.from_dict(state["detector"])
        model = build_detector(config)
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, ValueError, EOFError) as e:
        raise InputError(f"{path} is not a detector checkpoint: {e}") from None
    return model.eval(), config


def train_detector(recipe: DetectorRecipe, run_dir, *, device: str = "auto", progress: bool = True) -> Path:
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT
    resumed = None
    if ckpt_path.exists():
        resumed = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if {**resumed["recipe"], "optim": {**resumed["recipe"]["optim"], "epochs": 0}} != \
                {**recipe.to_dict(), "optim": {**recipe.to_dict()["optim"], "epochs": 0}}:
            raise InputError(f"{run_dir} holds a detector run with a different recipe; choose a new --out")
        if resumed["epoch"] >= recipe.optim.epochs:
            return ckpt_path
    else:
        check_output_folder(run_dir, "detector run", lambda p: {f.name for f in p.iterdir()} <= {LOSS_LOG, MARKER},
                            overwrite=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    torch.manual_seed(recipe.seed)

    fields = open_fields(recipe.data.train, progress=progress).in_scope()
    if len(fields.catalog) == 0:
        raise InputError(f"{recipe.data.train} has no field whose sources are all in paper 3's six classes")
    probe = DetectorConfig()
    inputs, targets, fill = inputs_and_targets(fields, recipe.detector.input, probe.classes)
    config = detector_config(recipe, inputs.mean(axis=(0, 2, 3)), fill)   # the training set's mean, per channel
    model = build_detector(config).to(dev)
    optim = recipe.optim
    batch_size = min(optim.batch_size, len(inputs))
    steps_per_epoch = len(inputs) // batch_size
    total = optim.epochs * steps_per_epoch
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=optim.lr,
                                momentum=optim.momentum, weight_decay=optim.weight_decay)
    start_epoch, step, history = 0, 0, []
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        start_epoch, step, history = resumed["epoch"], resumed["step"], resumed["history"]

    images = torch.from_numpy(inputs)
    for epoch in range(start_epoch, optim.epochs):
        t0 = time.perf_counter()
        generator = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)   # a resumed run draws the same
        order = torch.randperm(len(images), generator=generator)
        flips = torch.rand(len(images), generator=generator) < 0.5
        model.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{optim.epochs}", unit="step", disable=not progress)
        for i in bar:
            lr = optim.lr * min(1.0, (step + 1) / max(optim.warmup_steps, 1)) * (0.1 if step >= optim.decay_at * total else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = [flipped(images[j], targets[j]) if flips[j] else (images[j], targets[j])
                     for j in order[i * batch_size:(i + 1) * batch_size].tolist()]
            parts = model([b[0].to(dev) for b in batch], [{k: v.to(dev) for k, v in b[1].items()} for b in batch])
            loss = sum(parts.values())
            if not torch.isfinite(loss):
                raise InputError(f"the detector's loss diverged at step {step} (lr {lr:.3g}); lower optim.lr "
                                 f"and rerun with a new --out")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim.clip_grad_norm)
            optimizer.step()
            step += 1
            losses.append({k: float(v.detach()) for k, v in parts.items()})
            bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.2g}")
        mean = pd.DataFrame(losses).mean().to_dict()
        history.append({"epoch": epoch + 1, "step": step, "loss": sum(mean.values()), **mean, "lr": lr,
                        "seconds": round(time.perf_counter() - t0, 2), "fields": len(images), "device": str(dev)})
        state = {"recipe": recipe.to_dict(), "detector": config.to_dict(), "epoch": epoch + 1, "step": step,
                 "model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history}
        with atomic_path(ckpt_path) as tmp:
            torch.save(state, tmp)
        with atomic_path(run_dir / LOSS_LOG) as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)
        write_json(run_dir / MARKER, config.to_dict())
    return ckpt_path


@cli_entry
def main(argv=None):
    args = cli.parser("detector").parse_args(argv)
    path = train_detector(load_recipe(args.config), args.out, device=args.device)
    print(f"checkpoint: {path}")


if __name__ == "__main__":
    main()
