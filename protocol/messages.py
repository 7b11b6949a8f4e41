"""Typed decoding of every message kind, in one place.

Each message kind has one decoder here that checks every field's type and
range and raises :class:`~anjeon.protocol.wire.ProtocolError` (``reason`` is
the drop-counter key) for anything wrong. Handlers only ever see what a
decoder returned, never a raw field. The field rules are declared as data
(:class:`Field`), so docs/protocol.md's field tables are printed from the same
declarations (``python -m anjeon.protocol.messages`` prints them).

Conventions every decoder follows:

- A required field that is missing, or any field present with the wrong type
  or out of range, rejects the whole message (``malformed``; camera ids
  ``bad_camera_id``). An optional field that is missing takes its default.
- A float field accepts an int (msgpack writers often send ``1`` for ``1.0``)
  and rejects NaN and infinities; an int field rejects floats and booleans.
- Unknown keys are ignored, so fields can be added within version 1. Where a
  record keeps extra keys (a role's heartbeat figures, passed on in the
  status), it keeps those whose value is plain and bounded and skips the rest.
- Maps and lists keyed or filled by the sender are bounded in entries and
  string lengths, so no message can make a receiver hold unbounded state.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

import msgpack

from . import wire
from .wire import ProtocolError

# Kinds added by this module (the older ones live in wire).
GOODBYE = wire.GOODBYE
EVENT = "event"
EVENTS_QUERY = "events_query"
EVENTS = "events"
ERROR = "error"
TRACKS = "tracks"
ACK = "ack"
ACKED = "acked"

# Application size limits per kind. Most headers are small; a heartbeat of an edge
# with thousands of cameras and the broker's status for thousands of cameras are not.
MAX_HEARTBEAT_BYTES = 4 * 1024 * 1024
MAX_STATUS_BYTES = 32 * 1024 * 1024  # below the socket ceiling (64 MiB); ~100,000 cameras at ~300 B each
MAX_HISTORY_BYTES = 16 * 1024 * 1024

# Bounds on sender-chosen collections.
MAX_ID = 64  # process ids, run ids, grants
MAX_NAME = 256
MAX_TEXT = 1024  # error messages, sources, paths
MAX_COUNT_KEYS = 64  # drop reasons per map
MAX_CAMERAS = 100_000  # cameras in one heartbeat or status (the broker's own --max-cameras is far lower)
MAX_INT = 2**63 - 1


# -- field types ------------------------------------------------------------------
class Type:
    """One field's type and range: ``check`` returns the value or raises."""

    doc = ""

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError


def _bad(path: str, what: str, value: Any) -> ProtocolError:
    shown = repr(value)
    return ProtocolError("malformed", f"{path}: expected {what}, got {shown[:60]}")


@dataclass(frozen=True)
class Str(Type):
    max_len: int = MAX_NAME
    min_len: int = 0
    choices: tuple[str, ...] = ()

    @property
    def doc(self) -> str:  # type: ignore[override]
        if self.choices:
            return "str, one of " + ", ".join(f"`{c}`" for c in self.choices)
        return f"str, {self.min_len}..{self.max_len} chars"

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not self.min_len <= len(value) <= self.max_len:
            raise _bad(path, self.doc, value)
        if self.choices and value not in self.choices:
            raise _bad(path, self.doc, value)
        return value


@dataclass(frozen=True)
class Int(Type):
    lo: int = 0
    hi: int = MAX_INT

    @property
    def doc(self) -> str:  # type: ignore[override]
        return f"int, {self.lo}..{self.hi if self.hi != MAX_INT else '2^63-1'}"

    def check(self, value: Any, path: str) -> int:
        if type(value) is not int or not self.lo <= value <= self.hi:
            raise _bad(path, self.doc, value)
        return value


@dataclass(frozen=True)
class Float(Type):
    lo: float = -math.inf
    hi: float = math.inf

    @property
    def doc(self) -> str:  # type: ignore[override]
        lo = "" if self.lo == -math.inf else f"≥ {self.lo:g}"
        hi = "" if self.hi == math.inf else f"≤ {self.hi:g}"
        rng = ", ".join(x for x in (lo, hi) if x)
        return "float (int accepted), finite" + (f", {rng}" if rng else "")

    def check(self, value: Any, path: str) -> float:
        if type(value) not in (float, int) or not math.isfinite(value) or not self.lo <= value <= self.hi:
            raise _bad(path, self.doc, value)
        return float(value)


