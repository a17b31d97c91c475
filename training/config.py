"""Training configuration: one YAML file per recipe (``configs/*.yaml``), read into dataclasses.

Unknown keys are errors, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from explorer.errors import InputError
from explorer.preprocess import Preprocessing


@dataclass
class EncoderConfig:
    architecture: str = "resnet18"
    in_channels: int = 1


@dataclass
class DataConfig:
    pixels: int = 150                 # cutout side, pixels
    pixel_scale_arcsec: float = 1.8   # VLA FIRST


@dataclass
class BYOLConfig:
    projection_hidden: int = 512
    projection_dim: int = 256         # paper 1's public code: 512 -> 256
    prediction_hidden: int = 512
    base_momentum: float = 0.996


@dataclass
class AugmentationConfig:
    rotation: bool = True
    crop_scale: tuple[float, float] = (0.8, 1.0)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    jitter_strength: float = 0.5
    blur_p: float = 0.1


@dataclass
class OptimConfig:
    epochs: int = 500
    batch_size: int = 1024
    base_lr: float = 0.2              # lr = base_lr * batch_size / 256
    momentum: float = 0.9
    weight_decay: float = 1.5e-6
    warmup_epochs: int = 10


@dataclass
class MapConfig:
    pca_components: int = 200
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1


@dataclass
class TrainConfig:
    name: str = "byol"
    method: str = "byol"
    seed: int = 0
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
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(values: dict, where: str = "config") -> TrainConfig:
    config = _build(TrainConfig, values or {}, where)
    if config.method != "byol":
        raise InputError(f"{where}: unknown method {config.method!r}; this version trains 'byol'")
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
