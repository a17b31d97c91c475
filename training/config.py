"""Training configuration: one YAML file per recipe (``configs/*.yaml``), read into dataclasses.

A recipe names its method (``method: byol``) and may carry a section of the method's own options
under the same name (``byol: {...}``; the method's ``Config``, :mod:`training.methods`). Every value is
checked when the YAML loads (:mod:`training.options`). Map settings are not part of a recipe: they
belong to embedding (``training.embed --pca-components ...``), so changing them never blocks resuming.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


from explorer.core.backbones import ARCHITECTURES
from explorer.core.config import REPO_ROOT
from explorer.core.errors import InputError
from explorer.core.preprocess import Preprocessing
from explorer.core.surveys import FIRST
from training.augment import AugmentConfig
from training.monitor import MonitorConfig
from training.options import build, limited, read_yaml

LEGACY_SECTIONS = ("map",)   # written into checkpoints by earlier versions; ignored when they are read back


@dataclass
class EncoderConfig:
    architecture: str = limited("resnet18", choices=ARCHITECTURES)
    in_channels: int = limited(1, 1, 64)


@dataclass
class DataConfig:
    pixels: int = limited(FIRST.pixels, 8, 4096)                              # cutout side, pixels
    pixel_scale_arcsec: float = limited(FIRST.pixel_scale_arcsec, 1e-4, 3600.0)
    bands: tuple[str, ...] = ()                     # expected band names in channel order; () = the data's


@dataclass
class OptimConfig:
    epochs: int = limited(500, 1, 1_000_000)
    batch_size: int = limited(1024, 2, 1 << 20)   # BatchNorm needs at least two images
    base_lr: float = limited(0.2, 1e-9, 100.0)    # lr = base_lr * batch_size / 256
    momentum: float = limited(0.9, 0.0, 0.9999)
    weight_decay: float = limited(1.5e-6, 0.0, 1.0)
    warmup_epochs: int = limited(10, 0)
    optimizer: str = limited("sgd", choices=("sgd", "adam"))   # adam: paper 2 (Adam, lr 1e-4; momentum unused)


@dataclass
class TrainConfig:
    name: str = "byol"
    method: str = "byol"
    seed: int = limited(0, 0, 2**32 - 1)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    options: object = None            # the method's own Config (the recipe's section named after the method)

    def __post_init__(self):
        if self.options is None:  # the method's defaults
            from training.methods import method_class

            self.options = method_class(self.method).Config()

    def to_dict(self) -> dict:
        values = {f.name: dataclasses.asdict(getattr(self, f.name)) if dataclasses.is_dataclass(getattr(self, f.name))
                  else getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "options"}
        return {**values, self.method: dataclasses.asdict(self.options)}


def config_from_dict(values: dict, where: str = "config", *, from_checkpoint: bool = False) -> TrainConfig:
    """The typed config of a recipe (or of a checkpoint, whose legacy sections are dropped)."""
    from training.methods import method_class

    if not values:
        raise InputError(f"{where} is empty; a recipe needs at least its optim settings (see configs/demo.yaml)")
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a mapping, got {values!r}")
    if "map" in values and not from_checkpoint:
        raise InputError(f"{where}: map settings belong to embedding now; remove the map section and pass "
                         "--pca-components / --umap-neighbors / --umap-min-dist to training.embed")
    values = {k: v for k, v in values.items() if k not in LEGACY_SECTIONS}
    if "options" in values:
        raise InputError(f"{where}: unknown key options; a method's options go in a section named after it")
    method = values.get("method", TrainConfig.method)
    if not isinstance(method, str):
        raise InputError(f"{where}.method must be text, got {method!r}")
    cls = method_class(method)
    options = build(cls.Config, values.pop(method, None) or {}, f"{where}.{method}")
    config = dataclasses.replace(build(TrainConfig, values, where), options=options)
    config.preprocessing.check(config.encoder.in_channels, f"{where}.preprocessing")
    if config.preprocessing.crop_pixels > config.data.pixels:
        raise InputError(f"{where}: preprocessing.crop_pixels ({config.preprocessing.crop_pixels}) is larger than "
                         f"the cutouts (data.pixels {config.data.pixels})")
    return config


def repo_path(name: str | Path) -> Path:
    """A recipe named in a study config: as given when it exists or is absolute, else inside the repository."""
    path = Path(name)
    return path if path.is_absolute() or path.is_file() else REPO_ROOT / path


def load_config(path: str | Path) -> TrainConfig:
    return config_from_dict(read_yaml(path, "config file"), str(path))
