"""Named presets of the algorithms' configs, as data: `<file>.toml` in this package, one table per
preset, each key a field of the algorithm's config (`bellman train ALGO --preset NAME`; the flags
given apply after it). A file is read when first used and checked: every key a field, every
value converted to its field's type (`config.coerce`), every preset a valid config. Which preset
an env gets is code, the algorithm's `preset_for`."""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import tomllib
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from bellman import config as cfg
from bellman.errors import ConfigError, closest


def parse(text: str, config: type, where: str) -> dict[str, dict[str, Any]]:
    """The presets in the TOML `text` for the config class `config`: name -> fields, in the
    text's order. Raises ConfigError, naming `where`, for text that is not TOML, a key that is
    not a field of `config`, a value not of its field's type, or a preset that makes the default
    config invalid."""
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from exc
    types = cfg.field_types(config)
    presets: dict[str, dict[str, Any]] = {}
    for name, fields in tables.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"{where}: preset '{name}' must be a table of config fields")
        unknown = sorted(set(fields) - set(types))
        if unknown:
            raise ConfigError(
                f"{where}: preset '{name}' sets {', '.join(unknown)}, which "
                f"{config.__name__} does not have" + closest(unknown[0], types)
            )
        try:
            presets[name] = {
                key: cfg.coerce(key, types[key], value) for key, value in fields.items()
            }
            dataclasses.replace(config(), **presets[name]).validate()
        except ConfigError as exc:
            raise ConfigError(f"{where}: preset '{name}': {exc}") from exc
    return presets


@functools.cache
def load(file: str, config: type) -> Mapping[str, Mapping[str, Any]]:
    """The presets of `bellman/presets/<file>.toml` for the config class `config` (`parse`),
    read once, read-only."""
    text = importlib.resources.files(__name__).joinpath(f"{file}.toml").read_text("utf-8")
    presets = parse(text, config, f"bellman/presets/{file}.toml")
    return MappingProxyType({name: MappingProxyType(fields) for name, fields in presets.items()})


@dataclasses.dataclass(frozen=True)
class Presets(Mapping[str, Mapping[str, Any]]):
    """The presets of `bellman/presets/<file>.toml` for the config class `config`, read when
    first used."""

    file: str
    config: type

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        return load(self.file, self.config)[name]

    def __iter__(self) -> Iterator[str]:
        return iter(load(self.file, self.config))

    def __len__(self) -> int:
        return len(load(self.file, self.config))
