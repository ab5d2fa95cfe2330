"""Strict loading of the stages' frozen configs from TOML/JSON dicts: the one `from_dict` every config uses.

Unknown keys and wrongly typed values are refused, naming the key; the values themselves are checked by each
config's `__post_init__`, so a config from a file and one built in code are checked alike.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from cxr_dataset.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types (naming the key).

    A TOML array fills a ``tuple[X, ...]`` field and a table a ``dict[str, X]`` one; an int fills a float."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; valid keys are {sorted(known)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, f"{where}.{key}")
            continue
        kwargs[key] = _typed(hint, value, f"{where}.{key}")
    return cls(**kwargs)


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` as `hint` asks (an int widened to float, a list to a tuple), or `ConfigError` naming `where`."""
    expected = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in expected:
        origin, args = typing.get_origin(option), typing.get_args(option)
        if origin is tuple and isinstance(value, list | tuple):
            return tuple(_typed(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is dict and isinstance(value, dict):
            return {_typed(args[0], k, where): _typed(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if float in expected and type(value) is int:
        return float(value)  # TOML writes 10 for 10.0
    if not any(type(value) is t for t in expected):
        names = " or ".join(_name(t) for t in expected)
        raise ConfigError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def _name(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return "array"
    if typing.get_origin(hint) is dict:
        return "table"
    return getattr(hint, "__name__", str(hint))


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Recursively overlay `overrides` on `base` (tables merge, values replace)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of the TOML file at `path`; `ConfigError` naming it when it cannot be read or parsed."""
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read TOML config: {e}") from None


def load_config(cls: type[T], path: Path, overrides: dict[str, Any] | None = None) -> T:
    """`cls` from the TOML file at `path`, with `overrides` (already typed values) on top."""
    return from_dict(cls, {**read_toml(path), **(overrides or {})}, where=str(path))
