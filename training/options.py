"""Typed options: recipe sections read into dataclasses, checked once when a YAML file is loaded.

A field's annotation gives its type (``"six"`` is not an int, ``"no"`` is not a bool, ``.nan`` is not
a number) and :func:`limited` its range or choices. Unknown keys are errors, so a typo never silently
falls back to a default. The training config, the methods' own configs and the augmentations all
use this one place.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field
from pathlib import Path

import yaml

from explorer.core.errors import InputError


def limited(default, low=None, high=None, *, choices=None):
    """A dataclass field whose value must lie in [low, high] (or be one of ``choices``)."""
    return field(default=default, metadata={"low": low, "high": high, "choices": choices})


def fraction(default):
    return limited(default, 0.0, 1.0)


def read_yaml(path, what: str):
    """The mapping in a YAML recipe; a missing or malformed file is one InputError naming ``what``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path} is not valid YAML: {e}") from None


def build(cls, values: dict, where: str):
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
            kwargs[name] = build(kind, value, f"{where}.{name}")
        else:
            kwargs[name] = checked(value, kind, f.metadata, f"{where}.{name}")
    return cls(**kwargs)


def checked(value, kind, rules, where: str):
    """``value`` as ``kind`` (bool, int, float, str or a tuple of floats), within the field's rules."""
    if typing.get_origin(kind) is tuple and typing.get_args(kind)[-1] is Ellipsis:  # tuple[str, ...]: any length
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where} must be a list, got {value!r}")
        return tuple(checked(v, typing.get_args(kind)[0], rules, where) for v in value)
    if typing.get_origin(kind) is tuple:
        parts = typing.get_args(kind)
        if not isinstance(value, (list, tuple)) or len(value) != len(parts):
            raise InputError(f"{where} must be a list of {len(parts)} numbers, e.g. [0.8, 1.0]; got {value!r}")
        values = tuple(checked(v, k, rules, where) for v, k in zip(value, parts))
        if list(values) != sorted(values):
            raise InputError(f"{where} must be in increasing order, got {list(values)}")
        return values
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


@dataclasses.dataclass(frozen=True)
class MapConfig:
    """PCA -> UMAP settings of the map (embedding's own: they never block resuming a training run)."""
    pca_components: int = limited(200, 2)
    umap_neighbors: int = limited(15, 2, 1000)
    umap_min_dist: float = limited(0.1, 0.0, 10.0)
