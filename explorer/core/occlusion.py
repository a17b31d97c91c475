"""Occlusion maps: how much a model's prediction for one source drops when each patch of its image is masked.

Paper 4's Fig. 2 occludes patches of a single-band image and shows how the band classifier's probability of
the image's true band falls; the same works for any head trained in the app on the bundle's embeddings.

:func:`occlusion_map` is model-agnostic: ``score(images [M, C, H, W]) -> [M]`` (or ``[M, K]`` class
probabilities, scored at the class predicted for the unoccluded image). Square patches of ``patch`` pixels
slide with ``stride``, the last row and column of patches flush with the image's far edges, so every pixel is
covered. Each pixel of the map is the mean, over the patches covering it, of score(original) -
score(occluded): positive where masking the patch lowers the score, i.e. where the patch supported the
prediction. The images are the bundle's ``encoder_inputs`` (the preprocessed crops the encoder embedded),
so the map is at their resolution; the scorers run them through :func:`explorer.core.preprocess.encoder_input`
exactly as embedding did.

No Streamlit here: the source panel (:func:`explorer.app.ui.source_panel`) draws the result.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np

from explorer.core.errors import InputError
from explorer.core.preprocess import encoder_input

BAND_CLASSIFIER = "band classifier"      # the model name of paper 4's pretext classifier (band_prediction bundles)
DEFAULT_BATCH = 64                       # occluded images per forward pass
THREADS = 2                              # CPU threads for the forward passes (restored afterwards)
# The default stride keeps one source's map within about a second of CPU: occluded images x trunk passes per
# image (bands of a band-wise encoder) x encoder input pixels. 225 x 5 x 32^2 took 1.0 s on 2 cores (ResNet-18).
COST_BUDGET = 1_200_000
REBUILD = ("rebuild it with `python -m training.embed` (new bundles keep encoder_inputs.npy, the images the "
           "encoder embedded) to get occlusion maps")

Score = Callable[[np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- the map


def patch_starts(side: int, patch: int, stride: int) -> np.ndarray:
    """Top (or left) edges of the patches along one axis: 0, stride, ..., and one flush with the far edge."""
    starts = list(range(0, side - patch + 1, stride))
    if starts[-1] != side - patch:
        starts.append(side - patch)
    return np.asarray(starts, dtype=np.int64)


def check_settings(shape: tuple[int, int], patch, stride) -> tuple[int, int]:
    """``patch`` and ``stride`` as ints, or an InputError saying what is wrong with them for an image of ``shape``."""
    height, width = shape
    for name, value in (("patch", patch), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"occlusion {name} must be a whole number of pixels >= 1, got {value!r}")
    patch, stride = int(patch), int(stride)
    if patch > min(height, width):
        raise InputError(f"occlusion patch of {patch} px does not fit the {height}x{width} px image; "
                         f"use at most {min(height, width)}")
    if stride > patch:
        raise InputError(f"occlusion stride ({stride} px) must not exceed the patch ({patch} px): pixels between "
                         "patches would never be masked")
    return patch, stride


def occluded_count(shape: tuple[int, int], patch: int, stride: int) -> int:
    """How many occluded images a map of an image of ``shape`` scores."""
    return len(patch_starts(shape[0], patch, stride)) * len(patch_starts(shape[1], patch, stride))


def occlusion_map(score: Score, image: np.ndarray, *, patch: int, stride: int, fill: float = 0.0,
                  channel: int | None = None, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """float64 [H, W]: at each pixel, the mean over the patches covering it of score(image) - score(occluded).

    ``image``: [C, H, W] (or [H, W], one channel). Each occluded copy has one ``patch`` x ``patch`` square set to
    ``fill`` in every channel, or only in ``channel``. ``score`` gets float32 batches [M, C, H, W] and returns
    [M] scores, or [M, K] probabilities (then the class the unoccluded image gets is scored). Each batch is the
    unoccluded image then up to ``batch_size`` occluded copies, so a patch whose masking changes no pixel scores
    exactly 0.
    """
    return explain(score, image, patch=patch, stride=stride, fill=fill, channel=channel, batch_size=batch_size)[0]


def explain(score: Score, image: np.ndarray, *, patch: int, stride: int, fill: float = 0.0,
            channel: int | None = None, batch_size: int = DEFAULT_BATCH) -> tuple[np.ndarray, float, int | None]:
    """:func:`occlusion_map`, with the unoccluded image's score and the class scored (None for [M] scores)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise InputError(f"occlusion needs one image [C, H, W] or [H, W], got shape {image.shape}")
    if channel is not None and not 0 <= channel < image.shape[0]:
        raise InputError(f"occlusion channel {channel} is not one of the image's {image.shape[0]} channel(s)")
    if batch_size < 1:
        raise InputError(f"occlusion batch_size must be >= 1, got {batch_size}")
    patch, stride = check_settings(image.shape[1:], patch, stride)
    height, width = image.shape[1:]

    corners = [(top, left) for top in patch_starts(height, patch, stride)
               for left in patch_starts(width, patch, stride)]
    total = np.zeros((height, width), np.float64)
    count = np.zeros((height, width), np.int64)
    masked = slice(None) if channel is None else slice(channel, channel + 1)
    column, baseline = None, None
    for start in range(0, len(corners), batch_size):
        chunk = corners[start:start + batch_size]
        # The unoccluded image leads every batch, so a patch that changes no pixel scores exactly 0 (a model's
        # rounding can depend on the batch size, not on an image's place in the batch).
        batch = np.repeat(image[None], len(chunk) + 1, axis=0)
        for i, (top, left) in enumerate(chunk, start=1):
            batch[i, masked, top:top + patch, left:left + patch] = fill
        out = np.asarray(score(batch), dtype=np.float64)
        if out.ndim not in (1, 2) or len(out) != len(batch):
            raise ValueError(f"the scorer returned shape {out.shape} for {len(batch)} images; expected "
                             f"[{len(batch)}] or [{len(batch)}, classes]")
        if out.ndim == 2:
            column = int(out[0].argmax()) if column is None else column
            out = out[:, column]
        baseline = float(out[0]) if baseline is None else baseline
        for (top, left), drop in zip(chunk, out[0] - out[1:]):
            total[top:top + patch, left:left + patch] += drop
            count[top:top + patch, left:left + patch] += 1
    return total / count, baseline, column


