"""An env's own settings from the command line: gymnax parameters and constructor keyword arguments.

`--env-params` changes fields of a gymnax env's `EnvParams` (its physics, its time limit) and
`--env-kwargs` passes keyword arguments to whatever constructs the env (`gymnasium.make`, a
`module:Class`, `jumanji.make`). Both take the same three forms:

    name=value,name=value        values read as JSON where they parse (10, 9.81, true, [1, 2]),
                                 else kept as text (render_mode=rgb_array)
    {"name": value, ...}         a JSON object
    path/to/file.json            a file holding a JSON object

A run records them as canonical JSON (`canonical`), so that a resumed or evaluated run uses the
same values even when the file has changed or gone.

gymnax parameters are checked against the env's `EnvParams` (`gymnax_params`): unknown names are
refused with the list of valid ones, values are converted to the field's type, and fields that
gymnax stores although they follow from others are recomputed (`DERIVED`: CartPole's `total_mass`
and `polemass_length`; no other gymnax env stores a derived value in its parameters).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from bellman import config as cfg
from bellman.errors import ConfigError, closest

Derived = tuple[tuple[str, ...], Callable[[Any], float]]

DERIVED: dict[str, dict[str, Derived]] = {
    "CartPole-v1": {
        "total_mass": (("masscart", "masspole"), lambda p: p.masscart + p.masspole),
        "polemass_length": (("masspole", "length"), lambda p: p.masspole * p.length),
    },
}
"""gymnax env id -> parameter -> (the parameters it follows from, how). gymnax's CartPole keeps
these two as fields of `EnvParams` instead of computing them in `step`; bellman recomputes them
after every change and refuses them as settings of their own."""


def _split(text: str) -> list[str]:
    """`text` cut at the commas outside brackets and quotes (`a=[1,2],b=3` -> two items)."""
    items, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def _value(text: str) -> Any:
    """A value of `name=value`: JSON where it parses (and Python's True, False, None)."""
    text = text.strip()
    python = {"True": True, "False": False, "None": None}
    if text in python:
        return python[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_object(text: str, where: str, setting: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{setting}: {where} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{setting}: {where} must hold a JSON object, not {type(value).__name__}")
    return value


def parse(text: str, setting: str) -> dict[str, Any]:
    """The names and values `text` gives (`name=value,...`, a JSON object or a JSON file);
    ConfigError, naming `setting`, for anything else."""
    stripped = text.strip()
    if not stripped:
        raise ConfigError(f"{setting} is empty: give name=value,..., a JSON object or a .json file")
    if stripped.startswith("{"):
        return _json_object(stripped, "the text", setting)
    if "=" not in stripped:
        path = Path(stripped).expanduser()
        try:
            content = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfigError(
                f"{setting} '{stripped}' is neither name=value,... nor a JSON object, and "
                f"reading it as a file failed: {reason}"
            ) from None
        return _json_object(content, f"the file {stripped}", setting)
    values: dict[str, Any] = {}
    for item in _split(stripped):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(
                f"{setting} takes name=value pairs separated by commas, not '{item.strip()}'"
            )
        if name in values:
            raise ConfigError(f"{setting} gives '{name}' twice")
        values[name] = _value(value)
    return values


def canonical(values: dict[str, Any]) -> str | None:
    """`values` as the JSON text a run records (None when empty)."""
    return json.dumps(values, sort_keys=True) if values else None


# ----- gymnax parameters -----


def _field_value(env_id: str, name: str, default: Any, annotation: Any, value: Any) -> Any:
    """`value` converted to the type of the parameter whose default is `default`."""
    label = f"{env_id} parameter {name}"
    if isinstance(default, jnp.ndarray | np.ndarray):
        try:
            array = np.asarray(value, dtype=default.dtype)
        except (TypeError, ValueError):
            array = None
        if array is None or array.shape != default.shape:
            raise ConfigError(
                f"{label} must be an array of shape {default.shape} (as JSON, e.g. "
                f"{json.dumps(np.asarray(default).tolist())}), not {value!r}"
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ConfigError(f"{label} must hold finite numbers, not {value!r}")
        return jnp.asarray(array)
    kind = type(default) if isinstance(default, bool | int | float) else annotation
    if kind not in (bool, int, float):
        raise ConfigError(f"{label} holds a {type(default).__name__}, which bellman cannot set")
    converted = cfg.coerce(label, kind, value)
    if kind is float:
        cfg.require(math.isfinite(converted), f"{label} must be a finite number, not {value!r}")
    if kind is int:
        cfg.at_most(label, abs(converted), cfg.INT32_MAX, "gymnax counts in 32-bit integers")
    return converted


def gymnax_params(env_id: str, defaults: Any, changes: dict[str, Any]) -> tuple[Any, dict]:
    """`defaults` (a gymnax `EnvParams`) with `changes` applied and derived fields recomputed,
    and the changes as converted (JSON values, for the run's record)."""
    fields = {f.name: f for f in dataclasses.fields(defaults)}
    derived = DERIVED.get(env_id, {})
    settable = [name for name in fields if name not in derived]
    for name in changes:
        if name in derived:
            sources = " and ".join(derived[name][0])
            raise ConfigError(
                f"{env_id} parameter {name} follows from {sources}: change those instead"
            )
        if name not in fields:
            raise ConfigError(
                f"{env_id} has no parameter '{name}'{closest(name, settable)}; its parameters "
                f"are {', '.join(settable)}"
            )
    converted = {
        name: _field_value(env_id, name, getattr(defaults, name), fields[name].type, value)
        for name, value in changes.items()
    }
    if "max_steps_in_episode" in converted:
        steps = converted["max_steps_in_episode"]
        cfg.require(
            steps >= 1,
            f"{env_id} parameter max_steps_in_episode must be at least 1, not {steps!r}",
        )
    params = defaults.replace(**converted)
    recomputed = {name: how(params) for name, (_, how) in derived.items()}
    if recomputed:
        params = params.replace(**recomputed)
    record = {
        name: np.asarray(value).tolist() if isinstance(value, jnp.ndarray) else value
        for name, value in converted.items()
    }
    return params, record
