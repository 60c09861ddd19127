"""Configs are plain dataclasses with defaults; this module reads, checks and converts them.

A config field carries its help text and limits in the dataclass field's metadata (see
`param`), so `zoo info` can print it and `--set key=value` can check a value against it
without any plugin writing parsing code. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union

from zoo.core.errors import SettingError, UsageError

_MISSING = dataclasses.MISSING


def param(
    default: Any,
    help: str,
    *,
    choices: Iterable[Any] | None = None,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """A config field with a default, one line of help, and optional choices or bounds."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if min is not None:
        metadata["min"] = min
    if max is not None:
        metadata["max"] = max
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


IMPL_HELP = (
    "torch: fused nn.RNN/GRU/LSTM (fast); cells: zoo.cells, stepping through the equations "
    "(same weights and results, slower)"
)


def impl_param() -> Any:
    """The `impl` setting (torch or cells) every recurrent architecture should offer; pair it
    with the annotation `Literal["torch", "cells"]` and build layers with
    `zoo.cells.recurrent_layer(kind, config.impl, ...)`."""
    return param("torch", IMPL_HELP)


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """What `zoo info` shows about one config field."""

    name: str
    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    min: float | None
    max: float | None

    @property
    def type_name(self) -> str:
        if self.choices:
            return "|".join(str(c) for c in self.choices)
        return type_name(self.type)


def type_name(tp: Any) -> str:
    """A short human name for a field type: int, float, str | None, tanh|relu."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = type_name(args[0]) if args else "any"
        return f"list of {inner}"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def fields(config_cls: type) -> list[FieldInfo]:
    """The fields of a config dataclass, with resolved types and help."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if f.default is not _MISSING:
            default = f.default
        elif f.default_factory is not _MISSING:
            default = f.default_factory()
        else:
            default = None
        choices = f.metadata.get("choices")
        tp = hints.get(f.name, Any)
        if choices is None and typing.get_origin(tp) is Literal:
            choices = typing.get_args(tp)
        out.append(
            FieldInfo(
                name=f.name,
                type=tp,
                default=default,
                help=f.metadata.get("help", ""),
                choices=tuple(choices) if choices else None,
                min=f.metadata.get("min"),
                max=f.metadata.get("max"),
            )
        )
    return out


def field_names(config_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls)]


def suggest(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean x?)' for a close match, else ''; used by every 'unknown name' error."""
    if len(name) > 100:  # nothing is that close, and difflib would take quadratic time
        return ""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` for an error line, cut to `limit` characters with its full length said:
    a setting given a megabyte must not make a megabyte of error."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def problem(where: str | None, message: str) -> UsageError:
    """The error for a bad setting: a SettingError when it came from the user's settings
    (`where` None: `--set` or a keyword argument), else a UsageError naming `where` (a file)."""
    return SettingError(message) if where is None else UsageError(f"{where}: {message}")


def convert(info: FieldInfo, value: Any, *, where: str | None = None) -> Any:
    """Convert a raw value (a string from `--set`, or a JSON value) to the field's type.

    Raises a `problem(where, ...)` naming the setting and what was expected.
    """
    converted = _convert_type(info.type, value, info, where)
    _check_limits(info, converted, where)
    return converted


def _expected(info: FieldInfo) -> str:
    return info.type_name


class _Invalid(Exception):
    """A value that does not convert to the type asked for (reported by `_convert_type`)."""


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _Invalid


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.replace("_", ""))
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                raise _Invalid from None
            if f.is_integer():
                return int(f)
    raise _Invalid


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Invalid
    try:
        result = float(value)
    except ValueError:
        raise _Invalid from None
    if not math.isfinite(result):
        raise _Invalid
    return result


def _exactly(kind: type) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        raise _Invalid

    return check


_SCALARS = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _exactly(str),
    dict: _exactly(dict),
}


def _convert_type(tp: Any, value: Any, info: FieldInfo, where: str | None) -> Any:
    try:
        return _convert(tp, value)
    except _Invalid:
        raise problem(
            where, f"{info.name}={shown(value)} is not valid; expected {_expected(info)}"
        ) from None


def _convert(tp: Any, value: Any) -> Any:
    """`value` as type `tp` (unions, Literal choices, lists and tuples of a type, scalars)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
        ):
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _convert(arg, value)
                except _Invalid:
                    continue
        raise _Invalid
    if origin is Literal:
        for a in typing.get_args(tp):
            if value == a or (isinstance(value, str) and str(a) == value):
                return a
        raise _Invalid
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise _Invalid
        converted = [_convert(args[0] if args else Any, v) for v in items]
        return tuple(converted) if origin is tuple else converted
    if tp is Any:
        return value
    convert_scalar = _SCALARS.get(dict if origin is dict else tp)
    if convert_scalar is None:
        raise _Invalid
    return convert_scalar(value)


def _check_limits(info: FieldInfo, value: Any, where: str | None) -> None:
    if value is None:
        return
    if info.choices and value not in info.choices:
        raise problem(
            where,
            f"{info.name}={shown(value)} is not one of " + ", ".join(repr(c) for c in info.choices),
        )
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if info.min is not None and v < info.min:
            raise problem(where, f"{info.name}={shown(v)} is below its minimum {info.min}")
        if info.max is not None and v > info.max:
            raise problem(where, f"{info.name}={shown(v)} is above its maximum {info.max}")


def build(
    config_cls: type, values: Mapping[str, Any] | None = None, *, where: str | None = None
) -> Any:
    """An instance of `config_cls` from defaults updated by `values` (checked and converted);
    `where` names a file the values came from (None: the user's settings)."""
    infos = {f.name: f for f in fields(config_cls)}
    kwargs = {}
    for key, value in (values or {}).items():
        if key not in infos:
            raise problem(
                where,
                f"unknown setting {shown(key)}{suggest(key, infos)}; valid: " + ", ".join(infos),
            )
        kwargs[key] = convert(infos[key], value, where=where)
    try:
        config = config_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise problem(where, str(e)) from None
    check = getattr(config, "check", None)
    if callable(check):
        try:
            check()
        except (TypeError, ValueError) as e:
            raise problem(where, str(e)) from None
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config instance (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def replace(config: Any, values: Mapping[str, Any], *, where: str | None = None) -> Any:
    """A copy of `config` with `values` applied, checked as in `build`."""
    merged = to_dict(config)
    merged.update(values)
    return build(type(config), merged, where=where)


def parse_assignments(items: Iterable[str], *, option: str = "--set") -> dict[str, str]:
    """`["a=1", "b=x"]` -> `{"a": "1", "b": "x"}`, with a clear error for a missing '='."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{option} {shown(item)}: expected KEY=VALUE")
        out[key] = value.strip()
    return out