@contextmanager
def cpu_threads(threads: int = THREADS):
    """torch on at most ``threads`` CPU threads inside the block (one source's map is small work)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- scorers on a bundle's models


@dataclass(frozen=True)
class Scorer:
    """A model's score of images [M, C, H, W] -> [M] (or [M, K] probabilities), and what the score means."""
    score: Score
    what: str                           # e.g. "probability of band r", "predicted r_true (mag)"
    classes: tuple[str, ...] = ()       # classification: the class names of [M, K] scores

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.score(images)


def _needs_inputs(bundle) -> None:
    if bundle.encoder_inputs is None:
        raise InputError(f"bundle {bundle.name!r} does not keep the images its encoder embedded; {REBUILD}")
    if not bundle.has_encoder:
        raise InputError(f"bundle {bundle.name!r} has no encoder weights, so its models cannot score occluded images")


def band_names(bundle) -> list[str]:
    """The bundle's band names in channel order (``band 1``... when the manifest does not name them)."""
    channels = bundle.manifest.encoder.in_channels if bundle.manifest.encoder else 1
    names = list(bundle.manifest.data.bands)
    return names if len(names) == channels else [f"band {i + 1}" for i in range(channels)]


def has_band_classifier(bundle) -> bool:
    """Whether the bundle carries paper 4's band classifier (without loading it)."""
    from explorer.core.bundle import BAND_CLASSIFIER_FILE

    enc = bundle.manifest.encoder
    return bool(enc is not None and enc.band_classifier_hidden and (bundle.path / BAND_CLASSIFIER_FILE).exists())


