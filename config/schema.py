"""The one validation system of the site config: typed dataclass fields and a reader that names file, line and field.

A setting is a dataclass field made with ``setting()``: its default says its type
(float, int, bool, str), and its metadata the range, the choices, a pattern, or a
``parse`` function for a shape of its own (a list of names, a mapping). ``Reader``
checks a YAML mapping against such a dataclass and raises ``ConfigError`` as
``FILE:LINE: dotted.path: message``. The CLI builds its flags from the same fields
(anjeon/cli_options.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

ConfigPath = tuple[str, ...]
ErrorFn = Callable[[str], "ConfigError"]  # a field's own error: message -> the exception to raise
ParseFn = Callable[[Any, ErrorFn], Any]
T = TypeVar("T")


class ConfigError(ValueError):
    pass


def setting(
    default: Any = dataclasses.MISSING,
    lo: float | None = None,
    hi: float | None = None,
    doc: str = "",
    *,
    choices: tuple[str, ...] = (),
    pattern: re.Pattern[str] | None = None,
    parse: ParseFn | None = None,
    factory: Callable[[], Any] | None = None,
    yaml: bool = True,
) -> Any:
    """A dataclass field with its rules; ``yaml=False``: not a key of the file (e.g. a camera's id, its key)."""
    metadata = {"min": lo, "max": hi, "doc": doc, "choices": choices, "pattern": pattern, "parse": parse}
    metadata["yaml"] = yaml
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def yaml_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The fields of a settings dataclass that a file may set, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}


def field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


class Reader:
    """Validates values read from one file; every error names ``source:line: path: message``."""

    def __init__(self, source: str, lines: Mapping[ConfigPath, int] | None = None) -> None:
        self.source, self.lines = source, dict(lines or {})

    def error(self, path: ConfigPath, message: str) -> ConfigError:
        line = None
        for cut in range(len(path), 0, -1):  # nearest key that has a line
            line = self.lines.get(path[:cut])
            if line:
                break
        where = f"{self.source}:{line}" if line else self.source
        name = ".".join(path) if path else "(top level)"
        return ConfigError(f"{where}: {name}: {message}")

    # ------------------------------------------------------------ shapes

    def mapping(self, value: Any, path: ConfigPath, allowed: tuple[str, ...] | None = None) -> dict[Any, Any]:
        """A mapping (None: empty) whose keys are all in ``allowed`` (None: any)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping of settings, not {type(value).__name__}")
        for key in value:
            if allowed is not None and key not in allowed:
                raise self.error(path + (str(key),), f"unknown setting; allowed: {', '.join(allowed)}")
        return value

    def number(
        self, value: Any, path: ConfigPath, lo: float | None, hi: float | None, kind: type = float
    ) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and isinstance(value, int)
        if not ok or value != value:  # NaN
            raise self.error(path, f"must be {kind.__name__}, got {value!r}")
        value = kind(value)
        if lo is not None and value < lo or hi is not None and value > hi:
            raise self.error(path, f"{value!r} is out of range {lo}..{hi}")
        return value

    def text(
        self,
        value: Any,
        path: ConfigPath,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] = (),
    ) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"must be text, got {value!r}")
        if choices and value not in choices:
            raise self.error(path, f"{value!r} is not one of {', '.join(choices)}")
        if pattern is not None and not pattern.match(value):
            raise self.error(path, f"{value!r} must be 1-64 letters, digits, '_', '.' or '-'")
        return value

    def flag(self, value: Any, path: ConfigPath) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, got {value!r}")
        return value

    def point(self, value: Any, path: ConfigPath) -> tuple[float, float]:
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise self.error(path, f"a point is [x, y] in 0..1 image coordinates, got {value!r}")
        return (self.number(value[0], path, 0.0, 1.0), self.number(value[1], path, 0.0, 1.0))

    def items(
        self, value: Any, path: ConfigPath, what: str, most: int, pattern: re.Pattern[str]
    ) -> dict[str, Any]:
        """A mapping of at most ``most`` named things (zones, lines), each name matching ``pattern``."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"must map {what} names to their settings")
        if len(value) > most:
            raise self.error(path, f"at most {most} {what}s")
        for key in value:
            self.text(key, path + (str(key),), pattern)
        return value

    # ------------------------------------------------------------ settings dataclasses

    def value(self, f: dataclasses.Field[Any], value: Any, path: ConfigPath) -> Any:
        """One setting checked against its field: its parse function, else its default's type and rules."""
        meta = f.metadata
        parse = meta.get("parse")
        if parse is not None:  # a field with its own shape (a name or a list of names, a mapping)
            return parse(value, lambda message: self.error(path, message))
        kind = type(field_default(f))
        if kind is bool:
            return self.flag(value, path)
        if kind in (int, float):
            return self.number(value, path, meta.get("min"), meta.get("max"), kind)
        return self.text(value, path, meta.get("pattern"), meta.get("choices") or ())

    def values(
        self, cls: type, data: Any, path: ConfigPath, allowed: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """The checked values of the keys ``data`` has (unknown keys rejected); defaults stay the dataclass's."""
        fields = yaml_fields(cls)
        data = self.mapping(data, path, tuple(fields) if allowed is None else allowed)
        return {name: self.value(f, data[name], path + (name,)) for name, f in fields.items() if name in data}

    def section(self, cls: type[T], data: Any, path: ConfigPath, **fixed: Any) -> T:
        """A settings dataclass from a mapping; ``fixed``: values that do not come from the file (an id)."""
        return cls(**fixed, **self.values(cls, data, path))
