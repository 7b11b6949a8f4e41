"""The `safety:` section of the site config: zones, lines, rules per camera, the store and alert sinks.

Pure data with validation; no YAML here (anjeon/siteconfig.py reads the file
and hands each mapping to ``parse_safety`` with an ``error(path, message)``
callback that names the file, line and field). Importing this module costs
nothing, so `anjeon config validate` works on a base install.

    safety:
      store: data/events.db            # SQLite (WAL); snapshots beside it unless `snapshots:` is set
      cameras:
        gate:
          zones:
            crane: [[0.1, 0.5], [0.5, 0.5], [0.5, 1.0], [0.1, 1.0]]   # normalized 0..1 (x, y)
          lines:
            fence: {points: [[0, 0.6], [1, 0.6]], restricted: right}
          rules:
            - {type: intrusion, zone: crane, min_duration: 2, hours: "07:00-19:00"}
            - {type: crowding, zone: crane, max_people: 3}
            - {type: line_crossing, line: fence}
            - {type: fall, min_duration: 2}
      alerts:
        - {type: log}
        - {type: webhook, url: "http://10.0.0.9/hook"}
        - {type: mqtt, host: 10.0.0.9, topic: anjeon/events}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from anjeon.protocol.wire import CAMERA_ID

ErrorFn = Callable[[tuple, str], Exception]

RULE_TYPES = ("intrusion", "helmet", "fall", "crowding", "line_crossing", "dwell")
ZONE_RULES = ("intrusion", "helmet", "crowding", "dwell")  # need a zone; fall takes one optionally
ALERT_TYPES = ("log", "webhook", "mqtt")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
MAX_POINTS = 64  # a zone drawn by hand has a handful of corners; thousands would be an attack or a mistake
MAX_ITEMS = 64  # zones, lines, rules per camera, and alert sinks


@dataclass(frozen=True)
class Hours:
    """A daily window in local time, minutes since midnight; start > end wraps past midnight."""

    start: int
    end: int

    def contains(self, minute_of_day: int) -> bool:
        if self.start <= self.end:
            return self.start <= minute_of_day < self.end
        return minute_of_day >= self.start or minute_of_day < self.end


@dataclass(frozen=True)
class RuleSpec:
    type: str
    name: str = ""  # default: TYPE-ZONE (or TYPE-LINE); unique per camera
    zone: str = ""
    line: str = ""
    min_duration: float = 0.0  # seconds the condition must hold (per track) before an event starts
    end_after: float = 2.0  # seconds without the condition before the event ends (inertia against flicker)
    cooldown: float = 0.0  # seconds after an end before the same rule may start a new event
    hours: Hours | None = None  # only during these hours
    max_people: int = 0  # crowding: more than this many people
    severity: str = "warning"


@dataclass(frozen=True)
class LineSpec:
    points: tuple[tuple[float, float], tuple[float, float]]
    restricted: str = "right"  # side of the line, looking from its first point to its second


@dataclass(frozen=True)
class CameraRules:
    zones: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    lines: dict[str, LineSpec] = field(default_factory=dict)
    rules: tuple[RuleSpec, ...] = ()


@dataclass(frozen=True)
class AlertSpec:
    type: str
    url: str = ""  # webhook
    host: str = "127.0.0.1"  # mqtt
    port: int = 1883
    topic: str = "anjeon/events"
    username: str = ""  # mqtt: broker login (docs/security.md)
    password: str = ""
    tls: bool = (
        False  # mqtt over TLS; ca_file: the CA that signed the broker's certificate (default: system CAs)
    )
    ca_file: str = ""
    timeout: float = 5.0  # seconds per attempt
    retries: int = 3  # attempts after the first
    backoff: float = 1.0  # seconds before the first retry; doubles, capped at 30 s
    on: tuple[str, ...] = ("start", "end")  # which transitions alert


@dataclass
class SafetyConfig:
    store: str = "data/events.db"
    snapshots: str = ""  # default: a `snapshots` folder beside the store
    cameras: dict[str, CameraRules] = field(default_factory=dict)
    alerts: tuple[AlertSpec, ...] = ()
    # Evidence (safety/evidence_config.py): clip settings (None: off), per-camera overrides, retention, reports.
    clips: Any = None
    camera_clips: dict[str, Any] = field(default_factory=dict)
    retention: Any = None
    reports: Any = None


# ---------------------------------------------------------------- parsing


class _Parse:
    def __init__(self, error: ErrorFn) -> None:
        self.error = error

    def mapping(self, value: Any, path: tuple, allowed: tuple[str, ...]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, not {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.error(path + (str(key),), f"unknown setting; allowed: {', '.join(allowed)}")
        return value

    def number(self, value: Any, path: tuple, lo: float, hi: float, kind: type = float) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and isinstance(value, int)
        if not ok or value != value:  # NaN
            raise self.error(path, f"must be {kind.__name__}, got {value!r}")
        if not lo <= value <= hi:
            raise self.error(path, f"{value!r} is out of range {lo}..{hi}")
        return kind(value)

    def text(self, value: Any, path: tuple, pattern: re.Pattern | None = None, choices: tuple = ()) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"must be text, got {value!r}")
        if choices and value not in choices:
            raise self.error(path, f"{value!r} is not one of {', '.join(choices)}")
        if pattern is not None and not pattern.match(value):
            raise self.error(path, f"{value!r} must be 1-64 letters, digits, '_', '.' or '-'")
        return value

    def point(self, value: Any, path: tuple) -> tuple[float, float]:
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise self.error(path, f"a point is [x, y] in 0..1 image coordinates, got {value!r}")
        return (self.number(value[0], path, 0.0, 1.0), self.number(value[1], path, 0.0, 1.0))

    def items(self, value: Any, path: tuple, what: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"must map {what} names to their settings")
        if len(value) > MAX_ITEMS:
            raise self.error(path, f"at most {MAX_ITEMS} {what}s")
        for key in value:
            self.text(key, path + (str(key),), NAME)
        return value


def _polygon(p: _Parse, value: Any, path: tuple) -> tuple[tuple[float, float], ...]:
    from .geometry import is_simple_polygon, polygon_area

    if not isinstance(value, (list, tuple)) or not 3 <= len(value) <= MAX_POINTS:
        raise p.error(path, f"a zone is a list of 3..{MAX_POINTS} [x, y] points in 0..1, got {value!r:.80}")
    points = tuple(p.point(v, path) for v in value)
    if not is_simple_polygon(points):
        raise p.error(path, "the polygon's edges cross each other; list the corners in order around the zone")
    if polygon_area(points) < 1e-6:
        raise p.error(path, "the polygon has no area (points on one line or repeated)")
    return points


def _line(p: _Parse, value: Any, path: tuple) -> LineSpec:
    data = p.mapping(value, path, ("points", "restricted"))
    pts = data.get("points")
    if not (isinstance(pts, (list, tuple)) and len(pts) == 2):
        raise p.error(path + ("points",), "a line is two [x, y] points in 0..1")
    a, b = p.point(pts[0], path + ("points",)), p.point(pts[1], path + ("points",))
    if abs(a[0] - b[0]) + abs(a[1] - b[1]) < 1e-6:
        raise p.error(path + ("points",), "the two points are the same")
    restricted = p.text(data.get("restricted", "right"), path + ("restricted",), choices=("left", "right"))
    return LineSpec((a, b), restricted)


def _hours(p: _Parse, value: Any, path: tuple) -> Hours:
    match = HOURS.match(value) if isinstance(value, str) else None
    if not match:
        raise p.error(path, f'hours are HH:MM-HH:MM, e.g. "07:00-19:00", got {value!r}')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise p.error(path, f"{value!r} is not a time of day")
    return Hours(h1 * 60 + m1, h2 * 60 + m2)


_RULE_KEYS = tuple(f.name for f in fields(RuleSpec))


def _rule(p: _Parse, value: Any, path: tuple, cam: CameraRules) -> RuleSpec:
    data = p.mapping(value, path, _RULE_KEYS)
    if "type" not in data:
        raise p.error(path, f"a rule needs a type: {', '.join(RULE_TYPES)}")
    kind = p.text(data["type"], path + ("type",), choices=RULE_TYPES)
    zone = p.text(data.get("zone", ""), path + ("zone",)) if data.get("zone") is not None else ""
    line = p.text(data.get("line", ""), path + ("line",)) if data.get("line") is not None else ""
    if kind in ZONE_RULES and not zone:
        raise p.error(path + ("zone",), f"a {kind} rule needs a zone")
    if zone and zone not in cam.zones:
        raise p.error(
            path + ("zone",), f"no zone {zone!r} on this camera; zones: {', '.join(cam.zones) or 'none'}"
        )
    if kind == "line_crossing":
        if not line:
            raise p.error(path + ("line",), "a line_crossing rule needs a line")
        if line not in cam.lines:
            raise p.error(
                path + ("line",), f"no line {line!r} on this camera; lines: {', '.join(cam.lines) or 'none'}"
            )
    elif line:
        raise p.error(path + ("line",), f"a {kind} rule takes a zone, not a line")
    if kind == "crowding" and "max_people" not in data:
        raise p.error(
            path + ("max_people",), "a crowding rule needs max_people (more than this many is crowding)"
        )
    if kind == "dwell" and "min_duration" not in data:
        raise p.error(path + ("min_duration",), "a dwell rule needs min_duration (seconds of loitering)")
    default_min = {"intrusion": 1.0, "helmet": 2.0, "fall": 2.0}.get(kind, 0.0)
    spec = RuleSpec(
        type=kind,
        name=p.text(data["name"], path + ("name",), NAME)
        if "name" in data
        else f"{kind}-{zone or line or 'all'}",
        zone=zone,
        line=line,
        min_duration=p.number(data.get("min_duration", default_min), path + ("min_duration",), 0.0, 86400.0),
        end_after=p.number(data.get("end_after", 2.0), path + ("end_after",), 0.1, 3600.0),
        cooldown=p.number(data.get("cooldown", 0.0), path + ("cooldown",), 0.0, 86400.0),
        hours=_hours(p, data["hours"], path + ("hours",)) if data.get("hours") is not None else None,
        max_people=p.number(data.get("max_people", 0), path + ("max_people",), 0, 10000, int),
        severity=p.text(
            data.get("severity", "warning"), path + ("severity",), choices=("info", "warning", "critical")
        ),
    )
    return spec


def _camera(p: _Parse, value: Any, path: tuple) -> CameraRules:
    data = p.mapping(value, path, ("zones", "lines", "rules", "clips"))  # clips: safety/evidence_config.py
    zones = {
        k: _polygon(p, v, path + ("zones", k))
        for k, v in p.items(data.get("zones"), path + ("zones",), "zone").items()
    }
    lines = {
        k: _line(p, v, path + ("lines", k))
        for k, v in p.items(data.get("lines"), path + ("lines",), "line").items()
    }
    cam = CameraRules(zones=zones, lines=lines)
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list) or len(raw_rules) > MAX_ITEMS:
        raise p.error(path + ("rules",), f"must be a list of at most {MAX_ITEMS} rules")
    rules: list[RuleSpec] = []
    for i, raw in enumerate(raw_rules):
        rule = _rule(p, raw, path + ("rules", str(i)), cam)
        if any(r.name == rule.name for r in rules):
            raise p.error(path + ("rules", str(i)), f"two rules are named {rule.name!r}; give one a `name:`")
        rules.append(rule)
    return CameraRules(zones=zones, lines=lines, rules=tuple(rules))


_ALERT_KEYS = tuple(f.name for f in fields(AlertSpec))


def _secret(p: _Parse, value: Any, path: tuple) -> str:
    if not isinstance(value, str):  # never echo the value: it is a password (a bare 123456 is a YAML number)
        raise p.error(path, "must be text (put it in quotes)")
    return value


def _flag(p: _Parse, value: Any, path: tuple) -> bool:
    if not isinstance(value, bool):
        raise p.error(path, f"must be true or false, got {value!r}")
    return value


def _alert(p: _Parse, value: Any, path: tuple) -> AlertSpec:
    data = p.mapping(value, path, _ALERT_KEYS)
    kind = p.text(data.get("type"), path + ("type",), choices=ALERT_TYPES)
    url = p.text(data.get("url", ""), path + ("url",))
    if kind == "webhook" and not re.match(r"^https?://[^\s/]+", url):
        raise p.error(path + ("url",), f"a webhook needs an http:// or https:// url, got {url!r}")
    on = data.get("on", ["start", "end"])
    if not isinstance(on, list) or not on or any(o not in ("start", "update", "end") for o in on):
        raise p.error(path + ("on",), "must be a list of start, update, end")
    return AlertSpec(
        type=kind,
        url=url,
        host=p.text(data.get("host", "127.0.0.1"), path + ("host",)),
        port=p.number(data.get("port", 1883), path + ("port",), 1, 65535, int),
        topic=p.text(data.get("topic", "anjeon/events"), path + ("topic",)),
        username=p.text(data.get("username", ""), path + ("username",)),
        password=_secret(p, data.get("password", ""), path + ("password",)),
        tls=_flag(p, data.get("tls", False), path + ("tls",)),
        ca_file=p.text(data.get("ca_file", ""), path + ("ca_file",)),
        timeout=p.number(data.get("timeout", 5.0), path + ("timeout",), 0.1, 120.0),
        retries=p.number(data.get("retries", 3), path + ("retries",), 0, 20, int),
        backoff=p.number(data.get("backoff", 1.0), path + ("backoff",), 0.01, 60.0),
        on=tuple(on),
    )


def parse_safety(data: Any, error: ErrorFn, path: tuple = ("safety",)) -> SafetyConfig:
    """Validate the `safety:` mapping; ``error(path, message)`` builds the exception to raise."""
    p = _Parse(error)
    data = p.mapping(data, path, ("store", "snapshots", "cameras", "alerts", "clips", "retention", "reports"))
    config = SafetyConfig(
        store=p.text(data.get("store", "data/events.db"), path + ("store",)),
        snapshots=p.text(data.get("snapshots", ""), path + ("snapshots",)),
    )
    cameras = data.get("cameras") or {}
    if not isinstance(cameras, dict):
        raise p.error(path + ("cameras",), "must map camera ids to their zones, lines and rules")
    for cam_id, value in cameras.items():
        cpath = path + ("cameras", str(cam_id))
        if not isinstance(cam_id, str) or not CAMERA_ID.match(cam_id):
            raise p.error(cpath, "a camera id is 1-64 letters, digits, '_', '.' or '-'")
        config.cameras[cam_id] = _camera(p, value, cpath)
    alerts = data.get("alerts") or []
    if not isinstance(alerts, list) or len(alerts) > MAX_ITEMS:
        raise p.error(path + ("alerts",), f"must be a list of at most {MAX_ITEMS} alert sinks")
    config.alerts = tuple(_alert(p, a, path + ("alerts", str(i))) for i, a in enumerate(alerts))
    from .evidence_config import parse_evidence

    parse_evidence(p, data, config, path)
    return config
