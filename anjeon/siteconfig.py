"""The site config: one YAML file describing the broker, the workers and the cameras.

Every section is a dataclass; unknown keys, wrong types and out-of-range
values are rejected with the file, line and field named, before anything
starts. docs/site-config.md shows a full example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anjeon.protocol.endpoints import DEFAULT_BASE_PORT
from anjeon.protocol.wire import CAMERA_ID


class ConfigError(ValueError):
    pass


def _bounded(default: Any, lo: float | None = None, hi: float | None = None, doc: str = "") -> Any:
    return field(default=default, metadata={"min": lo, "max": hi, "doc": doc})


@dataclass
class BrokerSection:
    bind: str = _bounded("*", doc="address the broker binds ('*' = all interfaces)")
    base_port: int = _bounded(DEFAULT_BASE_PORT, 1, 65531, "first of the five ports")
    max_age: float = _bounded(1.0, 0.01, 60.0, "seconds a pending frame may wait for a worker")


def _model_names(value: Any, error: Callable[[str], ConfigError]) -> tuple[str, ...]:
    """`model: person` or `model: [person, helmet]`: every model runs on every frame."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise error(f"must be a model name or path, or a non-empty list of them, got {value!r}")
    if len(set(names)) != len(names):
        raise error(f"lists a model twice: {value!r}")
    return tuple(names)


def _batch_size(value: Any, error: Callable[[str], ConfigError]) -> int | str:
    from anjeon.inference.batching import parse_batch  # torch-free

    try:
        return parse_batch(value)
    except ValueError as exc:
        raise error(str(exc)) from None


def _class_names(value: Any, error: Callable[[str], ConfigError]) -> dict[str, tuple[str, ...]]:
    """`classes: {person: [person, Normal, Fall]}`: anjeon class -> the model labels published as it."""
    if not isinstance(value, dict):
        raise error(f"must map an anjeon class to a list of model labels, got {value!r}")
    out: dict[str, tuple[str, ...]] = {}
    for cls, labels in value.items():
        labels = [labels] if isinstance(labels, str) else labels
        if (
            not isinstance(cls, str)
            or "=" in cls
            or not isinstance(labels, list)
            or not labels
            or not all(isinstance(x, str) and x and "," not in x for x in labels)
        ):
            raise error(f"{cls!r}: must be a class name mapped to a non-empty list of labels (no ',' or '=')")
        out[cls] = tuple(labels)
    return out


@dataclass
class WorkersSection:
    count: int = _bounded(1, 0, 64, "worker processes to start on this machine")
    model: tuple[str, ...] = field(
        default=("person",),
        metadata={"parse": _model_names, "doc": "built-in model name or model file path, or a list of them"},
    )
    classes: dict[str, tuple[str, ...]] = field(
        default_factory=dict,
        metadata={
            "parse": _class_names,
            "doc": "anjeon class -> model labels, e.g. person: [person, Normal, Fall]",
        },
    )
    device: str = _bounded("auto", doc="auto, cpu, cuda:0, ...")
    batch: int | str = field(
        default="auto",
        metadata={"parse": _batch_size, "doc": "largest batch, or auto (the measured default of the device)"},
    )
    threads: int = _bounded(0, 0, 256, "torch threads per worker (0: split this machine's cores)")
    max_age: float = _bounded(1.0, 0.01, 60.0, "drop frames older than this, before decoding")
    render: bool = _bounded(False, doc="also publish JPEGs with boxes drawn")


@dataclass
class CameraSection:
    source: str = _bounded("", doc="webcam index, /dev/videoN, URL, video/image file, folder or 'synthetic'")
    fps: float = _bounded(10.0, 0.1, 120.0, "frames sent per second at most")
    width: int = _bounded(0, 0, 8192, "resize to this width before sending (0: keep)")
    quality: int = _bounded(80, 10, 100, "JPEG quality")
    loop: bool = _bounded(False, doc="replay files and folders forever")
    realtime: bool = _bounded(
        True, doc="pace files and folders at their native rate (false: as fast as they decode)"
    )
    transport: str = field(
        default="tcp",
        metadata={
            "min": None,
            "max": None,
            "choices": ("tcp", "udp"),
            "doc": "RTSP transport: tcp (robust) or udp (less delay)",
        },
    )
    stall_timeout: float = _bounded(
        10.0, 1.0, 3600.0, "seconds without a frame before a live camera counts as lost"
    )


