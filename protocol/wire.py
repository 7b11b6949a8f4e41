"""Wire format v1: msgpack headers, JPEG bytes in their own frame.

Every message is a multipart ZeroMQ message whose header frame is a msgpack
map with at least ``v`` (protocol version, 1) and ``kind``. Pictures are never
inside the header: they travel as a separate frame that the broker forwards
untouched. docs/protocol.md is the language-neutral description of this file.

Messages, by socket (frames listed in order):

- frames-in, edge PUSH -> broker PULL:       [frame header, jpeg]
- frames-out, broker ROUTER -> worker DEALER: [frame header + grant, jpeg]
                                             [unknown]
- frames-out, worker DEALER -> broker ROUTER: [ready] | [credit]
- results, worker PUB -> XSUB/XPUB -> SUB:   [b"res/CAM/", result header]
                                             [b"img/CAM/", result header, jpeg as received]
                                             [b"ann/CAM/", result header, jpeg with boxes drawn]
- results-out, broker XPUB -> SUB:           [b"status/", status snapshot]
- control, any DEALER <-> broker ROUTER:     [heartbeat] -> <- [heartbeat ack]
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

VERSION = 1

# Kinds of header.
FRAME = "frame"
READY = "ready"
CREDIT = "credit"
UNKNOWN = "unknown"
RESULT = "result"
STATUS = "status"
HEARTBEAT = "hb"
HEARTBEAT_ACK = "hb_ack"
GOODBYE = "bye"

CODEC_JPEG = "jpeg"

# Application limits. The socket ceiling (ZMQ_MAXMSGSIZE) sits far above the
# frame limit because hitting it drops the whole connection unseen.
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
SOCKET_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# Topic prefixes on the results bus. Each camera topic ends with "/" so that
# subscribing to "res/cam1/" does not also match "res/cam10/".
RESULT_PREFIX = "res/"
IMAGE_PREFIX = "img/"
RENDER_PREFIX = "ann/"
EVENT_PREFIX = "evt/"  # the safety service's live events
TRACKS_PREFIX = "trk/"  # the safety service's track state per processed result
STATUS_TOPIC = b"status/"

CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ProtocolError(ValueError):
    """A message that breaks the protocol. ``reason`` is the drop-counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def new_id() -> str:
    """A process id or edge run id: random, so restarts are told apart."""
    return uuid.uuid4().hex[:12]


def check_camera_id(camera: object) -> str:
    if not isinstance(camera, str) or not CAMERA_ID.match(camera):
        raise ProtocolError(
            "bad_camera_id",
            f"camera id {str(camera)[:80]!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit",
        )
    return camera


_CAMERAS_SEEN: set[str] = set()  # camera ids already checked against CAMERA_ID (the hot path skips the regex)


def topic(prefix: str, camera: str) -> bytes:
    return f"{prefix}{camera}/".encode()


def camera_of_topic(raw: bytes) -> str | None:
    """The camera id in a ``prefix/CAM/`` topic, or None for other topics."""
    parts = raw.split(b"/")
    if len(parts) != 3 or parts[2] != b"" or not parts[1]:
        return None
    try:
        return parts[1].decode()
    except UnicodeDecodeError:
        return None


