"""View makers: what the training loop adds to a batch for its method (``Method.views`` names one).

Each maker takes the batch (``images`` already on the device, with the rotation margin), the
recipe, the views' random stream, and which rows (``share``) of a global batch of ``total`` this
process holds.
Every process draws the whole global batch's randomness, so a step does not depend on the number
of processes. A method that needs other views (a simulator's pairs, say) adds a maker here.
"""
from __future__ import annotations

from typing import Callable

import torch

from explorer.core.errors import InputError
from explorer.core.preprocess import encoder_input
from training.augment import augment, dihedral

VIEW_MAKERS: dict[str, Callable] = {}


def view_maker(name: str):
    def add(fn):
        VIEW_MAKERS[name] = fn
        return fn
    return add


@view_maker("two_augmentations")
def two_augmentations(batch: dict, config, rng: torch.Generator, share: slice, total: int) -> dict:
    """Two random augmentations of every image (BYOL, SimSiam)."""
    images, aug, sizes = batch["images"], config.augmentation, config.preprocessing
    first = augment(images, aug, sizes, rng, share=share, total=total)
    second = augment(images, aug, sizes, rng, share=share, total=total)
    return {**batch, "views": (first, second)}


@view_maker("single_image")
def single_image(batch: dict, config, rng: torch.Generator, share: slice, total: int) -> dict:
    """Each image once, as the encoder sees it at embedding time (for methods that regress targets)."""
    return {**batch, "views": (encoder_input(batch["images"], config.preprocessing),)}


@view_maker("single_bands")
def single_bands(batch: dict, config, rng: torch.Generator, share: slice, total: int) -> dict:
    """Every band of every image as a one-band image [B * C, 1, H, W], labelled with its band's index (paper 4).

    With the method's ``dihedral`` option each one-band image is also turned and mirrored at random (one of the
    grid's eight symmetries, drawn per image and band): the band does not depend on the sky's orientation, and
    without it a ResNet memorises a small sky's 5 x N images instead of learning the bands.
    """
    x = encoder_input(batch["images"], config.preprocessing)
    singles = x.reshape(-1, 1, *x.shape[-2:])
    if getattr(config.options, "dihedral", False):
        codes = torch.randint(0, 8, (total, x.shape[1]), generator=rng, device=x.device)[share]
        singles = dihedral(singles, codes.reshape(-1))
    bands = torch.arange(x.shape[1], device=x.device).repeat(len(x))
    return {**batch, "views": (singles,), "band_labels": bands}


@view_maker("simulated_pairs")
def simulated_pairs(batch: dict, config, rng: torch.Generator, share: slice, total: int) -> dict:
    """The simulator's two renderings of each source, as they are (LenSiam: the pair shares the lens mass, and
    any further augmentation - a zoom, say - would change it)."""
    params = config.preprocessing
    return {**batch, "views": (encoder_input(batch["images"], params), encoder_input(batch["partners"], params))}


def make_views(name: str):
    if name not in VIEW_MAKERS:
        raise InputError(f"unknown views {name!r}; available: {', '.join(VIEW_MAKERS)}")
    return VIEW_MAKERS[name]
