"""Fine-tune a bundle's encoder on its labels (paper 1, Table 4), or train the same network from scratch.

    python -m training.finetune --bundle B --label-column C --labels N --out-name NAME [--device auto]

Recipe: the last n backbone stages are unfrozen (default 1) with layer-wise lr decay rho (default
0.75): lr_i = lr * rho^i, i counted from the head (head 0, layer4 1, layer3 2, layer2 3, layer1 4,
stem 5); AdamW, lr = 1e-3 * batch / 256, batch 64, weight decay 0.005, cosine schedule; paper 1's
fine-tune augmentations (rotation, centre crop, random resized crop 0.9-1.0, flips). Frozen stages
stay in eval mode, so their BatchNorm statistics do not move. ``--supervised`` is the baseline:
the same architecture and labels, random initialisation, every stage trained, no decay.

The images come from the bundle's data spec (``manifest.data.spec``), the encoder from the
bundle (or ``--checkpoint``, checked against the manifest's sha256). The head goes to
``<bundle>/heads/NAME/`` and predictions for every source to ``<bundle>/predictions/NAME.parquet``.
Progress is written to ``<bundle>/jobs/NAME.json`` (state, epoch, total, metrics) for the app to
poll; SIGTERM cancels cleanly (state "cancelled", nothing half-written, exit status 143).
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("finetune")

import copy
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from explorer.core.bundle import Bundle, load_bundle, sha256_file
from explorer.core.encoder import build_encoder, resolve_device
from explorer.core.errors import InputError, cli_entry
from training import cli
from explorer.core.jobfile import JobFile
from explorer.core.heads import (BandwiseHead, Cancelled, HeadSpec, LabelSet, Prediction, check_new_name, loss_function, outputs_for,
                            prepare, publish, score)
from explorer.core.preprocess import Preprocessing, encoder_input
from training.augment import AugmentConfig, augment
from training.data import load_data
from training.dataset import preprocess_rows
from training.train import encoder_from_checkpoint, learning_rate, load_checkpoint

CANCELLED_EXIT = 128 + signal.SIGTERM


@dataclass(frozen=True)
class FinetuneRecipe:
    stages: int = 1               # last n backbone stages unfrozen (0: only the head trains)
    lr_decay: float = 0.75        # rho
    base_lr: float = 1e-3         # lr = base_lr * batch_size / 256
    batch_size: int = 64
    weight_decay: float = 0.005
    epochs: int = cli.FINETUNE_EPOCHS
    supervised: bool = False      # the from-scratch baseline: random init, all stages, no decay
    head_epochs: int = 0          # first, the head alone with the backbone frozen (paper 2: 10 epochs)
    head_lr: float = 1e-3         # the head's lr in those epochs
    head: str = "linear"          # or "bandwise": paper 4's Table S2 head (explorer.core.heads.BandwiseHead)

    @property
    def lr(self) -> float:
        return self.base_lr * self.batch_size / 256

    @property
    def trainable(self) -> int | None:
        """Stages to train, counted from the head; None: all of them."""
        return None if self.supervised else self.stages

    @property
    def decay(self) -> float:
        return 1.0 if self.supervised else self.lr_decay


class FinetuneModel(nn.Module):
    """Encoder stages, global average pooling and a head (linear, or paper 4's Table S2 on a band-wise encoder,
    whose stages see each band alone); the first stages can be frozen."""

    def __init__(self, encoder: nn.Module, outputs: int, trainable: int | None, head: str = "linear"):
        super().__init__()
        stages = encoder.stages()
        trainable = len(stages) if trainable is None else trainable
        if not 0 <= trainable <= len(stages):
            raise InputError(f"--stages must be between 0 and {len(stages)}, got {trainable}")
        self.stages = nn.ModuleDict(stages)
        self.fixed = list(stages)[:len(stages) - trainable]
        self.bands = getattr(encoder, "bands", 0) if hasattr(encoder, "band_features") else 0
        self.dim = encoder.dim
        if head == "bandwise":
            if not self.bands:
                raise InputError("--finetune-head bandwise needs a band-wise encoder (a *-bandwise architecture)")
            self.head = BandwiseHead(encoder.band_dim, self.bands, outputs)
        else:
            self.head = nn.Linear(encoder.dim, outputs)
        self.register_buffer("target_mean", torch.zeros(1))
        self.register_buffer("target_std", torch.ones(1))
        self.freeze_backbone(False)

    def freeze_backbone(self, frozen: bool) -> None:
        """Freeze every stage (a head-only phase), or only the recipe's fixed ones."""
        self.frozen = list(self.stages) if frozen else self.fixed
        for name, stage in self.stages.items():
            stage.requires_grad_(name not in self.frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sources = len(x)
        if self.bands:
            x = x.reshape(-1, 1, *x.shape[-2:])
        for name, stage in self.stages.items():
            if name in self.frozen:
                with torch.no_grad():
                    x = stage(x)
            else:
                x = stage(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1).reshape(sources, self.dim))

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen:  # frozen BatchNorm keeps the pre-trained statistics
            self.stages[name].eval()
        return self

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The tensors training changed: the head, the unfrozen stages, the target scaling."""
        return {k: v for k, v in self.state_dict().items()
                if not any(k.startswith(f"stages.{name}.") for name in self.frozen)}


def layerwise_param_groups(model: FinetuneModel, lr: float, decay: float) -> list[dict]:
    """One optimiser group per trainable part: lr_i = lr * decay^i, i = 0 for the head, 1 for the last stage, ..."""
    groups = [{"name": "head", "params": list(model.head.parameters()), "lr": lr, "peak_lr": lr}]
    for i, name in enumerate(reversed(list(model.stages)), start=1):
        if name not in model.frozen:
            rate = lr * decay ** i
            groups.append({"name": name, "params": list(model.stages[name].parameters()), "lr": rate, "peak_lr": rate})
    return groups


def build_model(encoder: nn.Module, labels: LabelSet, train: np.ndarray, recipe: FinetuneRecipe) -> FinetuneModel:
    """A fine-tune model around a copy of ``encoder`` (the caller's stays untouched)."""
    model = FinetuneModel(copy.deepcopy(encoder), outputs_for(labels.task), recipe.trainable, recipe.head)
    if labels.task.kind == "regression":
        y = labels.y[train]
        model.target_mean.fill_(float(y.mean()))
        model.target_std.fill_(max(float(y.std()), 1e-12))
    return model


def fresh_encoder(bundle: Bundle) -> nn.Module:
    """A randomly initialised encoder of the bundle's architecture: the supervised baseline's start."""
    enc = bundle.manifest.encoder
    if enc is None:
        raise InputError(f"bundle {bundle.name!r} does not describe its encoder")
    try:
        return build_encoder(enc.architecture, enc.in_channels)[0]
    except ValueError as e:
        raise InputError(f"bundle {bundle.name!r}: {e}") from None


def finetune(model: FinetuneModel, images: torch.Tensor, params: Preprocessing, labels: LabelSet, train: np.ndarray,
             recipe: FinetuneRecipe, *, device: torch.device, seed: int = 0, weighted: bool = True, loss: str = "mse",
             alpha: float = 1.0, on_epoch: Callable[[int, int, float], None] | None = None,
             cancel: threading.Event | None = None, progress: bool = True) -> list[float]:
    """Train ``model`` on the preprocessed images of ``labels.rows[train]``; returns the loss per epoch.

    ``images`` are the bundle's preprocessed images with a rotation margin, indexed by bundle row. With
    ``recipe.head_epochs``, the head first trains alone at ``recipe.head_lr`` (its own cosine schedule), then the
    recipe's stages join for ``recipe.epochs``.
    """
    rows = torch.from_numpy(labels.rows[train])
    if labels.task.kind == "classification":
        targets = torch.from_numpy(labels.y[train])
    else:
        targets = ((torch.from_numpy(labels.y[train]) - model.target_mean.double()) / model.target_std.double()).float()
    loss_fn = loss_function(labels.task, labels.y[train], weighted=weighted, loss=loss, alpha=alpha, device=device)
    model.to(device)
    optimizer = torch.optim.AdamW(layerwise_param_groups(model, recipe.lr, recipe.decay), lr=recipe.lr,
                                  weight_decay=recipe.weight_decay)
    aug = AugmentConfig.finetune()
    n = len(rows)
    batch_size = min(recipe.batch_size, n)
    steps_per_epoch = max(1, n // batch_size)   # whole batches only: BatchNorm dislikes a batch of one
    total_steps = recipe.epochs * steps_per_epoch
    views = torch.Generator(device=device).manual_seed(seed)
    head_steps = recipe.head_epochs * steps_per_epoch
    epochs = recipe.head_epochs + recipe.epochs
    step, history = 0, []
    bar = tqdm(range(epochs), desc="fine-tuning", unit="epoch", disable=not progress)
    for epoch in bar:
        head_only = epoch < recipe.head_epochs
        model.freeze_backbone(head_only)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        model.train()
        total = 0.0
        for i in range(steps_per_epoch):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, head_steps, 0, recipe.head_lr) if head_only else \
                    learning_rate(step - head_steps, total_steps, 0, group["peak_lr"])
            batch = order[i * batch_size:(i + 1) * batch_size]
            x = images[rows[batch]].to(device, non_blocking=True)
            with torch.no_grad():
                x = augment(x, aug, params, views)
            value = loss_fn(model(x), targets[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            step += 1
            total += float(value.detach())
        history.append(total / steps_per_epoch)
        bar.set_postfix(loss=f"{history[-1]:.4f}")
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, history[-1])
    model.freeze_backbone(False)
    model.eval()
    return history


@torch.no_grad()
def predict_images(model: FinetuneModel, images: torch.Tensor, params: Preprocessing, rows: np.ndarray, task, *,
                   device: torch.device, batch_size: int = 256, progress: bool = False) -> Prediction:
    """The model's prediction for the images at bundle ``rows`` (centre crop, no augmentation)."""
    model.to(device).eval()
    outs = []
    for start in tqdm(range(0, len(rows), batch_size), desc="predicting", unit="batch", disable=not progress):
        x = encoder_input(images[torch.from_numpy(rows[start:start + batch_size])], params).to(device)
        outs.append(model(x).float().cpu())
    out = torch.cat(outs) if outs else torch.zeros((0, outputs_for(task)))
    if task.kind == "classification":
        return Prediction(task, proba=torch.softmax(out, 1).numpy())
    return Prediction(task, value=(out[:, 0].double() * model.target_std.double().cpu()
                                   + model.target_mean.double().cpu()).numpy())


def bundle_images(bundle: Bundle, *, progress: bool = True, on_progress=None) -> torch.Tensor:
    """The bundle's images, preprocessed with a rotation margin, row-aligned with the bundle.
    ``on_progress(done, total)`` hears about the images read."""
    data = bundle.manifest.data
    spec = data.spec
    if not spec:
        raise InputError(f"bundle {bundle.name!r} does not record its data spec, so its images cannot be reloaded")
    source = load_data(spec, pixels=data.pixels, pixel_scale_arcsec=data.pixel_scale_arcsec, progress=progress,
                       on_progress=on_progress)
    position = {str(i): k for k, i in enumerate(source.catalog["id"].astype(str))}
    ids = bundle.catalog["id"].astype(str)
    missing = [i for i in ids if i not in position]
    if missing:
        raise InputError(f"{len(missing)} bundle source(s) are not in the data {spec!r} (e.g. {missing[0]}); "
                         "the bundle was built from other data")
    rows = [position[i] for i in ids]
    return torch.from_numpy(preprocess_rows(source, rows, bundle.preprocessing(), margin_for_rotation=True))


def bundle_encoder(bundle: Bundle, checkpoint: str | Path | None = None) -> nn.Module:
    """The bundle's encoder, or a checkpoint's after checking it is the one the bundle was built with."""
    if checkpoint is None:
        return bundle.encoder()
    checkpoint = Path(checkpoint)
    path = checkpoint / "checkpoint.pt" if checkpoint.is_dir() else checkpoint
    if not path.is_file():
        raise InputError(f"no checkpoint at {path}")
    expected = bundle.manifest.encoder.checkpoint_sha256 if bundle.manifest.encoder else ""
    actual = sha256_file(path)
    if expected != actual:
        raise InputError(f"checkpoint {path} (sha256 {actual[:12]}…) is not the encoder of bundle {bundle.name!r} "
                         f"(sha256 {str(expected)[:12]}…); use that run's checkpoint or none")
    return encoder_from_checkpoint(load_checkpoint(path))[0]


def run_finetune(bundle_path: str | Path, spec: HeadSpec, recipe: FinetuneRecipe, *, checkpoint=None,
                 cancel: threading.Event | None = None, progress: bool = True) -> dict:
    """Fine-tune (or train from scratch), score on the held-out labels, and publish into the bundle."""
    check_new_name(bundle_path, spec.name, replace=spec.replace)
    job = JobFile(bundle_path, spec.name)
    job.update(state="loading", message="reading labels and images")
    try:
        bundle = load_bundle(bundle_path)
        split = prepare(bundle.catalog, spec, bundle.column_unit(spec.column))
        device = resolve_device(spec.device)
        encoder = fresh_encoder(bundle) if recipe.supervised else bundle_encoder(bundle, checkpoint)
        images = bundle_images(bundle, progress=progress, on_progress=job.reading)
        params = bundle.preprocessing()
        torch.manual_seed(spec.seed)
        model = build_model(encoder, split.labels, split.train, recipe)
        t0 = time.perf_counter()
        job.update(state="running", total=recipe.head_epochs + recipe.epochs, message="training")
        finetune(model, images, params, split.labels, split.train, recipe, device=device, seed=spec.seed,
                 weighted=spec.weighted, loss=spec.loss, alpha=spec.alpha, cancel=cancel, progress=progress,
                 on_epoch=lambda epoch, total, loss: job.update(epoch=epoch, total=total, loss=loss))
        seconds = time.perf_counter() - t0
        job.update(state="predicting", message="predicting every source")
        task = split.labels.task
        test_rows = split.labels.rows[split.test]
        metrics = score(split.labels, split.test, predict_images(model, images, params, test_rows, task, device=device)) \
            if len(split.test) else {}
        prediction = predict_images(model, images, params, np.arange(bundle.n), task, device=device, progress=progress)
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        meta = {"kind": "supervised" if recipe.supervised else "finetune", "dim": int(model.dim),
                "config": {**asdict(recipe), "lr": recipe.lr, "seconds": round(seconds, 1), "device": str(device),
                           "encoder": bundle.manifest.encoder.architecture if bundle.manifest.encoder else None,
                           "encoder_sha256": bundle.manifest.encoder.checkpoint_sha256 if bundle.manifest.encoder else None}}
        publish(bundle, spec, split, prediction, model.trained_state(), meta, metrics, [])
    except Cancelled:
        job.update(state="cancelled", message="cancelled; nothing was written")
        raise
    except InputError as e:
        job.update(state="failed", message=str(e))
        raise
    except Exception as e:  # the app shows the job file: say what broke there too
        job.update(state="failed", message=f"{type(e).__name__}: {e}")
        raise
    job.update(state="done", metrics=metrics, message=f"trained in {seconds:.0f} s")
    return metrics


def recipe_from(args, *, supervised: bool = False) -> FinetuneRecipe:
    return FinetuneRecipe(stages=args.stages, lr_decay=args.lr_decay, epochs=args.epochs or FinetuneRecipe.epochs,
                          base_lr=args.base_lr, head_epochs=0 if supervised else args.head_epochs,
                          head_lr=args.head_lr, head=args.finetune_head, supervised=supervised)


@cli_entry
def main(argv=None):
    parser = cli.parser("finetune")
    args = parser.parse_args(argv)
    spec = HeadSpec(column=args.label_column, name=args.out_name, head="supervised" if args.supervised else "finetune",
                    task=args.task, log=args.log, budget=args.labels, test_fraction=args.test_fraction, seed=args.seed,
                    device=args.device, weighted=not args.no_class_weights, loss=args.loss, alpha=args.alpha,
                    curve_points=0, replace=args.replace)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    try:
        metrics = run_finetune(args.bundle, spec, recipe_from(args, supervised=args.supervised),
                               checkpoint=args.checkpoint, cancel=cancel)
    except Cancelled:
        print("cancelled: nothing was written", flush=True)
        raise SystemExit(CANCELLED_EXIT)
    shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    print(f"{spec.name}: {shown}; head and predictions written into {args.bundle}")


if __name__ == "__main__":
    main()
