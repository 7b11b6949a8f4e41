"""Hypothesis strategies for hostile protocol input, shared by tests/test_fuzz_protocol.py and
benchmarks/fuzz_protocol.py: raw bytes, and valid messages with one field (at any depth) replaced by a
value of another type ("type-confused maps")."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack
from hypothesis import strategies as st

from anjeon.protocol import messages, wire

JPEG = b"\xff\xd8" + b"\x00" * 16

# Values of every msgpack type, including the awkward ones.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.binary(max_size=40),
    st.sampled_from(["", "jpeg", "streaming", "cam", "a/b", "x" * 70, "worker", "edge"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)


def _now() -> float:
    return time.time()


VALID: dict[str, Callable[[], dict[str, Any]]] = {
    wire.FRAME: lambda: {
        "v": 1,
        "kind": "frame",
        "camera": "cam",
        "run": "r1",
        "seq": 3,
        "t_capture": _now(),
        "width": 8,
        "height": 8,
        "size": len(JPEG),
        "codec": "jpeg",
        "edge": "e",
        "age": 0.0,
        "ts": {"capture": _now()},
    },
    wire.READY: lambda: {"v": 1, "kind": "ready", "proc": "w1", "credit": 2, "batch": 1},
    wire.CREDIT: lambda: {"v": 1, "kind": "credit", "proc": "w1", "grant": "b.1", "n": 1},
    wire.HEARTBEAT + "/edge": lambda: {
        "v": 1,
        "kind": "hb",
        "proc": "e1",
        "role": "edge",
        "name": "edge",
        "t": _now(),
        "info": {
            "run": "r",
            "cameras": {
                "cam": {
                    "state": "streaming",
                    "error": "",
                    "source": "x",
                    "capture_fps": 10.0,
                    "sent_fps": 10,
                    "sent": 5,
                    "captured": 5,
                    "reconnects": 0,
                    "bytes_per_s": 100,
                    "drops": {"backpressure": 1},
                }
            },
            "process": {"cpu": 1.0, "rss_mb": 50.0},
        },
    },
    wire.HEARTBEAT + "/worker": lambda: {
        "v": 1,
        "kind": "hb",
        "proc": "w1",
        "role": "worker",
        "name": "w",
        "t": _now(),
        "info": {
            "model": "null",
            "device": "cpu",
            "batch": 1,
            "threads": 1,
            "processed": 3,
            "fps": 1.0,
            "batch_mean": 1.0,
            "infer_ms": 1.0,
            "drops": {},
            "camera_drops": {"cam": {"too_old": 1}},
            "process": {"cpu": 1.0, "rss_mb": 50.0},
        },
    },
    wire.HEARTBEAT + "/safety": lambda: {
        "v": 1,
        "kind": "hb",
        "proc": "s1",
        "role": "safety",
        "t": _now(),
        "info": {"drops": {}, "results": 3, "events": 1, "alerts": {"log": {"sent": 1, "failed": 0}}},
    },
    messages.GOODBYE: lambda: {"v": 1, "kind": "bye", "proc": "e1", "role": "edge"},
    wire.HEARTBEAT_ACK: lambda: {"v": 1, "kind": "hb_ack", "broker": "b1"},
    wire.RESULT: lambda: {
        **VALID[wire.FRAME](),
        "kind": "result",
        "worker": "w1",
        "model": "m",
        "rendered": False,
        "detections": [{"class": "person", "label": "Fall", "confidence": 0.5, "box": [1, 2, 3.5, 4]}],
    },
    messages.EVENT: lambda: {
        "v": 1,
        "kind": "event",
        "transition": "start",
        "event": {
            "id": "e1",
            "camera": "cam",
            "rule": "r",
            "type": "intrusion",
            "zone": "z",
            "line": "",
            "severity": "high",
            "state": "open",
            "started": 1.0,
            "since": 1.0,
            "updated": 2.0,
            "ended": None,
            "duration": 1.0,
            "peak": 1,
            "count": 1,
            "tracks": [1, 2],
            "run": "r1",
            "seq": 3,
            "snapshot": "/x.jpg",
        },
    },
    messages.EVENTS_QUERY: lambda: {
        "v": 1,
        "kind": "events_query",
        "camera": "cam",
        "limit": 10,
        "cursor": "",
        "total": True,
    },
    messages.EVENTS: lambda: {
        "v": 1,
        "kind": "events",
        "events": [VALID[messages.EVENT]()["event"]],
        "next": "c1",
    },
    messages.ERROR: lambda: {"v": 1, "kind": "error", "error": "no"},
    messages.ACK: lambda: {
        "v": 1,
        "kind": "ack",
        "event": "e1",
        "by": "kim",
        "note": "",
        "outcome": "resolved",
    },
    messages.ACKED: lambda: {
        "v": 1,
        "kind": "acked",
        "event": {**VALID[messages.EVENT]()["event"], "ack": {"by": "kim", "at": 2.0, "note": ""}},
    },
    messages.TRACKS: lambda: {
        "v": 1,
        "kind": "tracks",
        "camera": "cam",
        "run": "r",
        "seq": 1,
        "t_capture": 1.0,
        "tracks": [{"id": 1, "box": [1, 2, 3, 4], "zones": ["z"], "rules": [], "confirmed": True}],
    },
    wire.STATUS: lambda: {
        "v": 1,
        "kind": "status",
        "broker": "b1",
        "t": 1.0,
        "uptime": 1.0,
        "pending": 0,
        "process": {"cpu": 0.0, "rss_mb": 1.0},
        "drops": {},
        "limits": {"cameras": 10},
        "cameras": {
            "cam": {
                "online": True,
                "state": "streaming",
                "fps_in": 1.0,
                "last_frame_s": None,
                "drops": {"edge": {}, "broker": {}},
            }
        },
        "workers": {"w1": {"name": "w", "online": True, "credit": 1}},
        "edges": {"e1": {"name": "e", "online": True, "cameras": ["cam"]}},
        "subscribers": {},
    },
}

DECODERS: dict[str, Callable[[bytes], Any]] = {
    wire.FRAME: messages.decode_frame,
    wire.READY: messages.decode_ready,
    wire.CREDIT: messages.decode_credit,
    wire.HEARTBEAT + "/edge": messages.decode_control,
    wire.HEARTBEAT + "/worker": messages.decode_control,
    wire.HEARTBEAT + "/safety": messages.decode_heartbeat,
    messages.GOODBYE: messages.decode_goodbye,
    wire.HEARTBEAT_ACK: messages.decode_hb_ack,
    wire.RESULT: messages.decode_result,
    messages.EVENT: messages.decode_event,
    messages.EVENTS_QUERY: messages.decode_events_query,
    messages.EVENTS: messages.decode_history_answer,
    messages.ERROR: messages.decode_history_answer,
    messages.ACK: messages.decode_ack,
    messages.ACKED: messages.decode_history_answer,
    messages.TRACKS: messages.decode_tracks,
    wire.STATUS: messages.decode_status,
}


def paths(m: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a nested message (maps and lists)."""
    out = []
    items = m.items() if isinstance(m, dict) else enumerate(m) if isinstance(m, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(paths(v, prefix + (k,)))
    return out


def replace(m: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(m, dict):
        return {**m, head: replace(m[head], rest, value)}
    copy = list(m)
    copy[head] = replace(copy[head], rest, value)
    return copy


@st.composite
def confused(draw, kind: str) -> bytes:
    """A valid message of ``kind`` with one field at any depth replaced (or removed) by any value."""
    m = VALID[kind]()
    choices = paths(m)
    path = draw(st.sampled_from(choices))
    if draw(st.integers(0, 9)) == 0 and isinstance(path[-1], str):
        parent = path[:-1]
        target = m
        for p in parent:
            target = target[p]
        target.pop(path[-1])
    else:
        m = replace(m, path, draw(values))
    return msgpack.packb(m, use_bin_type=True)


def any_message() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        *[confused(k) for k in VALID],
        st.builds(lambda v: msgpack.packb(v, use_bin_type=True), values),
    )
