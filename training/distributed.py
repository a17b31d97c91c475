"""Data-parallel training across processes: ``torchrun`` sets WORLD_SIZE/RANK/LOCAL_RANK, and
``python -m training.train`` picks them up (see :func:`training.train.train`).

- The process group is NCCL on CUDA, gloo on CPU.
- Every process draws the same global batch and the randomness of the same augmented views (one
  seeded stream, whatever the number of processes), reads only its slice of the batch and trains on
  it; DistributedDataParallel averages the gradients, so a step equals a single process's step on
  the whole global batch. Rank 0 builds the cutout cache before the others open it.
- BatchNorm statistics are those of the global batch: torch's SyncBatchNorm on accelerators, and
  :class:`GlobalBatchNorm` on CPU, where torch's SyncBatchNorm refuses to run.
- BYOL's target network is an EMA of identical online weights, so it stays identical on every
  process; :func:`assert_replicas_agree` checks that after every epoch.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._functional_collectives import all_reduce  # differentiable: gradients are all-reduced too


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def processes_from_env() -> Processes:
    """The place of this process in a ``torchrun`` launch (one process when the variables are absent)."""
    return Processes(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))


def start(procs: Processes, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo otherwise); returns this process's device."""
    if not procs.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", procs.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


@contextmanager
def main_process_first(procs: Processes):
    """Rank 0 runs the block first (e.g. builds a shared cache), then every other process does."""
    together = procs.distributed and dist.is_initialized()
    if together and not procs.is_main:
        dist.barrier()
    yield
    if together and procs.is_main:
        dist.barrier()


def stop(procs: Processes, *, finished: bool) -> None:
    """Tear the process group down; after a finished run, only once every rank is done with it (gloo aborts a
    rank whose peer leaves first). A failed rank leaves at once: torchrun ends the others."""
    if procs.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all processes, on any backend (gloo on CPU included).

    The per-channel sums and sums of squares are all-reduced (in float64) with a differentiable
    all-reduce, so gradients flow through the shared statistics exactly as in one process.
    Same parameters and buffers as BatchNorm1d/2d, so checkpoints are interchangeable.
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        wide = x.double()
        stats = torch.cat([wide.sum(dims), (wide * wide).sum(dims), wide.new_tensor([x.numel() / channels])])
        stats = all_reduce(stats, "sum", dist.group.WORLD)
        count = stats[-1]
        mean = stats[:channels] / count
        var = stats[channels:2 * channels] / count - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_((var * count / (count - 1)).to(self.running_var.dtype), factor)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (wide - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        y = y.to(x.dtype)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm layer normalised over the global batch: torch's SyncBatchNorm on CUDA, else GlobalBatchNorm."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        converted.requires_grad_(any(p.requires_grad for p in module.parameters()))
        return converted
    for name, child in module.named_children():
        module.add_module(name, sync_batchnorm(child, device))
    return module


def mean_across(value: torch.Tensor, procs: Processes) -> float:
    """The mean of a scalar over all processes (each process's loss is the mean over its slice)."""
    if not procs.distributed:
        return float(value.detach())
    total = value.detach().double().clone()
    dist.all_reduce(total)
    return float(total) / procs.world_size


def assert_replicas_agree(module: nn.Module, procs: Processes) -> None:
    """Raise if any process holds different weights or buffers (e.g. a target network drifting apart)."""
    if not procs.distributed:
        return
    with torch.no_grad():
        checksum = torch.stack([t.double().sum() for t in module.state_dict().values()
                                if t.is_floating_point()]).to(next(module.parameters()).device)
    gathered = [torch.empty_like(checksum) for _ in range(procs.world_size)]
    dist.all_gather(gathered, checksum)
    if not all(torch.allclose(g, gathered[0], rtol=1e-6, atol=0) for g in gathered):
        raise RuntimeError("the processes' model replicas have drifted apart; the run cannot continue")
