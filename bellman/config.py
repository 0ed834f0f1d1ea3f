"""Typed, frozen configs: field docstrings (the CLI's help), overrides and range checks.

Every config's `validate` starts with `check_fields`: each value has its field's type, every float
is finite and fits a 32-bit float (the programs compute in float32), and every int is at most
INT32_MAX (the programs count steps, updates, gradient steps and replay slots in 32-bit integers,
JAX's default). The checks of each field's own range follow (`at_least`, `positive`, `within`).
Messages read `<name> must <rule>, not <value>`, the same from the command line and from Python.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import numbers
import os
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bellman.errors import ConfigError, closest

C = TypeVar("C")

INT32_MAX = 2**31 - 1
"""The largest count a compiled program holds: steps, updates, gradient steps and replay slots
are 32-bit integers (JAX's default), so no int setting may exceed it."""
SEED_MAX = 2**32 - 1
"""The largest seed: JAX's random keys take 32-bit seeds here (a larger seed would give the
same key as a smaller one)."""
FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: a float setting beyond it becomes infinite in a compiled program."""
MEMORY_SHARE = 0.9
"""The share of the machine's memory (or of the accelerator's) a run's arrays may fill."""


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass, by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        for node, following in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    fields = {f.name for f in dataclasses.fields(cls)}
    return {name: doc for name, doc in docs.items() if name in fields}  # not a ClassVar's


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type annotations of a dataclass's fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_error(name: str, annotation: Any, value: Any) -> ConfigError:
    kind = getattr(annotation, "__name__", str(annotation))
    return ConfigError(f"{name} must be of type {kind}, not {_show(value)}")


def _show(value: Any) -> str:
    """A value as a message quotes it, cut short if long (a huge int, a long list)."""
    text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(name: str, annotation: Any, value: Any) -> Any:
    """Convert `value` to the field's type, or raise ConfigError naming the field.

    Strings convert to numbers and booleans (as the command line and config.json give them);
    a bool is not taken for a number, nor a non-string for a string."""
    origin = typing.get_origin(annotation)
    try:
        if origin is typing.Literal:
            choices = typing.get_args(annotation)
            if not isinstance(value, str | int) or value not in choices:
                options = ", ".join(map(str, choices))
                raise ConfigError(f"{name} must be one of {options}, not {_show(value)}")
            return value
        if origin in (types.UnionType, typing.Union):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            return None if value is None else coerce(name, args[0], value)
        if origin is tuple:
            (item, *_rest) = typing.get_args(annotation)
            values = value if isinstance(value, list | tuple) else [value]
            return tuple(coerce(name, item, v) for v in values)
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            if isinstance(value, bool) or (isinstance(value, numbers.Integral) and value in (0, 1)):
                return bool(value)
            raise TypeError(value)
        if annotation in (int, float) and isinstance(value, bool):
            raise TypeError(value)
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if annotation is str and not isinstance(value, str):
            raise TypeError(value)
        if annotation in (int, float, str):
            return annotation(value)
    except (TypeError, ValueError, OverflowError):
        raise _type_error(name, annotation, value) from None
    return value