def band_classifier_score(bundle, band_index: int) -> Scorer:
    """Softmax probability of band ``band_index`` from paper 4's band classifier, for single-band images of that
    band: [M, 1, H, W], or [M, C, H, W] of which channel ``band_index`` is taken."""
    import torch

    _needs_inputs(bundle)
    classifier = bundle.band_classifier()
    if classifier is None:
        raise InputError(f"bundle {bundle.name!r} has no band classifier (only band_prediction bundles carry one)")
    encoder, params, names = bundle.encoder(), bundle.preprocessing(), band_names(bundle)
    if not 0 <= band_index < len(names):
        raise InputError(f"band {band_index} is not one of the bundle's {len(names)} bands")

    @torch.no_grad()
    def score(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        single = images if images.shape[1] == 1 else images[:, band_index:band_index + 1]
        logits = classifier(encoder.band_features(encoder_input(single, params)))
        return torch.softmax(logits.float(), dim=1)[:, band_index].numpy()

    return Scorer(score, f"band classifier's probability of band {names[band_index]} (on that band alone)")


def occlusion_heads(bundle) -> list[str]:
    """Saved heads that predict from the bundle's embeddings (linear, mlp, knn, bandwise), newest first."""
    from explorer.core.config import HEAD_KINDS
    from explorer.core.heads import saved_heads

    try:
        heads = saved_heads(bundle.path)
    except InputError:
        return []
    return [m["name"] for m in heads if m["kind"] in HEAD_KINDS and m.get("dim", bundle.dim) == bundle.dim]


def head_score(bundle, head_name: str) -> Scorer:
    """A saved head's prediction from the normalised embedding of each image: the regression value, or every
    class's probability (:func:`occlusion_map` scores the class predicted for the unoccluded image)."""
    import torch

    from explorer.core.heads import load_head

    _needs_inputs(bundle)
    head = load_head(bundle.path, head_name)
    if head.dim != bundle.dim:
        raise InputError(f"head {head_name!r} reads {head.dim}-d features; this bundle's embeddings are {bundle.dim}-d")
    encoder, params, task = bundle.encoder(), bundle.preprocessing(), head.task

    @torch.no_grad()
    def score(images: np.ndarray) -> np.ndarray:
        z = encoder(encoder_input(np.asarray(images, dtype=np.float32), params))
        prediction = head.predict(torch.nn.functional.normalize(z.float(), dim=1).numpy())
        return prediction.proba if task.kind == "classification" else prediction.value

    unit = f" ({task.target_unit})" if task.target_unit else ""
    what = (f"head {head_name}'s probability of {task.column} =" if task.kind == "classification"
            else f"head {head_name}'s predicted {task.target}{unit}")
    return Scorer(score, what, tuple(task.classes))


# ----------------------------------------------------------------------------- one source


def occlusion_models(bundle) -> list[str]:
    """The models whose occlusion maps the bundle can draw: :data:`BAND_CLASSIFIER` when it carries one, then
    its saved heads."""
    return [BAND_CLASSIFIER] * has_band_classifier(bundle) + occlusion_heads(bundle)


def unavailable(bundle) -> str | None:
    """Why the bundle cannot draw occlusion maps (no images, no encoder, no model), or None."""
    if bundle.encoder_inputs is None:
        return f"This bundle does not keep the images its encoder embedded: {REBUILD}."
    if not bundle.has_encoder:
        return "This bundle has no encoder weights (encoder.safetensors), so no model can score occluded images."
    if not occlusion_models(bundle):
        return ("No model to explain yet: train a head on the Fine-tune page (any linear, MLP, k-NN or band-wise "
                "head), or build a `band_prediction` bundle for paper 4's band classifier.")
    return None


def trunk_passes(bundle, model: str) -> int:
    """Single-band trunk passes per occluded image (without loading the model): 1, or a band-wise encoder's bands
    for a head."""
    from explorer.core.backbones import BANDWISE

    enc = bundle.manifest.encoder
    bandwise = enc is not None and enc.architecture.endswith(BANDWISE)
    return enc.in_channels if bandwise and model != BAND_CLASSIFIER else 1




def default_settings(side: int, *, input_pixels: int | None = None, trunk_passes: int = 1) -> tuple[int, int]:
    """(patch, stride) for a ``side``-pixel image: a quarter of the side, sliding by a sixteenth, or by more
    when that many occluded images would cost over ``COST_BUDGET`` (about a second of CPU)."""
    patch = max(1, side // 4)
    cost = trunk_passes * (input_pixels or side) ** 2
    for stride in range(max(1, side // 16), patch + 1):
        if occluded_count((side, side), patch, stride) * cost <= COST_BUDGET:
            return patch, stride
    return patch, patch


@dataclass(frozen=True)
class Occlusion:
    """One source's occlusion map and what it means."""
    map: np.ndarray          # float64 [H, W]: mean drop of the score when the patches covering a pixel are masked
    baseline: float          # the unoccluded image's score
    what: str                # what the score is
    scored_class: str | None  # classification heads: the class predicted for the unoccluded image
    patch: int
    stride: int
    images: int              # occluded images scored
    seconds: float
    threads: int

    @property
    def score_label(self) -> str:
        """What the score is, e.g. "head cls's probability of class = galaxy (...)"."""
        return self.what + (f" {self.scored_class} (predicted for the unoccluded image)"
                            if self.scored_class is not None else "")

    @property
    def caption(self) -> str:
        return (f"Score: {self.score_label}; unoccluded {self.baseline:.4g}. Each pixel shows the mean drop in the "
                f"score when a {self.patch}×{self.patch} px patch covering it is set to 0 (stride {self.stride} px): "
                f"red, masking lowers the score (the patch supports the prediction); blue, it raises it. "
                f"{self.images} occluded images in {self.seconds:.2f} s on {self.threads} CPU thread(s).")


def source_image(bundle, row: int) -> np.ndarray:
    """float32 [C, s, s]: the preprocessed crop the encoder embedded for ``row``."""
    _needs_inputs(bundle)
    if not 0 <= row < bundle.n:
        raise InputError(f"row {row} is outside the bundle's {bundle.n} sources")
    return np.array(bundle.encoder_inputs[row], dtype=np.float32)


def source_occlusion(bundle, row: int, model: str, *, band: int | None = None, patch: int | None = None,
                     stride: int | None = None, threads: int = THREADS, batch_size: int = DEFAULT_BATCH) -> Occlusion:
    """Occlusion map of source ``row`` under ``model``: :data:`BAND_CLASSIFIER` (of band index ``band``, on that
    band alone) or a saved head's name (every band masked at once). ``patch``/``stride`` default to
    :func:`default_settings`."""
    image = source_image(bundle, row)
    if model == BAND_CLASSIFIER:
        if band is None:
            raise InputError("the band classifier's occlusion map needs a band")
        scorer = band_classifier_score(bundle, band)
        image = image[band:band + 1]
    else:
        scorer = head_score(bundle, model)
    side = min(image.shape[1:])
    default_patch, default_stride = default_settings(side, input_pixels=bundle.preprocessing().input_pixels,
                                                     trunk_passes=trunk_passes(bundle, model))
    patch = default_patch if patch is None else patch
    stride = (default_stride if patch == default_patch else max(1, patch // 2)) if stride is None else stride
    with cpu_threads(threads) as used:
        start = time.perf_counter()
        heat, baseline, column = explain(scorer, image, patch=patch, stride=stride, batch_size=batch_size)
        seconds = time.perf_counter() - start
    scored = None if column is None else (scorer.classes[column] if column < len(scorer.classes) else str(column))
    return Occlusion(heat, baseline, scorer.what, scored, int(patch), int(stride),
                     occluded_count(image.shape[1:], int(patch), int(stride)), seconds, used)
