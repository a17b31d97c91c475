"""Self-supervised pre-training: one readable loop.

    python -m training.train --config configs/demo.yaml --data sim:radio?n=5000&seed=0 --out runs/demo

A checkpoint is written atomically after every epoch; rerunning the same command
resumes from ``<RUN_DIR>/checkpoint.pt``. ``loss.csv`` logs every epoch, with the representation
monitor's scores (:mod:`training.monitor`) every ``monitor.every`` epochs; epoch 0 is the random-init
encoder, and ``baselines.json`` holds it beside the pixel baseline. ``best.pt`` is the checkpoint with
the best monitored score (the monitor never sees the evaluation's test split).

Several GPUs or machines: the same command under ``torchrun`` (DistributedDataParallel; see
:mod:`training.distributed`). The global batch (``optim.batch_size``) is split across the
processes, so the run follows the same trajectory as one process; only rank 0 writes.

    torchrun --nproc_per_node 4 -m training.train --config configs/byol_resnet18.yaml --data ... --out runs/x
"""
from __future__ import annotations

if __name__ == "__main__":  # --help and bad arguments, before torch is imported (see training.cli)
    from training import cli as _cli

    _cli.parse_early("train")

import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from explorer.core.atomic import atomic_path, check_output_folder, write_json
from explorer.core.encoder import build_encoder, resolve_device
from explorer.core.errors import InputError, cli_entry
from training import cli
from training.config import TrainConfig, config_from_dict, load_config
from training.dataset import open_cutouts
from training.distributed import (assert_replicas_agree, main_process_first, mean_across, processes_from_env, start,
                                  stop, sync_batchnorm)
from training.methods import method_class
from training.methods.parts import learning_rate
from training.monitor import Monitor, describe
from training.views import make_views

CHECKPOINT = "checkpoint.pt"
BEST_CHECKPOINT = "best.pt"
LOSS_LOG = "loss.csv"
BASELINES = "baselines.json"
LEFTOVERS = {BASELINES, LOSS_LOG, BEST_CHECKPOINT}  # what a run writes before (or beside) its checkpoint


def load_checkpoint(run_dir: str | Path) -> dict:
    path = Path(run_dir)
    path = path / CHECKPOINT if path.is_dir() else path
    if not path.is_file():
        raise InputError(f"no checkpoint at {path}; train first with python -m training.train")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{path} is not a readable checkpoint: {e}") from None


def encoder_from_checkpoint(state: dict) -> tuple[torch.nn.Module, TrainConfig]:
    config = config_from_dict(state["config"], "checkpoint config", from_checkpoint=True)
    encoder, _ = build_encoder(config.encoder.architecture, config.encoder.in_channels)
    prefix = "encoder."
    encoder.load_state_dict({k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)})
    return encoder.eval(), config


def _comparable(config_dict: dict) -> dict:
    """What must match for a run to resume: everything but the number of epochs and the monitor."""
    return {**{k: v for k, v in config_dict.items() if k != "monitor"},
            "optim": {k: v for k, v in config_dict["optim"].items() if k != "epochs"}}


def train(config: TrainConfig, data_spec: str, run_dir: str | Path, *, device: str = "auto",
          progress: bool = True) -> Path:
    procs = processes_from_env()
    dev = start(procs, resolve_device(device))
    try:
        checkpoint = _train(config, data_spec, Path(run_dir), dev, procs, progress and procs.is_main)
    except BaseException:
        stop(procs, finished=False)
        raise
    stop(procs, finished=True)
    return checkpoint