def pack(header: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(header, use_bin_type=True)
    return data


def unpack_map(data: bytes, max_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """Decode a msgpack map of at most ``max_bytes``; raise ProtocolError naming what is wrong."""
    if len(data) > max_bytes:
        raise ProtocolError("oversized_header", f"header of {len(data)} bytes exceeds {max_bytes}")
    try:
        header = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError("malformed", f"header is not msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("malformed", "header is not a map")
    return header


def unpack(data: bytes, *kinds: str, max_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """Decode and check a header frame (version, kind); the typed decoders in ``messages`` check the rest.

    ``max_bytes`` is the application limit for the kinds expected (status and
    heartbeats may be larger than frame headers, see ``messages``).
    """
    header = unpack_map(data, max_bytes)
    if header.get("v") != VERSION or type(header.get("v")) is not int:
        raise ProtocolError(
            "bad_version", f"protocol version {header.get('v')!r}, this build speaks {VERSION}"
        )
    if kinds and header.get("kind") not in kinds:
        raise ProtocolError("bad_kind", f"kind {header.get('kind')!r} where {', '.join(kinds)} was expected")
    return header


MAX_INT = 2**63 - 1
MAX_ID_CHARS = 64


def _missing(name: str) -> ProtocolError:
    return ProtocolError("malformed", f"field {name!r} is missing or has the wrong type or range")


def _text(h: dict[str, Any], name: str, required: bool) -> str:
    if name not in h and not required:  # missing: the default; present as nil: the wrong type
        return ""
    value: Any = h.get(name)
    if type(value) is not str or (required and not value) or len(value) > MAX_ID_CHARS:
        raise _missing(name)
    return value


def _float(h: dict[str, Any], name: str, required: bool) -> float:
    if name not in h and not required:  # missing: the default; present as nil: the wrong type
        return 0.0
    value: Any = h.get(name)  # checked below
    if type(value) not in (float, int) or not math.isfinite(value):
        raise _missing(name)
    return float(value)


@dataclass
class FrameHeader:
    """One captured picture, as it leaves the edge and travels to a worker.

    ``ts`` maps stage names to Unix times on the clock of the host that ran
    the stage (display and latency only). ``age`` is the seconds the frame has
    spent waiting so far, each stage measuring its own wait on its own
    monotonic clock; freshness decisions use it, never cross-host clocks.
    """

    camera: str
    run: str
    seq: int
    t_capture: float
    width: int
    height: int
    size: int
    codec: str = CODEC_JPEG
    edge: str = ""
    age: float = 0.0
    ts: dict[str, float] = field(default_factory=dict)
    grant: str = ""  # set by the broker when it dispatches the frame to a worker

    def fields(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies and was the broker's top cost per frame.
        return {
            "camera": self.camera,
            "run": self.run,
            "seq": self.seq,
            "t_capture": self.t_capture,
            "width": self.width,
            "height": self.height,
            "size": self.size,
            "codec": self.codec,
            "edge": self.edge,
            "age": self.age,
            "ts": self.ts,
            "grant": self.grant,
        }

    def to_wire(self) -> bytes:
        return pack({"v": VERSION, "kind": FRAME, **self.fields()})

    @classmethod
    def from_wire(cls, data: bytes) -> FrameHeader:
        return cls.from_map(unpack(data, FRAME))

    @classmethod
    def from_map(cls, h: dict[str, Any]) -> FrameHeader:
        """Check every field: the rules of ``messages.FRAME_FIELDS``, spelled out inline because this runs
        for every frame in the broker and every result in subscribers (a test checks they agree)."""
        get: Callable[[str], Any] = h.get  # every value is checked below
        camera, run, seq, t, width, height, size, codec = (
            get("camera"),
            get("run"),
            get("seq"),
            get("t_capture"),
            get("width"),
            get("height"),
            get("size"),
            get("codec"),
        )
        if type(camera) is not str or camera not in _CAMERAS_SEEN:
            check_camera_id(camera)
            if len(_CAMERAS_SEEN) < 65536:  # ids that passed the pattern; bounded, as ids come off the wire
                _CAMERAS_SEEN.add(camera)
        if type(run) is not str or not 0 < len(run) <= MAX_ID_CHARS:
            raise _missing("run")
        if type(seq) is not int or not 0 <= seq <= MAX_INT:
            raise _missing("seq")
        if type(t) is not float and type(t) is not int or not math.isfinite(t):
            raise _missing("t_capture")
        if (
            type(width) is not int
            or not 0 <= width <= 65535
            or type(height) is not int
            or not 0 <= height <= 65535
        ):
            raise _missing("width/height")
        if type(size) is not int or not 0 <= size <= MAX_INT:
            raise _missing("size")
        if type(codec) is not str or not codec or len(codec) > MAX_ID_CHARS:
            raise _missing("codec")
        if codec != CODEC_JPEG:
            raise ProtocolError("bad_codec", f"codec {codec[:20]!r}; v1 carries jpeg only")
        age = _float(h, "age", False)
        if age < 0:
            raise ProtocolError("malformed", "field 'age' is negative")
        return cls(
            camera,
            run,
            seq,
            float(t),
            width,
            height,
            size,
            codec,
            _text(h, "edge", False),
            age,
            _timestamps(h.get("ts", {})),
            _text(h, "grant", False),
        )

    def stamp(self, stage: str, when: float | None = None) -> None:
        self.ts[stage] = time.time() if when is None else when


MAX_STAGES = 64  # stage name -> time: every stage adds one; a sender may add its own


def _timestamps(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > MAX_STAGES:
        raise ProtocolError("malformed", f"field 'ts' must be a map of at most {MAX_STAGES} stage -> time")
    for k, v in value.items():
        if type(k) is not str or len(k) > 256 or type(v) not in (float, int) or not math.isfinite(v):
            raise ProtocolError("malformed", "field 'ts' must map stage names to finite times")
    return {k: float(v) for k, v in value.items()}


@dataclass
class Detection:
    cls: str  # the class anjeon reasons with ("person"), after the model's class map
    confidence: float
    box: list[float]  # x1, y1, x2, y2 in pixels of the frame as sent
    label: str = ""  # the model's own class name ("Fall"), kept for later rules

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.cls,
            "label": self.label or self.cls,
            "confidence": round(self.confidence, 4),
            "box": [round(float(v), 1) for v in self.box],
        }

    @classmethod
    def from_dict(cls, d: Any) -> Detection:
        if not isinstance(d, dict):
            raise ProtocolError("malformed", "a detection is not a map")
        box: Any = d.get("box")  # checked below
        conf: Any = d.get("confidence")
        if not (
            type(box) is list
            and len(box) == 4
            and all(type(v) in (int, float) and math.isfinite(v) for v in box)
        ):
            raise ProtocolError("malformed", "a detection's box is not [x1, y1, x2, y2]")
        if type(conf) not in (int, float) or not 0.0 <= conf <= 1.0:
            raise ProtocolError("malformed", "a detection's confidence is not a number in 0..1")
        name, label = d.get("class"), d.get("label", "")
        if type(name) is not str or type(label) is not str or len(name) > 256 or len(label) > 256:
            raise ProtocolError("malformed", "a detection's class or label is not a short string")
        return cls(cls=name, confidence=float(conf), box=[float(v) for v in box], label=label)


MAX_DETECTIONS = 4096


@dataclass
class Result:
    """A worker's answer for one frame: the frame's header plus detections."""

    frame: FrameHeader
    worker: str
    model: str
    detections: list[Detection]
    rendered: bool = False

    def to_wire(self) -> bytes:
        frame = self.frame.fields()
        frame.pop("grant", None)
        return pack(
            {
                "v": VERSION,
                "kind": RESULT,
                **frame,
                "worker": self.worker,
                "model": self.model,
                "rendered": self.rendered,
                "detections": [d.to_dict() for d in self.detections],
            }
        )

    @classmethod
    def from_wire(cls, data: bytes) -> Result:
        h = unpack(data, RESULT)
        dets = h.pop("detections", None)
        if type(dets) is not list or len(dets) > MAX_DETECTIONS:
            raise ProtocolError("malformed", f"result has no detections list of at most {MAX_DETECTIONS}")
        worker, model, rendered = h.pop("worker", ""), h.pop("model", ""), h.pop("rendered", False)
        if (
            type(worker) is not str
            or type(model) is not str
            or len(worker) > 64
            or len(model) > 256
            or type(rendered) is not bool
        ):
            raise ProtocolError("malformed", "result's worker, model or rendered has the wrong type")
        return cls(
            frame=FrameHeader.from_map(h),
            worker=worker,
            model=model,
            detections=[Detection.from_dict(d) for d in dets],
            rendered=rendered,
        )

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """The form `anjeon watch --json` prints: one object per result."""
        now = time.time() if now is None else now
        f = self.frame
        return {
            "camera": f.camera,
            "run": f.run,
            "seq": f.seq,
            "t_capture": f.t_capture,
            "width": f.width,
            "height": f.height,
            "ts": f.ts,
            "worker": self.worker,
            "model": self.model,
            "latency_ms": round((now - f.t_capture) * 1000.0, 1),
            "detections": [d.to_dict() for d in self.detections],
        }


def heartbeat(proc: str, role: str, name: str, info: dict[str, Any]) -> bytes:
    return pack(
        {
            "v": VERSION,
            "kind": HEARTBEAT,
            "proc": proc,
            "role": role,
            "name": name,
            "t": time.time(),
            "info": info,
        }
    )


def ready(proc: str, credit: int, batch: int = 1) -> bytes:
    return pack({"v": VERSION, "kind": READY, "proc": proc, "credit": credit, "batch": batch})


def goodbye(proc: str, role: str) -> bytes:
    """Sent on the control socket by a process that stops cleanly: the broker shows it stopped at once."""
    return pack({"v": VERSION, "kind": GOODBYE, "proc": proc, "role": role})


def credit(proc: str, grant: str, n: int = 1) -> bytes:
    return pack({"v": VERSION, "kind": CREDIT, "proc": proc, "grant": grant, "n": n})
