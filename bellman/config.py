"""Typed, frozen configs: field docstrings (the CLI's help), overrides and range checks."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from typing import Any, TypeVar

from bellman.errors import ConfigError, closest

C = TypeVar("C")


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
    return docs


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type annotations of a dataclass's fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(name: str, annotation: Any, value: Any) -> Any:
    """Convert `value` to the field's type, or raise ConfigError naming the field."""
    origin = typing.get_origin(annotation)
    try:
        if origin is typing.Literal:
            choices = typing.get_args(annotation)
            if value not in choices:
                options = ", ".join(map(str, choices))
                raise ConfigError(f"{name} must be one of {options}, not {value!r}")
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
            return bool(value)
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if annotation in (int, float, str):
            return annotation(value)
    except (TypeError, ValueError):
        kind = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(f"{name} must be of type {kind}, not {value!r}") from None
    return value


def with_overrides(config: C, overrides: dict[str, Any]) -> C:
    """A copy of `config` with fields replaced; unknown names raise ConfigError."""
    cls = type(config)
    types_by_name = field_types(cls)
    changes = {}
    for name, value in overrides.items():
        if name not in types_by_name:
            raise ConfigError(
                f"{cls.__name__} has no setting '{name}'" + closest(name, types_by_name)
            )
        changes[name] = coerce(name, types_by_name[name], value)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless `condition` holds."""
    if not condition:
        raise ConfigError(message)


def to_dict(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