@dataclass
class SecuritySection:
    keys: str = _bounded(
        "", doc="CURVE key folder (anjeon keys init), relative to this file; empty: plaintext bus"
    )


@dataclass
class SiteConfig:
    broker: BrokerSection = field(default_factory=BrokerSection)
    workers: WorkersSection = field(default_factory=WorkersSection)
    cameras: dict[str, CameraSection] = field(default_factory=dict)
    safety: Any = None  # anjeon.safety.config.SafetyConfig when the file has a safety: section
    security: SecuritySection = field(default_factory=SecuritySection)


def _key_lines(node: Any, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Line number of every mapping key, by its path, from PyYAML's node tree."""
    import yaml

    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (str(key.value),)
            out[sub] = key.start_mark.line + 1
            _key_lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):  # list items by index (safety rules, zone points)
        for index, item in enumerate(node.value):
            sub = path + (str(index),)
            out[sub] = item.start_mark.line + 1
            _key_lines(item, sub, out)
    return out


class _Reader:
    def __init__(self, source: str, lines: dict[tuple, int]) -> None:
        self.source, self.lines = source, lines

    def error(self, path: tuple, message: str) -> ConfigError:
        line = None
        for cut in range(len(path), 0, -1):  # nearest key that has a line
            line = self.lines.get(path[:cut])
            if line:
                break
        where = f"{self.source}:{line}" if line else self.source
        name = ".".join(path) if path else "(top level)"
        return ConfigError(f"{where}: {name}: {message}")

    def section(self, cls: type, data: Any, path: tuple) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error(path, f"must be a mapping of settings, not {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if key not in fields:
                raise self.error(path + (str(key),), f"unknown setting; allowed: {', '.join(fields)}")
        values = {
            name: self.value(f, data[name], path + (name,)) for name, f in fields.items() if name in data
        }
        return cls(**values)

    def value(self, f: dataclasses.Field, value: Any, path: tuple) -> Any:
        parse = f.metadata.get("parse")
        if parse is not None:  # a field with its own shape (a name or a list of names, a mapping)
            return parse(value, lambda message: self.error(path, message))
        kind = type(f.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(path, f"must be {kind.__name__}, got {value!r}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise self.error(path, f"{value!r} is not one of {', '.join(choices)}")
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and value < lo or hi is not None and value > hi:
            raise self.error(path, f"{value!r} is out of range {lo}..{hi}")
        return value


def parse_site_config(text: str, source: str = "<config>") -> SiteConfig:
    import yaml

    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    reader = _Reader(source, lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise reader.error((), "the file must be a mapping with broker, workers and cameras sections")
    unknown = set(data) - {"broker", "workers", "cameras", "safety", "security"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise reader.error((key,), "unknown section; allowed: broker, workers, cameras, safety, security")
    config = SiteConfig(
        broker=reader.section(BrokerSection, data.get("broker"), ("broker",)),
        workers=reader.section(WorkersSection, data.get("workers"), ("workers",)),
        security=reader.section(SecuritySection, data.get("security"), ("security",)),
    )
    cameras = data.get("cameras") or {}
    if not isinstance(cameras, dict):
        raise reader.error(("cameras",), "must map camera ids to their settings")
    for cam_id, settings in cameras.items():
        path = ("cameras", str(cam_id))
        if not isinstance(cam_id, str) or not CAMERA_ID.match(cam_id):
            raise reader.error(path, "a camera id is 1-64 letters, digits, '_', '.' or '-'")
        if isinstance(settings, (str, int)) and not isinstance(settings, bool):
            settings = {"source": str(settings)}  # shorthand: `gate: rtsp://...`
        camera = reader.section(CameraSection, settings, path)
        if not camera.source:
            raise reader.error(path, "needs a source")
        config.cameras[cam_id] = camera
    if "safety" in data:  # zones, lines, rules, store, alerts: docs/safety.md
        from anjeon.safety.config import parse_safety

        config.safety = parse_safety(data["safety"], reader.error)
    return config


def load_site_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read site config {path}: {exc.strerror}") from None
    return parse_site_config(text, str(path))