def _train(config: TrainConfig, data_spec: str, run_dir: Path, dev: torch.device, procs, progress: bool) -> Path:
    say = print if procs.is_main else (lambda *args: None)
    ckpt_path = run_dir / CHECKPOINT
    if not ckpt_path.exists():  # a new run: never into a folder that holds something else
        # a run killed before its first checkpoint leaves only its own files: start it again over them
        check_output_folder(run_dir, "training run", lambda p: {f.name for f in p.iterdir()} <= LEFTOVERS, overwrite=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    resumed = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if resumed is not None:
        before = config_from_dict(resumed["config"], "checkpoint config", from_checkpoint=True).to_dict()
        if _comparable(before) != _comparable(config.to_dict()) or resumed["data_spec"] != str(data_spec):
            raise InputError(f"{run_dir} holds a run with a different config or data; choose a new --out")
        if resumed["epoch"] >= config.optim.epochs:
            say(f"{run_dir}: already trained for {resumed['epoch']} epochs")
            return ckpt_path

    torch.manual_seed(config.seed)
    Method = method_class(config.method)
    with main_process_first(procs):
        data = open_cutouts(data_spec, pixels=config.data.pixels, pixel_scale_arcsec=config.data.pixel_scale_arcsec,
                            params=config.preprocessing, progress=progress, say=say)
    if data.meta.get("skipped"):
        first = data.meta["skipped"][0]
        say(f"skipped {len(data.meta['skipped'])} unreadable image(s), e.g. {first[0]}: {first[1]}")
    if data.images.shape[1] != config.encoder.in_channels:
        raise InputError(f"the data has {data.images.shape[1]} band(s) ({', '.join(data.bands)}) but "
                         f"encoder.in_channels is {config.encoder.in_channels}")
    if config.data.bands and list(config.data.bands) != data.bands:
        raise InputError(f"the recipe's bands ({', '.join(config.data.bands)}) differ from the data's "
                         f"({', '.join(data.bands)})")
    targets = Method.target_columns(config.options)
    data.check_targets(targets, config.method)
    if Method.partners:
        data.check_partners(config.method)
    views = make_views(Method.views)

    encoder, feature_dim = build_encoder(config.encoder.architecture, config.encoder.in_channels)
    model = Method(encoder, feature_dim, config.options)
    n = len(data)
    batch_size = min(config.optim.batch_size, n)  # the global batch, over all processes
    if batch_size % procs.world_size:
        raise InputError(f"the batch size {batch_size} does not split evenly over {procs.world_size} processes")
    share = slice(procs.rank * batch_size // procs.world_size, (procs.rank + 1) * batch_size // procs.world_size)
    steps_per_epoch = n // batch_size  # drop the ragged last batch: BatchNorm dislikes tiny batches
    total_steps = config.optim.epochs * steps_per_epoch
    peak_lr = config.optim.base_lr * batch_size / 256
    use_amp = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    start_epoch, step, history = 0, 0, []
    if resumed is not None:
        model.load_state_dict(resumed["model"])
    if procs.distributed:  # statistics over the global batch, then one replica per process
        model = sync_batchnorm(model, dev).to(dev)
        replicas = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    else:
        model = replicas = model.to(dev)
    if config.optim.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameter_groups(), lr=peak_lr, weight_decay=config.optim.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameter_groups(), lr=peak_lr, momentum=config.optim.momentum,
                                    weight_decay=config.optim.weight_decay)
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        scaler.load_state_dict(resumed["scaler"])
        start_epoch, step, history = resumed["epoch"], resumed["step"], resumed["history"]
        say(f"resuming {run_dir} from epoch {start_epoch}")
    monitor = None
    if procs.is_main:
        monitored = data if not config.monitor.data else open_cutouts(
            config.monitor.data, pixels=config.data.pixels, pixel_scale_arcsec=config.data.pixel_scale_arcsec,
            params=config.preprocessing, progress=progress, say=say)
        monitor = Monitor(config.monitor, monitored, config.preprocessing, dev)
    baselines = resumed.get("baselines") if resumed is not None else None
    if monitor is not None and baselines is None:  # before any step: the encoder is its random initialisation
        baselines = {"random init": monitor.measure(model), "pixels": monitor.pixels()}
        history.append({"epoch": 0, "step": 0, **baselines["random init"]})
        say(f"before training (random init): {describe(baselines['random init'], baselines)}")
        write_json(run_dir / BASELINES, {"monitored_sources": len(monitor.rows), "metric": monitor.metric, **baselines})
    best = max((r[config.monitor.select] for r in history if config.monitor.select in r and r["epoch"] > 0),
               default=None)
    shown = {}

    for epoch in range(start_epoch, config.optim.epochs):
        t0 = time.perf_counter()
        # Seeded per epoch, so a resumed run draws the same batches and views as an uninterrupted one;
        # every process draws the whole global batch's randomness, and reads and trains on its share.
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
        views_rng = torch.Generator(device=dev).manual_seed(config.seed * 100_019 + epoch)
        replicas.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.optim.epochs}", disable=not progress,
                   unit="step")
        for i in bar:
            lr = learning_rate(step, total_steps, config.optim.warmup_epochs * steps_per_epoch, peak_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = order[i * batch_size:(i + 1) * batch_size]
            batch = data.batch(rows[share], targets, dev, partners=Method.partners)
            with torch.no_grad():
                batch = views(batch, config, views_rng, share, batch_size)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=use_amp):
                loss = replicas(batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            model.on_step_end(step, total_steps)
            step += 1
            losses.append(mean_across(loss, procs))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.3g}", **shown)
        assert_replicas_agree(model, procs)
        row = {"epoch": epoch + 1, "step": step, "loss": sum(losses) / max(len(losses), 1), "lr": lr,
               "seconds": round(time.perf_counter() - t0, 2), "images": n, "device": str(dev),
               "processes": procs.world_size}
        improved = False
        if monitor is not None and ((epoch + 1) % config.monitor.every == 0 or epoch + 1 == config.optim.epochs):
            measured = monitor.measure(model)
            row.update(measured)
            shown = {k: f"{measured[k]:.3f}" for k in ("linear", "knn") if k in measured}
            if progress:
                tqdm.write(f"epoch {epoch + 1}: {describe(measured, baselines)}")
            score = monitor.selected(measured)
            improved = score is not None and (best is None or score > best)
            best = score if improved else best
        history.append(row)
        if procs.is_main:
            state = {"config": config.to_dict(), "data_spec": str(data_spec), "epoch": epoch + 1, "step": step,
                     "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                     "history": history, "bands": data.bands, "baselines": baselines}
            if improved:  # written before the last checkpoint, so a resumed run never lacks its best
                with atomic_path(run_dir / BEST_CHECKPOINT) as tmp:
                    torch.save(state, tmp)
            with atomic_path(ckpt_path) as tmp:
                torch.save(state, tmp)
            with atomic_path(run_dir / LOSS_LOG) as tmp:
                log = pd.DataFrame(history)
                log[[*row, *(c for c in log if c not in row)]].to_csv(tmp, index=False)
    return ckpt_path


@cli_entry
def main(argv=None):
    parser = cli.parser("train")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.epochs is not None:
        if args.epochs < 1:
            raise InputError("--epochs must be at least 1")
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, epochs=args.epochs))
    path = train(config, args.data, args.out, device=args.device)
    if processes_from_env().is_main:
        print(f"checkpoint: {path}")


if __name__ == "__main__":
    main()
