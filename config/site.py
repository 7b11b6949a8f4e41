"""The site config: one YAML file describing the broker, the workers, the cameras, safety and security.

Every section is a settings dataclass (config/schema.py); unknown keys, wrong
types and out-of-range values are rejected with the file, line and field named,
before anything starts. docs/site-config.md shows a full example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anjeon.protocol.endpoints import DEFAULT_BASE_PORT
from anjeon.protocol.wire import CAMERA_ID, DEFAULT_MAX_FRAME_BYTES

from .camera import CameraConfig
from .safety import SafetyConfig, parse_safety
from .schema import ConfigError, ConfigPath, Reader, setting
from .workers import WorkersSection

SECTIONS = ("broker", "workers", "cameras", "safety", "security")


@dataclass
class BrokerSection:
    bind: str = setting("*", doc="address the broker binds ('*' = all interfaces)")
    base_port: int = setting(DEFAULT_BASE_PORT, 1, 65531, "first of the five ports")
    max_age: float = setting(1.0, 0.01, 60.0, "seconds a pending frame may wait for a worker")
    # Bounds on what peers can make the broker hold (counted when hit, shown in the status's "limits").
    max_frame_bytes: int = setting(
        DEFAULT_MAX_FRAME_BYTES, 1024, 48 * 1024 * 1024, "largest JPEG accepted from an edge"
    )
    max_credit: int = setting(
        16, 1, 1024, "most frames one worker may hold at once (raise for big GPU batches)"
    )
    max_cameras: int = setting(4096, 1, 100_000, "most cameras tracked")
    max_peers: int = setting(1024, 1, 100_000, "most processes (edges, workers, subscribers) in the registry")
    unclaimed_fps: float = setting(
        100.0, 0.0, 100_000.0, "frames/s taken from cameras no online edge reports"
    )


@dataclass
class SecuritySection:
    keys: str = setting(
        "", doc="CURVE key folder (anjeon keys init), relative to this file; empty: plaintext bus"
    )


@dataclass
class SiteConfig:
    broker: BrokerSection = field(default_factory=BrokerSection)
    workers: WorkersSection = field(default_factory=WorkersSection)
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    safety: SafetyConfig | None = None  # when the file has a safety: section
    security: SecuritySection = field(default_factory=SecuritySection)


def _key_lines(
    node: Any, path: ConfigPath = (), out: dict[ConfigPath, int] | None = None
) -> dict[ConfigPath, int]:
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


def _cameras(reader: Reader, cameras: Any) -> dict[str, CameraConfig]:
    cameras = cameras or {}
    if not isinstance(cameras, dict):
        raise reader.error(("cameras",), "must map camera ids to their settings")
    out = {}
    for cam_id, settings in cameras.items():
        path = ("cameras", str(cam_id))
        if not isinstance(cam_id, str) or not CAMERA_ID.match(cam_id):
            raise reader.error(path, "a camera id is 1-64 letters, digits, '_', '.' or '-'")
        if isinstance(settings, (str, int)) and not isinstance(settings, bool):
            settings = {"source": str(settings)}  # shorthand: `gate: rtsp://...`
        camera = reader.section(CameraConfig, settings, path, id=cam_id)
        if not camera.source:
            raise reader.error(path, "needs a source")
        out[cam_id] = camera
    return out


def parse_site_config(text: str, source: str = "<config>") -> SiteConfig:
    import yaml

    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    reader = Reader(source, lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise reader.error((), "the file must be a mapping with broker, workers and cameras sections")
    unknown = set(data) - set(SECTIONS)
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise reader.error((key,), f"unknown section; allowed: {', '.join(SECTIONS)}")
    broker = reader.section(BrokerSection, data.get("broker"), ("broker",))
    workers = reader.section(WorkersSection, data.get("workers"), ("workers",))
    security = reader.section(SecuritySection, data.get("security"), ("security",))
    cameras = _cameras(reader, data.get("cameras"))
    # zones, lines, rules, store, alerts, evidence: docs/safety.md
    safety = parse_safety(reader, data["safety"], ("safety",)) if "safety" in data else None
    return SiteConfig(broker=broker, workers=workers, cameras=cameras, safety=safety, security=security)


def load_site_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read site config {path}: {exc.strerror}") from None
    return parse_site_config(text, str(path))
