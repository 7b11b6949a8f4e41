"""The `safety:` section of the site config: zones, lines, rules per camera, the store and alert sinks.

Pure data with validation; no YAML here (config/site.py reads the file and hands
the mapping to ``parse_safety`` with its ``Reader``, which names the file, line and
field). Importing this module costs nothing, so `anjeon config validate` works on
a base install.

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
from dataclasses import dataclass, field, fields
from typing import Any

from anjeon.protocol.wire import CAMERA_ID

from .evidence import ClipSpec, ReportSpec, RetentionSpec, parse_evidence
from .geometry import is_simple_polygon, polygon_area
from .schema import ConfigPath, ErrorFn, Reader, setting

RULE_TYPES = ("intrusion", "helmet", "fall", "crowding", "line_crossing", "dwell")
ZONE_RULES = ("intrusion", "helmet", "crowding", "dwell")  # need a zone; fall takes one optionally
ALERT_TYPES = ("log", "webhook", "mqtt")
SEVERITIES = ("info", "warning", "critical")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
WEBHOOK_URL = re.compile(r"^https?://[^\s/]+")
MAX_POINTS = 64  # a zone drawn by hand has a handful of corners; thousands would be an attack or a mistake
MAX_ITEMS = 64  # zones, lines, rules per camera, and alert sinks
DEFAULT_MIN_DURATION = {"intrusion": 1.0, "helmet": 2.0, "fall": 2.0}  # by rule type; others 0


@dataclass(frozen=True)
class Hours:
    """A daily window in local time, minutes since midnight; start > end wraps past midnight."""

    start: int
    end: int

    def contains(self, minute_of_day: int) -> bool:
        if self.start <= self.end:
            return self.start <= minute_of_day < self.end
        return minute_of_day >= self.start or minute_of_day < self.end


def _hours(value: Any, error: ErrorFn) -> Hours:
    match = HOURS.match(value) if isinstance(value, str) else None
    if not match:
        raise error(f'hours are HH:MM-HH:MM, e.g. "07:00-19:00", got {value!r}')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise error(f"{value!r} is not a time of day")
    return Hours(h1 * 60 + m1, h2 * 60 + m2)


@dataclass(frozen=True)
class RuleSpec:
    type: str = setting(choices=RULE_TYPES)
    name: str = setting("", pattern=NAME)  # default: TYPE-ZONE (or TYPE-LINE); unique per camera
    zone: str = setting("")
    line: str = setting("")
    # seconds the condition must hold (per track) before an event starts; default by type when read from a file
    min_duration: float = setting(0.0, 0.0, 86400.0)
    end_after: float = setting(2.0, 0.1, 3600.0)  # seconds without the condition before the event ends
    cooldown: float = setting(0.0, 0.0, 86400.0)  # seconds after an end before the same rule may start again
    hours: Hours | None = setting(None, parse=_hours)  # only during these hours
    max_people: int = setting(0, 0, 10000)  # crowding: more than this many people
    severity: str = setting("warning", choices=SEVERITIES)
    # seconds (capture time) within which an event left open by a previous run of the service is carried on
    # by the first result after the restart; a longer gap ends it at its last update (at least end_after)
    resume_within: float = setting(300.0, 0.0, 86400.0)


@dataclass(frozen=True)
class LineSpec:
    points: tuple[tuple[float, float], tuple[float, float]]
    restricted: str = "right"  # side of the line, looking from its first point to its second


@dataclass(frozen=True)
class CameraRules:
    zones: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    lines: dict[str, LineSpec] = field(default_factory=dict)
    rules: tuple[RuleSpec, ...] = ()


def _secret(value: Any, error: ErrorFn) -> str:
    if not isinstance(value, str):  # never echo the value: it is a password (a bare 123456 is a YAML number)
        raise error("must be text (put it in quotes)")
    return value


def _transitions(value: Any, error: ErrorFn) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(o not in ("start", "update", "end") for o in value):
        raise error("must be a list of start, update, end")
    return tuple(value)


@dataclass(frozen=True)
class AlertSpec:
    type: str = setting(choices=ALERT_TYPES)
    url: str = setting("")  # webhook
    host: str = setting("127.0.0.1")  # mqtt
    port: int = setting(1883, 1, 65535)
    topic: str = setting("anjeon/events")
    username: str = setting("")  # mqtt: broker login (docs/security.md)
    password: str = setting("", parse=_secret)
    tls: bool = setting(False)  # mqtt over TLS; ca_file: the CA that signed the broker's certificate
    ca_file: str = setting("")  # default: the system CAs
    timeout: float = setting(5.0, 0.1, 120.0)  # seconds per attempt
    retries: int = setting(3, 0, 20)  # attempts after the first
    backoff: float = setting(1.0, 0.01, 60.0)  # seconds before the first retry; doubles, capped at 30 s
    on: tuple[str, ...] = setting(("start", "end"), parse=_transitions)  # which transitions alert


@dataclass
class SafetyConfig:
    store: str = setting("data/events.db")
    snapshots: str = setting("")  # default: a `snapshots` folder beside the store
    cameras: dict[str, CameraRules] = field(default_factory=dict)
    alerts: tuple[AlertSpec, ...] = ()
    # Evidence (config/evidence.py): clip settings (None: off), per-camera overrides, retention, reports.
    clips: ClipSpec | None = None
    camera_clips: dict[str, ClipSpec | None] = field(default_factory=dict)
    retention: RetentionSpec = field(default_factory=RetentionSpec)
    reports: ReportSpec | None = None


SAFETY_KEYS = ("store", "snapshots", "cameras", "alerts", "clips", "retention", "reports")


# ---------------------------------------------------------------- parsing


def _polygon(p: Reader, value: Any, path: ConfigPath) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, (list, tuple)) or not 3 <= len(value) <= MAX_POINTS:
        raise p.error(path, f"a zone is a list of 3..{MAX_POINTS} [x, y] points in 0..1, got {value!r:.80}")
    points = tuple(p.point(v, path) for v in value)
    if not is_simple_polygon(points):
        raise p.error(path, "the polygon's edges cross each other; list the corners in order around the zone")
    if polygon_area(points) < 1e-6:
        raise p.error(path, "the polygon has no area (points on one line or repeated)")
    return points


def _line(p: Reader, value: Any, path: ConfigPath) -> LineSpec:
    data = p.mapping(value, path, ("points", "restricted"))
    pts = data.get("points")
    if not (isinstance(pts, (list, tuple)) and len(pts) == 2):
        raise p.error(path + ("points",), "a line is two [x, y] points in 0..1")
    a, b = p.point(pts[0], path + ("points",)), p.point(pts[1], path + ("points",))
    if abs(a[0] - b[0]) + abs(a[1] - b[1]) < 1e-6:
        raise p.error(path + ("points",), "the two points are the same")
    restricted = p.text(data.get("restricted", "right"), path + ("restricted",), choices=("left", "right"))
    return LineSpec((a, b), restricted)


_RULE_KEYS = tuple(f.name for f in fields(RuleSpec))


def _rule(p: Reader, value: Any, path: ConfigPath, cam: CameraRules) -> RuleSpec:
    data = p.mapping(value, path, _RULE_KEYS)
    if "type" not in data:
        raise p.error(path, f"a rule needs a type: {', '.join(RULE_TYPES)}")
    # `zone: null` (the editor writes it) is no zone
    given = {k: v for k, v in data.items() if v is not None or k not in ("zone", "line", "hours")}
    values = p.values(RuleSpec, given, path)
    kind, zone, line = values["type"], values.get("zone", ""), values.get("line", "")
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
    values.setdefault("name", f"{kind}-{zone or line or 'all'}")
    values.setdefault("min_duration", DEFAULT_MIN_DURATION.get(kind, 0.0))
    return RuleSpec(**values)


def _camera(p: Reader, value: Any, path: ConfigPath) -> CameraRules:
    data = p.mapping(value, path, ("zones", "lines", "rules", "clips"))  # clips: config/evidence.py
    zones = {
        k: _polygon(p, v, path + ("zones", k))
        for k, v in p.items(data.get("zones"), path + ("zones",), "zone", MAX_ITEMS, NAME).items()
    }
    lines = {
        k: _line(p, v, path + ("lines", k))
        for k, v in p.items(data.get("lines"), path + ("lines",), "line", MAX_ITEMS, NAME).items()
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


def _alert(p: Reader, value: Any, path: ConfigPath) -> AlertSpec:
    data = p.mapping(value, path, tuple(f.name for f in fields(AlertSpec)))
    if "type" not in data:
        raise p.error(path + ("type",), f"an alert sink needs a type: {', '.join(ALERT_TYPES)}")
    values = p.values(AlertSpec, data, path)
    if values["type"] == "webhook" and not WEBHOOK_URL.match(values.get("url", "")):
        url = values.get("url", "")
        raise p.error(path + ("url",), f"a webhook needs an http:// or https:// url, got {url!r}")
    return AlertSpec(**values)


def parse_safety(p: Reader, data: Any, path: ConfigPath = ("safety",)) -> SafetyConfig:
    """Validate the `safety:` mapping; ``p`` names the file, line and field of any error."""
    data = p.mapping(data, path, SAFETY_KEYS)
    config = SafetyConfig(
        **p.values(SafetyConfig, {k: data[k] for k in ("store", "snapshots") if k in data}, path)
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
    parse_evidence(p, data, config, path)
    return config