def with_overrides(config: C, overrides: dict[str, Any]) -> C:
    """A copy of `config` with fields replaced; unknown names raise ConfigError."""
    cls = type(config)
    types_by_name = field_types(cls)
    if not isinstance(overrides, dict):
        raise ConfigError(f"the settings of {cls.__name__} must be a dict, not {_show(overrides)}")
    changes = {}
    for name, value in overrides.items():
        if name not in types_by_name:
            raise ConfigError(
                f"{cls.__name__} has no setting '{name}'" + closest(str(name), types_by_name)
            )
        changes[name] = coerce(name, types_by_name[name], value)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless `condition` holds."""
    if not condition:
        raise ConfigError(message)


def check_fields(config: Any, limits: dict[str, tuple[int, str]] | None = None) -> None:
    """Raise ConfigError for a field whose value does not have the field's type (a config built
    directly skips `coerce`), a float that is NaN, infinite or beyond float32, or an int above
    INT32_MAX; `limits` gives a field another upper bound and its reason, `(bound, why)`."""
    limits = limits or {}
    for name, annotation in field_types(type(config)).items():
        bound = limits.get(name, (INT32_MAX, "bellman counts in 32-bit integers"))
        _check_value(name, annotation, getattr(config, name), bound)


def _check_value(name: str, annotation: Any, value: Any, bound: tuple[int, str]) -> None:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        coerce(name, annotation, value)
    elif origin in (types.UnionType, typing.Union):
        if value is not None:
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            _check_value(name, args[0], value, bound)
    elif origin is tuple:
        if not isinstance(value, tuple):
            raise _type_error(name, annotation, value)
        for item in value:
            _check_value(name, typing.get_args(annotation)[0], item, bound)
    elif annotation is bool:
        if not isinstance(value, bool):
            raise _type_error(name, annotation, value)
    elif annotation is int:
        if not is_int(value):
            raise _type_error(name, annotation, value)
        at_most(name, int(value), *bound)
    elif annotation is float:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise _type_error(name, annotation, value)
        number = check_number(name, value)
        require(math.isfinite(number), f"{name} must be a finite number, not {_show(value)}")
        require(
            abs(number) <= FLOAT32_MAX,
            f"{name} must lie within +-3.4e38 (a 32-bit float's range), not {number:g}",
        )
    elif annotation is str and not isinstance(value, str):
        raise _type_error(name, annotation, value)


def at_most(name: str, value: int, bound: int, why: str) -> None:
    """Raise ConfigError unless `value` <= `bound`; `why` says where the bound comes from."""
    require(value <= bound, f"{name} must be at most {bound:,} ({why}), not {_show(value)}")


def at_least(config: Any, low: float, *names: str) -> None:
    """Raise ConfigError for the first of the fields `names` below `low`."""
    for name in names:
        value = getattr(config, name)
        require(value >= low, f"{name} must be at least {low:g}, not {_show(value)}")


def positive(config: Any, *names: str) -> None:
    """Raise ConfigError for the first of the fields `names` that is not above 0."""
    for name in names:
        value = getattr(config, name)
        require(value > 0, f"{name} must be positive, not {_show(value)}")


def within(config: Any, low: float, high: float, *names: str, open_low: bool = False) -> None:
    """Raise ConfigError for the first of the fields `names` outside [low, high] ((low, high]
    with `open_low`)."""
    for name in names:
        value = getattr(config, name)
        inside = (low < value if open_low else low <= value) and value <= high
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}]"
        require(inside, f"{name} must lie in {interval}, not {_show(value)}")


def product_at_most(config: Any, names: tuple[str, ...], bound: int, why: str) -> None:
    """Raise ConfigError if the product of the fields `names` exceeds `bound` (`why`)."""
    product = math.prod(getattr(config, name) for name in names)
    require(
        product <= bound,
        f"{' x '.join(names)} must be at most {bound:,} ({why}), not {_show(product)}",
    )


def is_int(value: Any) -> bool:
    """An int (Python's or numpy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_number(name: str, value: Any) -> float:
    """`value` as a float if it is a real number (not a bool), else ConfigError naming `name`;
    an int beyond any float becomes an infinity (for the range check that follows)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, not {_show(value)}")
    try:
        return float(value)
    except OverflowError:  # an int beyond any float
        return math.inf if typing.cast(Any, value) > 0 else -math.inf


def check_int(name: str, value: Any, low: int, high: int, why: str) -> int:
    """`value` if it is an int in [low, high] (a function argument, not a config field), else
    ConfigError naming `name`; `why` says where `high` comes from."""
    if not is_int(value):
        raise _type_error(name, int, value)
    number = int(value)
    require(number >= low, f"{name} must be at least {low:,}, not {_show(number)}")
    at_most(name, number, high, why)
    return number


def as_path(name: str, value: Any) -> Path:
    """A path argument (`out`, `run_dir`) as a Path, or ConfigError when it is not a str or an
    os.PathLike."""
    if not isinstance(value, str | os.PathLike) or value == "":
        raise ConfigError(f"{name} must be a path (a str or os.PathLike), not {_show(value)}")
    return Path(value)


def memory_limit() -> tuple[int, str]:
    """The bytes a run's arrays may take and the memory they come from: the first accelerator's
    (a GPU's) when JAX computes on one, else this machine's physical memory (or its container's
    limit, if lower)."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"the {device.platform.upper()}'s"
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:  # a container's limit (cgroup v2)
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        total = min(total, int(text)) if text.isdigit() else total
    except OSError:
        pass
    return total, "this machine's"


def gib(nbytes: float) -> str:
    """Bytes in GiB, as memory messages give them: `372.5 GiB`."""
    return f"{nbytes / 2**30:,.1f} GiB"


def size(nbytes: float) -> str:
    """Bytes in the largest unit that leaves a number >= 1: `512 bytes`, `3.2 MiB`."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes:,.0f} bytes"


def require_memory(what: str, nbytes: int, detail: str) -> None:
    """Raise ConfigError if `what` would take more than MEMORY_SHARE of the memory available
    (`memory_limit`): `the replay memory would take 372.5 GiB (detail), more than 90% of this
    machine's 23.4 GiB`."""
    total, whose = memory_limit()
    require(
        nbytes <= MEMORY_SHARE * total,
        f"{what} would take {gib(nbytes)} ({detail}), more than {MEMORY_SHARE:.0%} of "
        f"{whose} {gib(total)}",
    )


def to_dict(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


# ----- settings a compiled program takes as data -----
#
# A config's float fields (step sizes, discounts, coefficients, schedule ends, noise scales) are
# traced: a compiled program takes them as arrays, one value per member (setting x seed), so runs
# that differ only in them share one program, vmapped. Every other field (sizes, counts, switches)
# is static: compiled into the program, so runs that differ in one need programs of their own.
# A config class names the float fields that must stay static (a value that switches a part of
# the computation on or off) in `STATIC_FLOATS`.


def traced_fields(config: Any) -> tuple[str, ...]:
    """The names of `config`'s traced settings (a config or its class)."""
    return _traced_fields(config if isinstance(config, type) else type(config))


@functools.cache
def _traced_fields(cls: type) -> tuple[str, ...]:
    static = getattr(cls, "STATIC_FLOATS", ())
    return tuple(
        name for name, kind in field_types(cls).items() if kind is float and name not in static
    )


def static_part(config: Any) -> Any:
    """`config` with its traced settings blanked (None): what a compiled program depends on.
    Configs with equal static parts run in one program."""
    return dataclasses.replace(config, **dict.fromkeys(traced_fields(config)))


def traced_values(configs: typing.Sequence[Any], seeds: int) -> dict[str, Any]:
    """The traced settings of `configs` (one static part) as float32 arrays `[len(configs) *
    seeds]`, setting-major: member k * seeds + s is seed s of setting k."""
    names = traced_fields(configs[0])
    return {
        name: np.repeat(np.asarray([getattr(c, name) for c in configs], np.float32), seeds)
        for name in names
    }


def with_values(static: Any, values: dict[str, Any]) -> Any:
    """The config of one member inside a compiled program: the static part with the member's
    traced settings (arrays) in place."""
    return dataclasses.replace(static, **values)
