"""Events on the wire: live on the results bus (evt/CAM/) and history over a ROUTER socket.

Live:     [b"evt/CAM/", {"v":1, "kind":"event", "transition": "start"|"update"|"end", "event": {...}}]
          published from the safety service's PUB to the broker's results-in, so every
          subscriber of results-out can take `evt/` (all cameras) or `evt/gate/`.
History:  a client DEALER (or REQ) sends one request (events_query, ack, clip_query,
          storage_query) to the service's ROUTER (safety/history.py) and gets one answer;
          event pages come newest first with a cursor for the next page.
docs/protocol.md ("The history socket") describes every field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import zmq

from anjeon.protocol import security, wire

EVENT_PREFIX = "evt/"
EVENT = "event"
EVENTS_QUERY, EVENTS = "events_query", "events"
ACK, ACKED = "ack", "acked"
CLIP_QUERY, CLIP = "clip_query", "clip"
STORAGE_QUERY, STORAGE = "storage_query", "storage"
REPORT_QUERY, REPORT = "report_query", "report"
ERROR = "error"
CLIP_MIME = "video/mp4"
HISTORY_OFFSET = 5  # default history port: the broker's base port + 5, on the safety host
DEFAULT_HISTORY_HOST = "127.0.0.1"  # loopback unless --history-bind says otherwise


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


def export_fields(event: dict[str, Any]) -> dict[str, Any]:
    """EXPORT_COLUMNS of one event map ('' where a value is missing)."""
    ack = event.get("ack") if isinstance(event.get("ack"), dict) else {}
    clip = event.get("clip") if isinstance(event.get("clip"), dict) else {}
    tracks = event.get("tracks") if isinstance(event.get("tracks"), list) else []
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


def event_message(transition: str, event: dict[str, Any]) -> list[bytes]:
    return [
        wire.topic(EVENT_PREFIX, event["camera"]),
        wire.pack({"v": wire.VERSION, "kind": EVENT, "transition": transition, "event": event}),
    ]


class HistoryError(RuntimeError):
    """The service answered with an error; ``state`` is set for a clip that is not ready."""

    def __init__(self, message: str, state: str = "") -> None:
        super().__init__(message)
        self.state = state


def request(
    ctx: zmq.Context, endpoint: str, message: dict[str, Any], expect: str, timeout: float = 5.0
) -> tuple[dict[str, Any], list[bytes]]:
    """One request, one answer: (answer header, extra frames); raises TimeoutError or HistoryError."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        security.connect(sock, endpoint, server=security.HISTORY_KEY)
        sock.send(wire.pack({"v": wire.VERSION, **message}))
        if not sock.poll(timeout * 1000):
            raise TimeoutError(f"no answer from the safety service at {endpoint} within {timeout:.0f} s")
        frames = sock.recv_multipart()
    finally:
        sock.close(0)
    reply = wire.unpack(frames[0], expect, ERROR)
    if reply["kind"] == ERROR:
        raise HistoryError(str(reply.get("error")), str(reply.get("state") or ""))
    return reply, frames[1:]


def query_page(
    ctx: zmq.Context, endpoint: str, query: dict[str, Any], timeout: float = 5.0
) -> dict[str, Any]:
    """One page: {"events": [...], "next": cursor|None, "total": int|None}."""
    reply, _ = request(ctx, endpoint, {"kind": EVENTS_QUERY, **query}, EVENTS, timeout)
    return reply


def iterate_history(
    ctx: zmq.Context, endpoint: str, query: dict[str, Any], timeout: float = 5.0
) -> Iterator[dict[str, Any]]:
    """Every matching event, newest first, page after page."""
    query = {k: v for k, v in query.items() if v is not None}
    while True:
        page = query_page(ctx, endpoint, query, timeout)
        yield from page.get("events") or []
        if not page.get("next"):
            return
        query = {**query, "cursor": page["next"]}


def query_history(ctx: zmq.Context, endpoint: str, query: dict[str, Any], timeout: float = 5.0) -> list[dict]:
    """Up to query["limit"] events (any number: several pages are fetched), newest first."""
    limit = int(query.get("limit") or 100)
    out: list[dict] = []
    for event in iterate_history(ctx, endpoint, {**query, "limit": min(limit, 1000)}, timeout):
        out.append(event)
        if len(out) >= limit:
            break
    return out


def acknowledge(
    ctx: zmq.Context,
    endpoint: str,
    event: str,
    by: str,
    note: str = "",
    outcome: str = "",
    reason: str = "",
    timeout: float = 5.0,
) -> dict[str, Any]:
    reply, _ = request(
        ctx,
        endpoint,
        {"kind": ACK, "event": event, "by": by, "note": note, "outcome": outcome, "reason": reason},
        ACKED,
        timeout,
    )
    return dict(reply.get("event") or {})


def fetch_clip(ctx: zmq.Context, endpoint: str, event: str, timeout: float = 10.0) -> bytes:
    reply, extra = request(ctx, endpoint, {"kind": CLIP_QUERY, "event": event}, CLIP, timeout)
    if len(extra) != 1 or len(extra[0]) != reply.get("size"):
        raise HistoryError("the clip answer is not [header, bytes] of the announced size")
    return extra[0]


def query_storage(ctx: zmq.Context, endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    reply, _ = request(ctx, endpoint, {"kind": STORAGE_QUERY}, STORAGE, timeout)
    return reply
