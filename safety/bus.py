"""Events on the wire: live on the results bus (evt/CAM/) and history over a ROUTER socket.

Live:     [b"evt/CAM/", {"v":1, "kind":"event", "transition": "start"|"update"|"end", "event": {...}}]
          published from the safety service's PUB to the broker's results-in, so every
          subscriber of results-out can take `evt/` (all cameras) or `evt/gate/`.
History:  a client DEALER (or REQ) sends [{"v":1, "kind":"events_query", "camera", "rule", "since",
          "until", "state", "limit"}]; the service's ROUTER answers [{"v":1, "kind":"events",
          "events": [...]}] or [{"v":1, "kind":"error", "error": str}].
docs/protocol.md describes both.
"""

from __future__ import annotations

from typing import Any

import zmq

from anjeon.protocol import wire

EVENT_PREFIX = "evt/"
EVENT = "event"
EVENTS_QUERY = "events_query"
EVENTS = "events"
ERROR = "error"
HISTORY_OFFSET = 5  # default history port: the broker's base port + 5, on the safety host


def event_message(transition: str, event: dict[str, Any]) -> list[bytes]:
    return [wire.topic(EVENT_PREFIX, event["camera"]),
            wire.pack({"v": wire.VERSION, "kind": EVENT, "transition": transition, "event": event})]


def query_history(ctx: zmq.Context, endpoint: str, query: dict[str, Any], timeout: float = 5.0) -> list[dict]:
    """Ask a safety service for stored events; raises TimeoutError or RuntimeError with a sentence."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(wire.pack({"v": wire.VERSION, "kind": EVENTS_QUERY, **query}))
        if not sock.poll(timeout * 1000):
            raise TimeoutError(f"no answer from the safety service at {endpoint} within {timeout:.0f} s")
        reply = wire.unpack(sock.recv_multipart()[-1], EVENTS, ERROR)
        if reply["kind"] == ERROR:
            raise RuntimeError(str(reply.get("error")))
        return list(reply.get("events") or [])
    finally:
        sock.close(0)
