"""The console's side of the ZeroMQ bus: one SUB for pictures, status and events; history queries.

SUB on results-out: ``img/`` (detections + the exact JPEG), ``status/``,
``evt/`` and ``trk/`` (the safety service's live track state). Everything lands
in ConsoleState (newest frame per camera, replaced; every field checked) and
wakes the live clients; nothing is queued here beyond the socket's small
high-water mark. History queries go to the safety service's documented ROUTER
(docs/protocol.md, paged by cursor), one DEALER per query, with a timeout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from anjeon.protocol import messages, metrics, security, wire
from anjeon.protocol.endpoints import RESULTS_OUT, BrokerAddress
from anjeon.protocol.sockets import configure
from anjeon.protocol.stats import DropCounter, RateMeter

from .live import Hub
from .state import NEWER, ConsoleState, check_event, parse_image_message, parse_tracks_message

log = logging.getLogger("anjeon.viewer")

EVENT_PREFIX = b"evt/"  # the safety service's live events (docs/protocol.md)
TRACKS_PREFIX = b"trk/"  # the safety service's track state per processed result
EVENTS_QUERY, EVENTS, ERROR = "events_query", "events", "error"
HISTORY_OFFSET = 5  # the safety service's default history port: broker base port + 5


@dataclass
class HistoryPage:
    events: list[dict[str, Any]]
    next: str | None  # the service's cursor for the rest; None on the last page
    paged: bool  # the service pages (docs/protocol.md); False: an older one that only knows `until`
    total: int | None = None


@dataclass
class BusStats:
    drops: DropCounter
    results: RateMeter


def history_endpoint(broker: BrokerAddress, override: str = "") -> str:
    return override or f"tcp://{broker.host}:{broker.base_port + HISTORY_OFFSET}"


class Bus:
    def __init__(self, broker: BrokerAddress, state: ConsoleState, hub: Hub, history: str) -> None:
        self.broker, self.state, self.hub, self.history = broker, state, hub, history
        self.ctx = zmq.asyncio.Context()
        self.stats = BusStats(state.drops, RateMeter())

    async def run(self) -> None:
        sub = configure(self.ctx.socket(zmq.SUB), rcvhwm=50)
        security.connect(sub, self.broker.endpoint(RESULTS_OUT))
        for prefix in (wire.IMAGE_PREFIX.encode(), wire.STATUS_TOPIC, EVENT_PREFIX, TRACKS_PREFIX):
            sub.setsockopt(zmq.SUBSCRIBE, prefix)
        try:
            while True:
                self.handle(await sub.recv_multipart())
        finally:
            sub.close(0)

    def handle(self, frames: list[bytes]) -> None:
        topic = frames[0]
        try:
            if topic == wire.STATUS_TOPIC:
                if len(frames) != 2:
                    raise wire.ProtocolError("malformed", "status with extra parts")
                self.state.set_status(messages.decode_status(frames[1]))
                self.hub.changed("status")
            elif topic.startswith(EVENT_PREFIX):
                self._event(frames)
            elif topic.startswith(TRACKS_PREFIX):
                tracks = parse_tracks_message(frames)
                if self.state.add_tracks(tracks):
                    self.hub.tracks(tracks)
            elif topic.startswith(wire.IMAGE_PREFIX.encode()):
                frame = parse_image_message(frames)
                verdict = self.state.add_frame(frame)
                if verdict == NEWER:
                    self.stats.results.add()
                    metrics.observe_latency(frame.camera, frame.meta["t_capture"], now=frame.received)
                    self.hub.frame(frame.camera)
                elif verdict in ("stale", "implausible"):  # (capped ones are counted by the state)
                    self.stats.drops.drop(
                        verdict, f"camera {frame.camera}: not newer than the frame held", camera=frame.camera
                    )
        except wire.ProtocolError as exc:
            self.stats.drops.drop(exc.reason, f"on topic {topic[:40]!r}: {exc}")
        except (ValueError, TypeError, KeyError) as exc:  # a well-formed header with nonsense inside
            self.stats.drops.drop("malformed", f"on topic {topic[:40]!r}: {type(exc).__name__}: {exc}")

    def _event(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            raise wire.ProtocolError("malformed", "event with extra parts")
        msg = wire.unpack(frames[1], "event")
        event = msg.get("event")
        if not isinstance(event, dict) or msg.get("transition") not in ("start", "update", "end"):
            raise wire.ProtocolError("malformed", "event message without a transition and an event map")
        self.state.add_event(str(msg["transition"]), event)
        self.hub.changed("alarms")

    async def query_history(self, query: dict[str, Any], timeout: float = 5.0) -> HistoryPage:
        """One page of stored events, newest first; raises TimeoutError or RuntimeError with a sentence.

        The query is docs/protocol.md's ``events_query`` (``cursor`` = the previous page's ``next``).
        A safety service from before paging ignores ``cursor`` and answers without ``next``: the page
        is then continued by ``until`` = the last event's start (see HistoryPage.fallback_next).
        """
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            security.connect(sock, self.history, server=security.HISTORY_KEY)
            await sock.send(wire.pack({"v": wire.VERSION, "kind": EVENTS_QUERY, **query}))
            if not await sock.poll(timeout * 1000):
                raise TimeoutError(
                    f"no answer from the safety service at {self.history} within {timeout:.0f} s "
                    "(is `anjeon safety` running? --history names its address)"
                )
            reply = wire.unpack((await sock.recv_multipart())[-1], EVENTS, ERROR)
        finally:
            sock.close(0)
        if reply["kind"] == ERROR:
            raise RuntimeError(str(reply.get("error"))[:500])
        events = []
        for raw in reply.get("events") or []:
            try:
                events.append(check_event(raw))
            except wire.ProtocolError as exc:
                self.stats.drops.drop("malformed", f"history answer: {exc}")
        for ev in events:
            self.state.remember(ev)
        nxt = reply.get("next")
        total = reply.get("total")
        return HistoryPage(
            events,
            nxt if isinstance(nxt, str) and nxt else None,
            "next" in reply,
            total if isinstance(total, int) and not isinstance(total, bool) else None,
        )

    async def seed_alarms(self) -> None:
        """Open events from before this viewer started (a restarted console still shows them)."""
        try:
            page = await self.query_history({"state": "open", "limit": 200}, timeout=3.0)
            for ev in page.events:
                if ev["id"] not in self.state.alarms:
                    self.state.add_event("update", ev)
            self.hub.changed("alarms")
        except (TimeoutError, RuntimeError, wire.ProtocolError) as exc:
            log.info("no open events from the safety service yet: %s", exc)

    def close(self) -> None:
        self.ctx.destroy(linger=0)
