"""The console's side of the ZeroMQ bus: one subscriber for pictures, status, events and tracks; history.

Subscribes (protocol/client.py, asyncio flavour) on results-out to ``img/``
(detections + the exact JPEG), ``status/``, ``evt/`` and ``trk/`` (the safety
service's live track state). Every message arrives typed from the protocol's
decoders (a bad one is counted in the console's drops and never reaches a
handler); it lands in ConsoleState (newest frame per camera, replaced) and
wakes the live clients. Nothing is queued here beyond the socket's small
high-water mark. History requests (pages of events, acknowledgements, clips,
storage, reports) go to the safety service's ROUTER through the client's
AsyncHistory, one DEALER per request, with a timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zmq.asyncio

from anjeon.protocol import client, imaging, metrics, wire
from anjeon.protocol.client import Event, EventMessage, HistoryError, HistoryPage, Picture, Status, Tracks
from anjeon.protocol.endpoints import BrokerAddress
from anjeon.protocol.stats import DropCounter, RateMeter

from .live import Hub
from .state import NEWER, ConsoleState, Frame, TrackFrame

log = logging.getLogger("anjeon.viewer")

Message = Picture | Status | EventMessage | Tracks  # what the console takes from the bus
STREAMS: tuple[client.Stream[Message], ...] = (client.PICTURES, client.STATUS, client.EVENTS, client.TRACKS)
RCVHWM = 50  # messages queued in the socket at most: pictures are replaced, never queued
BATCH = 500  # messages taken per wake-up; the page is told once per batch (a flood is coalesced)
history_endpoint = client.history_endpoint


class HistoryUnavailable(Exception):
    """No answer, or an error answer; ``status`` is the HTTP status to give the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class BusStats:
    drops: DropCounter
    results: RateMeter


def _hint(exc: TimeoutError) -> TimeoutError:
    return TimeoutError(f"{exc} (is `anjeon safety` running? --history names its address)")


def _unavailable(exc: TimeoutError | wire.ProtocolError | HistoryError) -> HistoryUnavailable:
    """The HTTP status and sentence for a history request that failed."""
    if isinstance(exc, TimeoutError):
        return HistoryUnavailable(504, str(_hint(exc)))
    if isinstance(exc, wire.ProtocolError):
        return HistoryUnavailable(502, f"the safety service answered: {exc}")
    text = str(exc)
    return HistoryUnavailable(404 if text.startswith("no event") or exc.state else 422, text)


class Bus:
    def __init__(self, broker: BrokerAddress, state: ConsoleState, hub: Hub, history: str) -> None:
        self.broker, self.state, self.hub, self.history = broker, state, hub, history
        self.ctx = zmq.asyncio.Context()
        self.stats = BusStats(state.drops, RateMeter())

    async def run(self) -> None:
        sub = client.AsyncSubscriber(
            self.broker, STREAMS, rcvhwm=RCVHWM, ctx=self.ctx, drops=self.stats.drops
        )
        try:
            while not sub.closed:
                self.handle(await sub.drain(timeout=1.0, limit=BATCH))
        finally:
            sub.close()

    def handle(self, batch: list[Message]) -> None:
        """Apply a batch of decoded messages to the state; the live clients are told once per kind."""
        changed: set[str] = set()
        for msg in batch:
            if isinstance(msg, Picture):
                self._picture(msg)
            elif isinstance(msg, Status):
                self.state.set_status(msg)
                changed.add("status")
            elif isinstance(msg, EventMessage):
                self.state.add_event(msg.transition, msg.event)
                changed.add("alarms")
            elif isinstance(msg, Tracks):
                tracks = TrackFrame.of(msg)
                if self.state.add_tracks(tracks):
                    self.hub.tracks(tracks)
        for what in sorted(changed):
            self.hub.changed(what)

    def _picture(self, picture: Picture) -> None:
        camera = picture.camera
        try:  # the browser decodes it: refuse a picture that claims 12000x12000
            imaging.check_jpeg(picture.jpeg)
        except wire.ProtocolError as exc:
            self.stats.drops.drop(exc.reason, f"camera {camera}: {exc}", camera=camera)
            return
        frame = Frame(picture, time.time())
        verdict = self.state.add_frame(frame)
        if verdict == NEWER:
            self.stats.results.add()
            metrics.observe_latency(camera, picture.frame.t_capture, now=frame.received)
            self.hub.frame(camera)
        elif verdict in ("stale", "implausible"):  # (capped ones are counted by the state)
            self.stats.drops.drop(verdict, f"camera {camera}: not newer than the frame held", camera=camera)

    # ---- the safety service's history socket -------------------------------------------------------
    def _archive(self, timeout: float) -> client.AsyncHistory:
        return client.AsyncHistory(self.history, ctx=self.ctx, timeout=timeout, drops=self.stats.drops)

    async def query_history(self, query: Mapping[str, Any], timeout: float = 5.0) -> HistoryPage:
        """One page of stored events, newest first; raises TimeoutError or RuntimeError with a sentence.

        The query is docs/protocol.md's ``events_query`` (``cursor`` = the previous page's ``next``). A
        safety service from before paging answers without ``next`` (``paged`` False: viewer/console/history.py
        continues by ``until``). Bad events in an answer are counted and left out, one by one.
        """
        try:
            page = await self._archive(timeout).page(query)
        except TimeoutError as exc:
            raise _hint(exc) from None
        for ev in page.events:
            self.state.remember(ev)
        return page

    async def request(
        self, message: Mapping[str, Any], expect: str, timeout: float = 5.0
    ) -> tuple[dict[str, Any], list[bytes]]:
        """One request (``kind`` and its fields) to the history socket: clips, storage, reports."""
        fields = {k: v for k, v in message.items() if k != "kind"}
        try:
            return await self._archive(timeout).request(str(message["kind"]), fields, expect)
        except (TimeoutError, wire.ProtocolError, HistoryError) as exc:
            raise _unavailable(exc) from None

    async def send_ack(self, event_id: str, by: str, note: str, outcome: str, reason: str) -> Event:
        """Store the acknowledgement with the event in the safety store; the stored event (with `ack`) back."""
        try:
            return await self._archive(5.0).ack(event_id, by, note, outcome, reason)
        except wire.ProtocolError as exc:
            self.stats.drops.drop(exc.reason, f"acknowledgement answer: {exc}")
            raise _unavailable(exc) from None
        except (TimeoutError, HistoryError) as exc:
            raise _unavailable(exc) from None

    async def seed_alarms(self) -> None:
        """Open events from before this viewer started (a restarted console still shows them)."""
        try:
            page = await self.query_history({"state": "open", "limit": 200}, timeout=3.0)
            for ev in page.events:
                if ev.id not in self.state.alarms:
                    self.state.add_event("update", ev)
            self.hub.changed("alarms")
        except (TimeoutError, RuntimeError, wire.ProtocolError) as exc:
            log.info("no open events from the safety service yet: %s", exc)

    def close(self) -> None:
        self.ctx.destroy(linger=0)
