"""Training configuration: one YAML file per recipe (``configs/*.yaml``), read into dataclasses.

Everything is checked once, here, when the YAML is loaded: unknown keys, each value's type (from the
field's annotation: ``"six"`` is not an int, ``"no"`` is not a bool, ``.nan`` is not a number) and its
range (``limits`` in the field's metadata). A typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from explorer.backbones import ARCHITECTURES
from explorer.errors import InputError
from explorer.preprocess import Preprocessing

METHODS = ("byol",)


def limited(default, low=None, high=None, *, choices=None):
    """A dataclass field whose value must lie in [low, high] (or be one of ``choices``)."""
    return field(default=default, metadata={"low": low, "high": high, "choices": choices})


def fraction(default):
    return limited(default, 0.0, 1.0)


@dataclass
class EncoderConfig:
    architecture: str = limited("resnet18", choices=ARCHITECTURES)
    in_channels: int = limited(1, 1, 64)


@dataclass
class DataConfig:
    pixels: int = limited(150, 8, 4096)                 # cutout side, pixels
    pixel_scale_arcsec: float = limited(1.8, 1e-4, 3600.0)   # VLA FIRST


@dataclass
class BYOLConfig:
    projection_hidden: int = limited(512, 1)
    projection_dim: int = limited(256, 1)         # paper 1's public code: 512 -> 256
    prediction_hidden: int = limited(512, 1)
    base_momentum: float = fraction(0.996)


@dataclass
class AugmentationConfig:
    rotation: bool = True
    crop_scale: tuple[float, float] = limited((0.8, 1.0), 0.01, 1.0)
    flip_p: float = fraction(0.5)
    jitter_p: float = fraction(0.8)
    jitter_strength: float = limited(0.5, 0.0, 10.0)
    blur_p: float = fraction(0.1)


@dataclass
class OptimConfig:
    epochs: int = limited(500, 1, 1_000_000)
    batch_size: int = limited(1024, 2, 1 << 20)   # BatchNorm needs at least two images
    base_lr: float = limited(0.2, 1e-9, 100.0)              # lr = base_lr * batch_size / 256
    momentum: float = limited(0.9, 0.0, 0.9999)
    weight_decay: float = limited(1.5e-6, 0.0, 1.0)
    warmup_epochs: int = limited(10, 0)


@dataclass
class MapConfig:
    pca_components: int = limited(200, 2)
    umap_neighbors: int = limited(15, 2, 1000)
    umap_min_dist: float = limited(0.1, 0.0, 10.0)


@dataclass
class TrainConfig:
    name: str = "byol"
    method: str = limited("byol", choices=METHODS)
    seed: int = limited(0, 0, 2**32 - 1)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    byol: BYOLConfig = field(default_factory=BYOLConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    map: MapConfig = field(default_factory=MapConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, values)) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    types = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        kind, f = types[name], fields[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, f"{where}.{name}")
        else:
            kwargs[name] = _checked(value, kind, f.metadata, f"{where}.{name}")
    return cls(**kwargs)


def _checked(value, kind, rules, where: str):
    """``value`` as ``kind`` (bool, int, float, str or a tuple of floats), within the field's rules."""
    if typing.get_origin(kind) is tuple:
        parts = typing.get_args(kind)
        if not isinstance(value, (list, tuple)) or len(value) != len(parts):
            raise InputError(f"{where} must be a list of {len(parts)} numbers, e.g. [0.8, 1.0]; got {value!r}")
        checked = tuple(_checked(v, k, rules, where) for v, k in zip(value, parts))
        if list(checked) != sorted(checked):
            raise InputError(f"{where} must be in increasing order, got {list(checked)}")
        return checked
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false (unquoted), got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where} must be a whole number, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{where} must be a finite number, got {value!r}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise InputError(f"{where} must be text, got {value!r}")
    choices, low, high = rules.get("choices"), rules.get("low"), rules.get("high")
    if choices is not None and value not in choices:
        raise InputError(f"{where}: unknown value {value!r}; choose one of {', '.join(choices)}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low:g}" if high is None else f"within {low:g} to {high:g}" if low is not None \
            else f"at most {high:g}"
        raise InputError(f"{where} must be {bounds}, got {value!r}")
    return value


def config_from_dict(values: dict, where: str = "config") -> TrainConfig:
    if not values:
        raise InputError(f"{where} is empty; a recipe needs at least its optim settings (see configs/demo.yaml)")
    config = _build(TrainConfig, values, where)
    if config.preprocessing.crop_pixels > config.data.pixels:
        raise InputError(f"{where}: preprocessing.crop_pixels ({config.preprocessing.crop_pixels}) is larger than "
                         f"the cutouts (data.pixels {config.data.pixels})")
    return config


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{path} is not valid YAML: {e}") from None
    return config_from_dict(values, str(path))