@dataclass(frozen=True)
class Bool(Type):
    doc = "bool"

    def check(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise _bad(path, "bool", value)
        return value


@dataclass(frozen=True)
class Camera(Type):
    doc = "camera id (`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)"

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not wire.CAMERA_ID.match(value):
            raise ProtocolError("bad_camera_id", f"{path}: camera id {str(value)[:80]!r} is not valid")
        return value


@dataclass(frozen=True)
class Nullable(Type):
    inner: Type

    @property
    def doc(self) -> str:  # type: ignore[override]
        return f"{self.inner.doc}, or nil"

    def check(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.check(value, path)


@dataclass(frozen=True)
class MapOf(Type):
    """A map with sender-chosen keys: bounded entries, every key and value checked."""

    key: Type
    value: Type
    max_entries: int = MAX_COUNT_KEYS

    @property
    def doc(self) -> str:  # type: ignore[override]
        return f"map {self.key.doc.split(',')[0]} → {self.value.doc}, ≤ {self.max_entries} entries"

    def check(self, value: Any, path: str) -> dict[Any, Any]:
        if not isinstance(value, dict) or len(value) > self.max_entries:
            raise _bad(path, f"a map of ≤ {self.max_entries} entries", value)
        return {
            self.key.check(k, f"{path} key"): self.value.check(v, f"{path}.{k}") for k, v in value.items()
        }


@dataclass(frozen=True)
class ListOf(Type):
    item: Type
    max_len: int = 1024
    length: int | None = None  # exact length, for boxes

    @property
    def doc(self) -> str:  # type: ignore[override]
        n = f"exactly {self.length}" if self.length is not None else f"≤ {self.max_len}"
        return f"list of {self.item.doc.split(',')[0]}, {n} items"

    def check(self, value: Any, path: str) -> list[Any]:
        if (
            not isinstance(value, list)
            or len(value) > self.max_len
            or (self.length is not None and len(value) != self.length)
        ):
            raise _bad(path, self.doc, value)
        return [self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class Plain(Type):
    """Free-form figures a role adds to its heartbeat (passed on in the status): scalars, or maps and
    lists of them, nested at most ``depth`` levels, bounded in size."""

    depth: int = 2
    max_entries: int = MAX_COUNT_KEYS
    doc = "scalar (str ≤ 1024 chars, int, float, bool, nil) or maps/lists of them, bounded depth, ≤ 64 entries each"

    def check(self, value: Any, path: str) -> Any:
        return self._check(value, path, self.depth)

    def _check(self, value: Any, path: str, depth: int) -> Any:
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise _bad(path, "a string of ≤ 1024 chars", value)
            return value
        if depth > 0 and isinstance(value, list) and len(value) <= self.max_entries:
            return [self._check(v, path, depth - 1) for v in value]
        if depth > 0 and isinstance(value, dict) and len(value) <= self.max_entries:
            return {
                Str(MAX_TEXT).check(k, f"{path} key"): self._check(v, f"{path}.{k}", depth - 1)
                for k, v in value.items()
            }
        raise _bad(path, self.doc, value)


@dataclass(frozen=True)
class Field:
    name: str
    type: Type
    required: bool = False
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class Record(Type):
    """A map with a fixed set of known fields (unknown keys ignored, or kept as checked ``Plain``)."""

    fields: tuple[Field, ...]
    extras: bool = False  # keep unknown keys (checked as Plain, bounded in number)
    doc = "map (see its table)"

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _bad(path, "a map", value)
        out: dict[str, Any] = {}
        for f in self.fields:
            v = value.get(f.name, _MISSING)
            if v is _MISSING:
                if f.required:
                    raise ProtocolError("malformed", f"{path}.{f.name} is required")
                out[f.name] = f.default() if callable(f.default) else f.default
            else:
                out[f.name] = f.type.check(v, f"{path}.{f.name}")
        if self.extras:
            # Unknown keys are ignored by the protocol's rule; these are kept when they are plain figures
            # (bounded), and skipped one by one otherwise, never costing the message.
            kept = 0
            for k, v in value.items():
                if kept >= MAX_COUNT_KEYS:
                    break
                if k in self._names or type(k) is not str or len(k) > MAX_NAME:
                    continue
                try:
                    out[k] = _EXTRAS.check(v, f"{path}.{k}")
                    kept += 1
                except ProtocolError:
                    continue
        return out

    @property
    def _names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)


_MISSING = object()
_EXTRAS = Plain(depth=3)  # an extra key's value: a scalar, or maps/lists of them 3 levels deep


def F(name: str, type_: Type, required: bool = False, default: Any = None, doc: str = "") -> Field:
    return Field(name, type_, required, default, doc)


ID = Str(MAX_ID, min_len=1)
COUNTS = MapOf(Str(MAX_NAME), Int(), MAX_COUNT_KEYS)
STAMPS = MapOf(Str(MAX_NAME), Float(), 64)
SECONDS = Float(0.0)
PROCESS = Record(
    (
        F("cpu", Float(0.0), default=0.0, doc="CPU use, percent of one core"),
        F("rss_mb", Float(0.0), default=0.0, doc="resident memory, MB"),
    )
)


# -- message specs ----------------------------------------------------------------------
FRAME_FIELDS = (
    F("camera", Camera(), True, doc="camera id"),
    F("run", ID, True, doc="random id of this edge start; sequences restart with it"),
    F("seq", Int(), True, doc="frame number within `run`, increasing"),
    F("t_capture", Float(), True, doc="capture time (Unix s, edge clock)"),
    F("width", Int(0, 65535), True, doc="pixel width of the JPEG"),
    F("height", Int(0, 65535), True, doc="pixel height of the JPEG"),
    F("size", Int(), True, doc="byte length of the JPEG frame; must match exactly"),
    F("codec", Str(16, choices=(wire.CODEC_JPEG,)), True, doc="only `jpeg` in v1 (else `bad_codec`)"),
    F("edge", Str(MAX_ID), default="", doc="process id of the edge"),
    F("age", SECONDS, default=0.0, doc="seconds waited so far, each stage on its own clock"),
    F("ts", STAMPS, default=dict, doc="stage name → Unix time"),
    F("grant", Str(MAX_ID), default="", doc="set by the broker on dispatch (see the trailer)"),
)
READY_FIELDS = (
    F("proc", ID, True, doc="worker process id"),
    F("credit", Int(1, 1024), True, doc="frames it can take now; the broker caps it at `--max-credit`"),
    F("batch", Int(1, 1024), default=1, doc="the worker's batch size (shown in the status)"),
)
CREDIT_FIELDS = (
    F("proc", ID, True, doc="worker process id"),
    F("grant", Str(MAX_ID), True, doc="grant of the frames finished"),
    F("n", Int(1, 1024), default=1, doc="frames finished"),
)
TRAILER_FIELDS = (
    F("grant", Str(MAX_ID), True, doc="echo it in `credit`"),
    F("age", SECONDS, True, doc="the frame's `age` including its wait in the broker"),
    F("broker_in", Float(), True, doc="Unix time the broker received the frame"),
    F("broker_out", Float(), True, doc="Unix time the broker sent it"),
)
HB_ACK_FIELDS = (F("broker", ID, True, doc="broker instance id (changes when it restarts)"),)
GOODBYE_FIELDS = (
    F("proc", ID, True, doc="process id of the process stopping"),
    F("role", Str(32, min_len=1), default="", doc="its role"),
)
EDGE_CAMERA = Record(
    (
        F(
            "state",
            Str(32),
            default="unknown",
            doc="`connecting`, `streaming`, `reconnecting`, `error`, `ended` (only `streaming` counts as online)",
        ),
        F("error", Str(MAX_TEXT), default="", doc="last capture error"),
        F("source", Str(MAX_TEXT), default="", doc="where it captures from (passwords masked)"),
        F("capture_fps", Float(0.0), default=0.0, doc="frames/s captured"),
        F("sent_fps", Float(0.0), default=0.0, doc="frames/s sent"),
        F("sent", Int(), default=0, doc="frames sent"),
        F("captured", Int(), default=0, doc="frames captured"),
        F("reconnects", Int(), default=0, doc="reopens of the source"),
        F("bytes_per_s", Float(0.0), default=0.0, doc="JPEG bytes/s sent"),
        F("drops", COUNTS, default=dict, doc="reason → count"),
    ),
    extras=True,
)
EDGE_INFO = Record(
    (
        F("run", Str(MAX_ID), default="", doc="the edge's run id"),
        F(
            "cameras",
            MapOf(Camera(), EDGE_CAMERA, MAX_CAMERAS),
            default=dict,
            doc="camera id → camera info (table below)",
        ),
        F("drops", COUNTS, default=dict, doc="reason → count"),
        F("process", PROCESS, default=lambda: {"cpu": 0.0, "rss_mb": 0.0}, doc="`{cpu, rss_mb}`"),
    ),
    extras=True,
)
WORKER_INFO = Record(
    (
        F("model", Str(MAX_NAME), default="", doc="model name"),
        F("device", Str(MAX_NAME), default="", doc="device"),
        F("batch", Int(0, 4096), default=0, doc="batch size"),
        F("threads", Int(0, 4096), default=0, doc="inference threads"),
        F("processed", Int(), default=0, doc="frames processed"),
        F("fps", Float(0.0), default=0.0, doc="frames/s processed"),
        F("batch_mean", Float(0.0), default=0.0, doc="mean batch size"),
        F("infer_ms", Float(0.0), default=0.0, doc="inference time per batch, ms"),
        F("drops", COUNTS, default=dict, doc="reason → count"),
        F("camera_drops", MapOf(Camera(), COUNTS, MAX_CAMERAS), default=dict, doc="camera → reason → count"),
        F("process", PROCESS, default=lambda: {"cpu": 0.0, "rss_mb": 0.0}, doc="`{cpu, rss_mb}`"),
    ),
    extras=True,
)
OTHER_INFO = Record(
    (
        F("drops", COUNTS, default=dict, doc="reason → count"),
        F("results", Int(), default=0, doc="results received"),
        F("process", PROCESS, default=lambda: {"cpu": 0.0, "rss_mb": 0.0}, doc="`{cpu, rss_mb}`"),
    ),
    extras=True,
)
HEARTBEAT_FIELDS = (
    F("proc", ID, True, doc="process id"),
    F(
        "role",
        Str(32, min_len=1),
        True,
        doc="`edge`, `worker`, `safety`, `viewer`, `watch`, ... (`info` depends on it)",
    ),
    F("name", Str(MAX_NAME), default="", doc="shown in the status (default: `proc`)"),
    F("t", Float(), default=0.0, doc="sender's Unix time (display only)"),
    F("info", Record((), extras=False), default=dict, doc="map, checked by the table of its role (below)"),
)
DETECTION = Record(
    (
        F("class", Str(MAX_NAME), True, doc="class after the model's class map (`person`)"),
        F("label", Str(MAX_NAME), default="", doc="the model's own class name"),
        F("confidence", Float(0.0, 1.0), True, doc="0..1"),
        F("box", ListOf(Float(), length=4), True, doc="[x1, y1, x2, y2] pixels of the frame"),
    )
)
RESULT_FIELDS = FRAME_FIELDS[:-1] + (
    F("worker", Str(MAX_ID), default="", doc="process id of the worker"),
    F("model", Str(MAX_NAME), default="", doc="model name"),
    F("rendered", Bool(), default=False, doc="true on `ann/` messages"),
    F("detections", ListOf(DETECTION, 4096), True, doc="list of detection maps (table below)"),
)
EVENT_MAP = Record(
    (
        F("id", Str(MAX_ID * 2, min_len=1), True, doc="event id"),
        F("camera", Camera(), True, doc="camera id"),
        F("rule", Str(MAX_NAME), True, doc="rule name"),
        F(
            "type",
            Str(32),
            True,
            doc="`intrusion`, `dwell`, `crowding`, `line_crossing`, `fall`, `helmet`, ...",
        ),
        F("zone", Str(MAX_NAME), default="", doc="zone name"),
        F("line", Str(MAX_NAME), default="", doc="line name"),
        F("severity", Str(32), default="", doc="severity"),
        F("state", Str(16, choices=("open", "ended")), default="open", doc="`open` or `ended`"),
        F("started", Float(), True, doc="capture time of the frame that started it"),
        F("since", Float(), default=0.0, doc="when the earliest offender began meeting the condition"),
        F("updated", Float(), default=0.0, doc="last update"),
        F("ended", Nullable(Float()), default=None, doc="end time, nil while open"),
        F("duration", Float(0.0), default=0.0, doc="seconds"),
        F("peak", Int(), default=0, doc="most offenders at once"),
        F("count", Int(), default=0, doc="offenders now"),
        F("tracks", ListOf(Int(-1), 1024), default=list, doc="track ids"),
        F("run", Str(MAX_ID), default="", doc="edge run of the starting frame"),
        F("seq", Int(), default=0, doc="sequence of the starting frame"),
        F(
            "snapshot",
            Str(MAX_TEXT),
            default="",
            doc="snapshot path on the safety host (never served by path)",
        ),
    ),
    extras=True,
)
EVENT_FIELDS = (
    F("transition", Str(16, choices=("start", "update", "end")), True, doc="what happened"),
    F("event", EVENT_MAP, True, doc="the event (table below)"),
)
EVENTS_QUERY_FIELDS = (  # the shape agreed with the safety service's history socket (see docs/protocol.md)
    F("camera", Str(64), default="", doc='only this camera ("": all)'),
    F("rule", Str(MAX_NAME), default="", doc='rule name or type ("": all)'),
    F("id", Str(MAX_NAME), default="", doc="only the event with this id"),
    F("since", Nullable(Float()), default=None, doc="events active at or after"),
    F("until", Nullable(Float()), default=None, doc="events started at or before"),
    F("state", Str(16, choices=("", "open", "ended")), default="", doc='`open`, `ended` or "" (both)'),
    F("limit", Int(1, 10_000), default=100, doc="events per page (the service clamps it to 1000)"),
    F("cursor", Str(MAX_TEXT), default="", doc='the `next` of the previous page ("": the newest page)'),
    F("total", Bool(), default=False, doc="also count every matching event"),
)
EVENTS_FIELDS = (
    F("events", ListOf(EVENT_MAP, 10_000), True, doc="newest first; each may carry `ack` and `clip` maps"),
    F(
        "next",
        Nullable(Str(MAX_TEXT)),
        default=None,
        doc="cursor for the next (older) page; nil on the last page",
    ),
    F("total", Nullable(Int()), default=None, doc="events matching the query, when asked for"),
)
ACK_FIELDS = (
    F("event", Str(MAX_NAME, min_len=1), True, doc="event id"),
    F("by", Str(64, min_len=1), True, doc="who acknowledges"),
    F("note", Str(500), default="", doc="free text"),
    F("outcome", Str(16, choices=("", "false_alarm", "resolved")), default="", doc="outcome"),
    F("reason", Str(500), default="", doc="needed with `false_alarm`"),
)
ACKED_FIELDS = (F("event", EVENT_MAP, True, doc="the stored event with its `ack`"),)
ERROR_FIELDS = (F("error", Str(MAX_TEXT), True, doc="one sentence"),)
TRACK = Record(
    (
        F("id", Int(-1), True, doc="track id (-1: not confirmed)"),
        F("box", ListOf(Float(), length=4), True, doc="[x1, y1, x2, y2] pixels"),
        F("zones", ListOf(Str(MAX_NAME), 64), default=list, doc="zones it is in"),
        F("rules", ListOf(Str(MAX_NAME), 64), default=list, doc="rules it trips"),
        F("confirmed", Bool(), default=False, doc="confirmed track"),
    )
)
TRACKS_FIELDS = (
    F("camera", Camera(), True, doc="camera id"),
    F("run", ID, True, doc="edge run"),
    F("seq", Int(), True, doc="frame sequence"),
    F("t_capture", Float(), True, doc="capture time"),
    F("tracks", ListOf(TRACK, 4096), True, doc="tracks (table below)"),
)
STATUS_CAMERA = Record(
    (
        F("online", Bool(), True, doc="its edge heartbeats and reports it `streaming`"),
        F("state", Str(32), True, doc="the edge's state, or `offline`"),
        F("error", Str(MAX_TEXT), default=""),
        F("edge", Str(MAX_NAME), default=""),
        F("source", Str(MAX_TEXT), default=""),
        F("capture_fps", Float(0.0), default=0.0),
        F("reconnects", Int(), default=0),
        F("bytes_per_s", Float(0.0), default=0.0),
        F("fps_in", Float(0.0), default=0.0),
        F("fps_out", Float(0.0), default=0.0),
        F("frames_in", Int(), default=0),
        F("results_out", Int(), default=0),
        F("last_frame_s", Nullable(Float(0.0)), default=None),
        F("drops", MapOf(Str(16), COUNTS, 8), default=dict),
    ),
    extras=True,
)
STATUS_FIELDS = (
    F("broker", ID, True, doc="broker instance id"),
    F("t", Float(), default=0.0),
    F("uptime", Float(0.0), default=0.0),
    F("pending", Int(), default=0),
    F("process", PROCESS, default=lambda: {"cpu": 0.0, "rss_mb": 0.0}),
    F("drops", COUNTS, default=dict),
    F("limits", MapOf(Str(32), Int(), 16), default=dict),
    F(
        "security",
        Record((F("curve", Bool(), default=False),), extras=True),
        default=lambda: {"curve": False},
        doc="CURVE state and counters (docs/security.md)",
    ),
    F("cameras", MapOf(Camera(), STATUS_CAMERA, MAX_CAMERAS), default=dict),
    F(
        "workers",
        MapOf(
            ID,
            Record((F("name", Str(MAX_NAME), default=""), F("online", Bool(), default=False)), extras=True),
            MAX_CAMERAS,
        ),
        default=dict,
    ),
    F(
        "edges",
        MapOf(
            ID,
            Record(
                (
                    F("name", Str(MAX_NAME), default=""),
                    F("online", Bool(), default=False),
                    F("cameras", ListOf(Camera(), MAX_CAMERAS), default=list),
                ),
                extras=True,
            ),
            MAX_CAMERAS,
        ),
        default=dict,
    ),
    F(
        "subscribers",
        MapOf(
            ID,
            Record(
                (
                    F("name", Str(MAX_NAME), default=""),
                    F("role", Str(32), default=""),
                    F("online", Bool(), default=False),
                ),
                extras=True,
            ),
            MAX_CAMERAS,
        ),
        default=dict,
    ),
)

SPECS: dict[str, tuple[Field, ...]] = {
    wire.FRAME: FRAME_FIELDS,
    wire.READY: READY_FIELDS,
    wire.CREDIT: CREDIT_FIELDS,
    wire.UNKNOWN: (),
    "trailer": TRAILER_FIELDS,
    wire.RESULT: RESULT_FIELDS,
    wire.HEARTBEAT: HEARTBEAT_FIELDS,
    wire.HEARTBEAT_ACK: HB_ACK_FIELDS,
    GOODBYE: GOODBYE_FIELDS,
    EVENT: EVENT_FIELDS,
    EVENTS_QUERY: EVENTS_QUERY_FIELDS,
    EVENTS: EVENTS_FIELDS,
    ERROR: ERROR_FIELDS,
    TRACKS: TRACKS_FIELDS,
    ACK: ACK_FIELDS,
    ACKED: ACKED_FIELDS,
    wire.STATUS: STATUS_FIELDS,
}
ROLE_INFO = {"edge": EDGE_INFO, "worker": WORKER_INFO}


def _record(kind: str, header: dict[str, Any]) -> dict[str, Any]:
    return Record(SPECS[kind]).check(header, kind)


def _decode(data: bytes, kind: str, max_bytes: int = wire.MAX_HEADER_BYTES) -> dict[str, Any]:
    return _record(kind, wire.unpack(data, kind, max_bytes=max_bytes))


# -- decoded messages -----------------------------------------------------------------------
@dataclass(frozen=True)
class Ready:
    proc: str
    credit: int
    batch: int = 1


@dataclass(frozen=True)
class Credit:
    proc: str
    grant: str
    n: int = 1


@dataclass(frozen=True)
class Goodbye:
    proc: str
    role: str = ""


@dataclass(frozen=True)
class Heartbeat:
    proc: str
    role: str
    name: str
    t: float
    info: dict[str, Any]  # checked against the role's table (ROLE_INFO, else OTHER_INFO)


@dataclass(frozen=True)
class Trailer:
    grant: str
    age: float
    broker_in: float
    broker_out: float


def _unpack_hot(data: bytes, kinds: tuple[str, ...]) -> dict[str, Any]:
    """``wire.unpack(data, *kinds)`` for the broker's per-frame messages: the same checks in the same
    order with the same reasons and words, in one call instead of two (the frame header and the credit
    are decoded for every frame)."""
    if len(data) > _MAX_HEADER_BYTES:
        raise ProtocolError("oversized_header", f"header of {len(data)} bytes exceeds {_MAX_HEADER_BYTES}")
    try:
        header = _unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError("malformed", f"header is not msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("malformed", "header is not a map")
    v = header.get("v")
    if v != wire.VERSION or type(v) is not int:
        raise ProtocolError("bad_version", f"protocol version {v!r}, this build speaks {wire.VERSION}")
    if header.get("kind") not in kinds:
        raise ProtocolError("bad_kind", f"kind {header.get('kind')!r} where {', '.join(kinds)} was expected")
    return header


_unpackb = msgpack.unpackb
_MAX_HEADER_BYTES = wire.MAX_HEADER_BYTES
_FRAME_KIND = (wire.FRAME,)
_WORKER_KINDS = (wire.READY, wire.CREDIT)


def decode_frame(data: bytes) -> wire.FrameHeader:
    """An edge's frame header (frames-in): ``wire.FrameHeader.from_wire``, checks and all."""
    return wire.FrameHeader.from_map(_unpack_hot(data, _FRAME_KIND))


def decode_ready(data: bytes) -> Ready:
    return Ready(**_decode(data, wire.READY))


def decode_credit(data: bytes) -> Credit:
    return Credit(**_decode(data, wire.CREDIT))


def decode_worker_message(data: bytes) -> Ready | Credit:
    """What a worker's DEALER sends on frames-out: ``ready`` or ``credit``."""
    h = _unpack_hot(data, _WORKER_KINDS)
    if h["kind"] == wire.READY:
        return Ready(**_record(wire.READY, h))
    # A credit comes back for every frame: CREDIT_FIELDS checked inline (a test checks they agree).
    get = h.get
    proc, grant, n = get("proc"), get("grant"), get("n", 1)
    if (
        type(proc) is not str
        or not 0 < len(proc) <= MAX_ID
        or type(grant) is not str
        or len(grant) > MAX_ID
        or type(n) is not int
        or not 1 <= n <= 1024
    ):
        raise ProtocolError("malformed", "credit: proc, grant or n missing or of the wrong type or range")
    return Credit(proc, grant, n)


def decode_heartbeat(data: bytes) -> Heartbeat:
    return _heartbeat(wire.unpack(data, wire.HEARTBEAT, max_bytes=MAX_HEARTBEAT_BYTES))


def _heartbeat(header: dict[str, Any]) -> Heartbeat:
    h = _record(wire.HEARTBEAT, header)  # checks that info is a map; its fields are the role's
    info = ROLE_INFO.get(h["role"], OTHER_INFO).check(header.get("info", {}), "hb.info")
    return Heartbeat(proc=h["proc"], role=h["role"], name=h["name"] or h["proc"], t=h["t"], info=info)


def decode_goodbye(data: bytes) -> Goodbye:
    return Goodbye(**_decode(data, GOODBYE))


def decode_control(data: bytes) -> Heartbeat | Goodbye:
    """What a process sends on the control socket: a heartbeat or a goodbye."""
    h = wire.unpack(data, wire.HEARTBEAT, GOODBYE, max_bytes=MAX_HEARTBEAT_BYTES)
    if h["kind"] == GOODBYE:
        return Goodbye(**_record(GOODBYE, h))
    return _heartbeat(h)


def decode_hb_ack(data: bytes) -> str:
    """The broker instance id in a heartbeat ack."""
    broker: str = _decode(data, wire.HEARTBEAT_ACK)["broker"]  # HB_ACK_FIELDS: an id string
    return broker


def encode_trailer(grant: str, age: float, broker_in: float, broker_out: float) -> bytes:
    """What the broker adds to a dispatched frame, as ``wire.pack`` would write it."""
    # One Packer kept instead of the one wire.pack's packb makes per call. Safe across threads: packing a
    # str and floats calls back into no Python code, so it runs whole under the GIL.
    data: bytes = _TRAILER_PACKER.pack(
        {"grant": grant, "age": age, "broker_in": broker_in, "broker_out": broker_out}
    )
    return data


_TRAILER_PACKER = msgpack.Packer(use_bin_type=True)


def decode_trailer(data: bytes) -> Trailer:
    if len(data) > 1024:
        raise ProtocolError("oversized_header", f"trailer of {len(data)} bytes")
    return Trailer(**Record(TRAILER_FIELDS).check(wire.unpack_map(data), "trailer"))


def decode_dispatched(frames: list[Any]) -> wire.FrameHeader:
    """A frame as the broker sends it to a worker: ``[header, jpeg, trailer]``.

    The header is the edge's, forwarded as received; the trailer carries what
    the broker adds (grant, age, its two timestamps), so the broker never
    re-encodes a header. ``[header, jpeg]`` with the grant in the header is
    accepted too (an older broker).
    """
    if len(frames) not in (2, 3):
        raise ProtocolError("malformed", f"{len(frames)} parts where [header, jpeg, trailer] was expected")
    header = decode_frame(_bytes(frames[0]))
    if len(frames) == 3:
        t = decode_trailer(_bytes(frames[2]))
        header.grant, header.age = t.grant, t.age
        header.ts["broker_in"], header.ts["broker_out"] = t.broker_in, t.broker_out
    return header


def _bytes(frame: Any) -> bytes:
    return frame if isinstance(frame, bytes) else frame.bytes


def decode_result(data: bytes) -> wire.Result:
    return wire.Result.from_wire(data)


def decode_status(data: bytes) -> dict[str, Any]:
    """The broker's status snapshot, every field checked (the map form subscribers use)."""
    return {"v": wire.VERSION, "kind": wire.STATUS, **_decode(data, wire.STATUS, MAX_STATUS_BYTES)}


def decode_event(data: bytes) -> dict[str, Any]:
    """A live safety event (``evt/CAM/``): ``{"transition", "event"}`` checked."""
    return _decode(data, EVENT)


def decode_events_query(data: bytes) -> dict[str, Any]:
    return _decode(data, EVENTS_QUERY)


def decode_history_answer(data: bytes) -> dict[str, Any]:
    """A history answer: ``events`` (``events``, ``next``, ``total``), ``acked`` (``event``) or ``error``."""
    h = wire.unpack(data, EVENTS, ACKED, ERROR, max_bytes=MAX_HISTORY_BYTES)
    return {"kind": h["kind"], **_record(h["kind"], h)}


def decode_ack(data: bytes) -> dict[str, Any]:
    return _decode(data, ACK)


def decode_tracks(data: bytes) -> dict[str, Any]:
    return _decode(data, TRACKS)


# -- typed messages of the results bus (what anjeon.protocol.client yields) ----------------------
# A value of a record's extra keys (Plain): a scalar, or lists/maps of them.
PlainValue: TypeAlias = "None | bool | int | float | str | list[PlainValue] | dict[str, PlainValue]"
Transition = Literal["start", "update", "end"]
_EVENT_NAMES = frozenset(f.name for f in EVENT_MAP.fields)


@dataclass(frozen=True)
class Event:
    """One safety event (docs/protocol.md "event map"), every field typed; ``extra`` holds the other
    plain keys a sender added (history answers add ``ack`` and ``clip`` maps)."""

    id: str
    camera: str
    rule: str
    type: str
    started: float
    zone: str = ""
    line: str = ""
    severity: str = ""
    state: str = "open"
    since: float = 0.0
    updated: float = 0.0
    ended: float | None = None
    duration: float = 0.0
    peak: int = 0
    count: int = 0
    tracks: tuple[int, ...] = ()
    run: str = ""
    seq: int = 0
    snapshot: str = ""
    extra: dict[str, PlainValue] = field(default_factory=dict)

    @classmethod
    def from_map(cls, raw: object, path: str = "event") -> Event:
        """Check ``raw`` against the event map's rules (ProtocolError otherwise) and type it."""
        m = EVENT_MAP.check(raw, path)
        return cls(
            id=m["id"],
            camera=m["camera"],
            rule=m["rule"],
            type=m["type"],
            started=m["started"],
            zone=m["zone"],
            line=m["line"],
            severity=m["severity"],
            state=m["state"],
            since=m["since"],
            updated=m["updated"],
            ended=m["ended"],
            duration=m["duration"],
            peak=m["peak"],
            count=m["count"],
            tracks=tuple(m["tracks"]),
            run=m["run"],
            seq=m["seq"],
            snapshot=m["snapshot"],
            extra={k: v for k, v in m.items() if k not in _EVENT_NAMES},
        )

    def to_dict(self) -> dict[str, PlainValue]:
        """The map form (what the store, the console and the wire carry)."""
        out: dict[str, PlainValue] = {
            "id": self.id,
            "camera": self.camera,
            "rule": self.rule,
            "type": self.type,
            "zone": self.zone,
            "line": self.line,
            "severity": self.severity,
            "state": self.state,
            "started": self.started,
            "since": self.since,
            "updated": self.updated,
            "ended": self.ended,
            "duration": self.duration,
            "peak": self.peak,
            "count": self.count,
            "tracks": list(self.tracks),
            "run": self.run,
            "seq": self.seq,
            "snapshot": self.snapshot,
        }
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class EventMessage:
    """A live event transition on ``evt/CAM/``."""

    transition: Transition
    event: Event

    @classmethod
    def from_wire(cls, data: bytes) -> EventMessage:
        h = wire.unpack(data, EVENT)
        transition = Str(16, choices=("start", "update", "end")).check(
            h.get("transition"), "event.transition"
        )
        return cls(cast(Transition, transition), Event.from_map(h.get("event"), "event.event"))


@dataclass(frozen=True)
class Track:
    id: int  # -1: not confirmed
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
    zones: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    confirmed: bool = False

    def to_dict(self) -> dict[str, PlainValue]:
        return {
            "id": self.id,
            "box": list(self.box),
            "zones": list(self.zones),
            "rules": list(self.rules),
            "confirmed": self.confirmed,
        }


@dataclass(frozen=True)
class Tracks:
    """The safety service's tracks for one processed result (``trk/CAM/``)."""

    camera: str
    run: str
    seq: int
    t_capture: float
    tracks: tuple[Track, ...]

    @classmethod
    def from_wire(cls, data: bytes) -> Tracks:
        m = _decode(data, TRACKS)
        return cls(
            m["camera"],
            m["run"],
            m["seq"],
            m["t_capture"],
            tuple(
                Track(t["id"], tuple(t["box"]), tuple(t["zones"]), tuple(t["rules"]), t["confirmed"])
                for t in m["tracks"]
            ),
        )


_STATUS_CAMERA_NAMES = frozenset(f.name for f in STATUS_CAMERA.fields)


@dataclass(frozen=True)
class StatusCamera:
    """One camera as the broker's status sees it (docs/protocol.md "status camera")."""

    online: bool
    state: str
    error: str = ""
    edge: str = ""
    source: str = ""
    capture_fps: float = 0.0
    reconnects: int = 0
    bytes_per_s: float = 0.0
    fps_in: float = 0.0
    fps_out: float = 0.0
    frames_in: int = 0
    results_out: int = 0
    last_frame_s: float | None = None
    drops: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> count
    extra: dict[str, PlainValue] = field(default_factory=dict)

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> StatusCamera:
        """From an already checked map (``Status.from_wire`` checks it)."""
        return cls(
            **{k: v for k, v in m.items() if k in _STATUS_CAMERA_NAMES},
            extra={k: v for k, v in m.items() if k not in _STATUS_CAMERA_NAMES},
        )


@dataclass(frozen=True)
class Status:
    """The broker's status snapshot (``status/``). ``snapshot`` is the same thing as a checked map, for
    code that renders it as a whole (the watch table, the console's JSON)."""

    broker: str
    t: float
    uptime: float
    pending: int
    drops: dict[str, int]
    limits: dict[str, int]
    cameras: dict[str, StatusCamera]
    snapshot: dict[str, Any]

    @classmethod
    def from_wire(cls, data: bytes) -> Status:
        m = decode_status(data)
        return cls(
            m["broker"],
            m["t"],
            m["uptime"],
            m["pending"],
            m["drops"],
            m["limits"],
            {cam: StatusCamera.from_map(c) for cam, c in m["cameras"].items()},
            m,
        )


# One event as a flat export row (CSV of `anjeon events` and of the console): ack, response time, outcome, clip.
EXPORT_COLUMNS = (
    "id",
    "camera",
    "rule",
    "type",
    "zone",
    "line",
    "severity",
    "state",
    "started",
    "ended",
    "duration",
    "peak",
    "tracks",
    "snapshot",
    "ack_by",
    "ack_at",
    "ack_note",
    "response_s",
    "outcome",
    "outcome_reason",
    "clip_state",
    "clip",
)


def export_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """EXPORT_COLUMNS of one event map ('' where a value is missing); ``Event.to_dict()`` gives the map."""
    raw_ack, raw_clip, raw_tracks = event.get("ack"), event.get("clip"), event.get("tracks")
    ack: dict[str, Any] = raw_ack if isinstance(raw_ack, dict) else {}
    clip: dict[str, Any] = raw_clip if isinstance(raw_clip, dict) else {}
    tracks: list[Any] = raw_tracks if isinstance(raw_tracks, list) else []
    flat = {
        **event,
        "tracks": " ".join(map(str, tracks)),
        "ack_by": ack.get("by"),
        "ack_at": ack.get("at"),
        "ack_note": ack.get("note"),
        "response_s": ack.get("response"),
        "outcome": ack.get("outcome"),
        "outcome_reason": ack.get("reason"),
        "clip_state": clip.get("state"),
        "clip": clip.get("path"),
    }
    return {c: "" if flat.get(c) is None else flat[c] for c in EXPORT_COLUMNS}


def encode_event(transition: Transition, event: Mapping[str, Any]) -> list[bytes]:
    """``[evt/CAM/, event header]`` as the safety service publishes it."""
    return [
        wire.topic(wire.EVENT_PREFIX, str(event["camera"])),
        wire.pack({"v": wire.VERSION, "kind": EVENT, "transition": transition, "event": dict(event)}),
    ]


def encode_tracks(
    camera: str, run: str, seq: int, t_capture: float, tracks: Sequence[Mapping[str, Any]]
) -> list[bytes]:
    """``[trk/CAM/, tracks header]``; each track a map of TRACK's fields (``Track.to_dict``)."""
    return [
        wire.topic(wire.TRACKS_PREFIX, camera),
        wire.pack(
            {
                "kind": TRACKS,
                "v": wire.VERSION,
                "camera": camera,
                "run": run,
                "seq": seq,
                "t_capture": t_capture,
                "tracks": [dict(t) for t in tracks],
            }
        ),
    ]


# -- docs --------------------------------------------------------------------------------
def field_table(fields: tuple[Field, ...]) -> str:
    """The markdown table docs/protocol.md shows for a message (generated, so docs and code agree)."""
    rows = ["| key | required | type, range | meaning |", "| --- | --- | --- | --- |"]
    for f in fields:
        req = "yes" if f.required else f"no (default `{_show_default(f.default)}`)"
        rows.append(f"| `{f.name}` | {req} | {f.type.doc} | {f.doc} |")
    return "\n".join(rows)


def _show_default(default: Any) -> str:
    value = default() if callable(default) else default
    return "nil" if value is None else ('""' if value == "" else str(value).replace("'", '"'))


DOC_TABLES = {
    "frame": FRAME_FIELDS,
    "ready": READY_FIELDS,
    "credit": CREDIT_FIELDS,
    "trailer": TRAILER_FIELDS,
    "result": RESULT_FIELDS,
    "detection": DETECTION.fields,
    "hb": HEARTBEAT_FIELDS,
    "hb_ack": HB_ACK_FIELDS,
    "bye": GOODBYE_FIELDS,
    "edge info": EDGE_INFO.fields,
    "edge camera": EDGE_CAMERA.fields,
    "worker info": WORKER_INFO.fields,
    "other roles' info": OTHER_INFO.fields,
    "event": EVENT_FIELDS,
    "event map": EVENT_MAP.fields,
    "events_query": EVENTS_QUERY_FIELDS,
    "events": EVENTS_FIELDS,
    "ack": ACK_FIELDS,
    "acked": ACKED_FIELDS,
    "error": ERROR_FIELDS,
    "tracks": TRACKS_FIELDS,
    "track": TRACK.fields,
    "status": STATUS_FIELDS,
    "status camera": STATUS_CAMERA.fields,
}


def doc_tables() -> str:
    """Every table above, as docs/protocol.md's "Field tables" section holds them."""
    return "".join(f"\n#### `{title}`\n\n{field_table(spec)}\n" for title, spec in DOC_TABLES.items())


if __name__ == "__main__":
    sys.stdout.write(doc_tables())
