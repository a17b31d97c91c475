"""Self-supervised methods as plug-ins: one file each, registered by name (``method: byol`` in a recipe).

A method is an ``nn.Module`` built from a backbone and its own config, and the training loop
(:mod:`training.train`) calls nothing else:

- ``Config``: a dataclass, read from the recipe's section named after the method and validated
  when the YAML loads (:mod:`training.config`);
- ``views``: the name of the view maker that fills each batch (:mod:`training.views`): two
  augmentations of each image, a simulator's positive pairs, or single images with targets;
- ``targets``: catalogue columns the method needs in ``batch["targets"]`` (checked against the data), or
  ``target_columns(config)`` when the recipe chooses them;
- ``partners``: True when it trains on a simulator's positive pairs (``batch["partners"]``, the second
  rendering of each source; the data must have them);
- ``loss(batch)``: a scalar tensor (``forward`` calls it, so DistributedDataParallel sees the call);
- ``on_step_end(step, total_steps)``: after each optimiser step (BYOL's EMA update);
- ``exported_head``: the name of a submodule the bundle carries beside the encoder (paper 4's band
  classifier, ``band_classifier.safetensors``), or None;
- ``parameter_groups()``: optimiser groups (default: every trainable parameter);
- ``projections(images, params, device)``: the projector's output for the representation monitor's
  collapse signal (:mod:`training.monitor`); the default uses ``self.projector`` when there is one.

Adding a method is a file here defining a subclass decorated with ``@register("name")``, and a recipe.
Shared parts (heads, losses, schedules) are in :mod:`training.methods.parts`.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import torch
from torch import nn

from explorer.core.errors import InputError

METHODS: dict[str, type["Method"]] = {}


@dataclass
class NoOptions:
    """A method without options of its own."""


class Method(nn.Module):
    name = ""
    Config = NoOptions
    views = "two_augmentations"
    targets: tuple[str, ...] = ()
    partners = False
    exported_head: str | None = None

    def __init__(self, encoder: nn.Module, feature_dim: int, config):
        super().__init__()
        self.encoder = encoder
        self.config = config

    @classmethod
    def target_columns(cls, config) -> tuple[str, ...]:
        """The catalogue columns this method reads in ``batch["targets"]`` under this config."""
        return cls.targets

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: dict) -> torch.Tensor:
        return self.loss(batch)

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after every optimiser step with the step just taken (0-based)."""

    def parameter_groups(self) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    @torch.no_grad()
    def projections(self, preprocessed, params, device, batch_size: int = 256):
        """[N, P] projections of preprocessed cutouts (eval mode), or None for a method without a projector."""
        from explorer.core.preprocess import encoder_input

        projector = getattr(self, "projector", None)
        if projector is None:
            return None
        out = [projector(self.encoder(encoder_input(preprocessed[i:i + batch_size], params).to(device))).float().cpu()
               for i in range(0, len(preprocessed), batch_size)]
        return torch.cat(out).numpy()


def register(name: str):
    def add(cls: type[Method]) -> type[Method]:
        cls.name = name
        METHODS[name] = cls
        return cls
    return add


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


for _module in pkgutil.iter_modules(__path__):  # every file in this folder registers its method
    if _module.name != "parts":
        importlib.import_module(f"{__name__}.{_module.name}")
