"""Live updates to browsers over one WebSocket each, with per-client backpressure.

A client is sent a camera's frame only when it has acknowledged (painted) the
previous one of that camera, and then it gets the newest frame, whatever came
in between: a slow browser or link gets fewer frames, never older ones, and
nothing queues on the server (ConsoleState holds one frame per camera).

Browser protocol (docs/console.md):
  server -> client, binary: [u32 big-endian n][n bytes JSON frame meta][JPEG]
  server -> client, text:   {"type": "cameras", ...} | {"type": "alarms", ...}
  client -> server, text:   {"type": "ack", "camera": C} | {"type": "watch", "cameras": [C, ...] | null}
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .state import ConsoleState, Frame

log = logging.getLogger("anjeon.viewer")

TICK = 0.5  # seconds between camera-list checks even without news (offline marking needs a clock)
ACK_TIMEOUT = 5.0  # a frame not acknowledged by then is taken as lost, so a camera never freezes for good


def frame_message(frame: Frame) -> bytes:
    meta = json.dumps({**frame.meta, "received": frame.received}, separators=(",", ":")).encode()
    return struct.pack(">I", len(meta)) + meta + frame.jpeg


@dataclass(eq=False)  # one object per connection, kept in a set by identity
class Client:
    send_bytes: Callable[[bytes], Awaitable[None]]
    send_text: Callable[[str], Awaitable[None]]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dirty: set[str] = field(default_factory=lambda: {"cameras", "alarms"})
    sent_version: dict[str, int] = field(default_factory=dict)
    inflight: dict[str, float] = field(default_factory=dict)  # camera -> time.monotonic() sent
    watch: set[str] | None = None  # None: every camera
    last_cameras: str = ""
    frames_sent: int = 0
    superseded: int = 0  # frames this client never got because a newer one was ready first

    def ack(self, camera: str) -> None:
        self.inflight.pop(camera, None)
        self.wake.set()

    def set_watch(self, cameras: list[str] | None) -> None:
        self.watch = None if cameras is None else {str(c) for c in cameras}
        self.wake.set()


class Hub:
    """The set of connected browsers; the bus tells it what changed, each client's pump sends."""

    def __init__(self, state: ConsoleState) -> None:
        self.state = state
        self.clients: set[Client] = set()
        self._packed: dict[str, tuple[int, bytes]] = {}  # camera -> (version, message): one encode per frame

    def frame(self, _camera: str) -> None:
        for c in self.clients:
            c.wake.set()

    def changed(self, what: str) -> None:
        for c in self.clients:
            c.dirty.add(what)
            c.wake.set()

    def stats(self) -> dict[str, Any]:
        return {"clients": len(self.clients), "frames_sent": sum(c.frames_sent for c in self.clients),
                "superseded": sum(c.superseded for c in self.clients)}

    def _message(self, camera: str, version: int, frame: Frame) -> bytes:
        cached = self._packed.get(camera)
        if cached is None or cached[0] != version:
            cached = self._packed[camera] = (version, frame_message(frame))
        return cached[1]

    async def pump(self, client: Client) -> None:
        """Send one client what is new, as fast as it acknowledges; returns when its socket fails."""
        self.clients.add(client)
        try:
            while True:
                try:
                    await asyncio.wait_for(client.wake.wait(), TICK)
                except asyncio.TimeoutError:
                    client.dirty.add("cameras")
                client.wake.clear()
                await self._send_json(client)
                await self._send_frames(client)
        finally:
            self.clients.discard(client)

    async def _send_json(self, client: Client) -> None:
        if client.dirty & {"cameras", "status"}:
            text = json.dumps({"type": "cameras", "broker": self.broker_summary(), "cameras": self.state.cameras()})
            if text != client.last_cameras:
                client.last_cameras = text
                await client.send_text(text)
        if "alarms" in client.dirty:
            await client.send_text(json.dumps({"type": "alarms", "alarms": self.state.alarm_list()}))
        client.dirty.clear()

    async def _send_frames(self, client: Client) -> None:
        now = time.monotonic()
        for camera, feed in list(self.state.feeds.items()):
            if feed.frame is None or (client.watch is not None and camera not in client.watch):
                continue
            sent = client.sent_version.get(camera, 0)
            if feed.version == sent:
                continue
            since = client.inflight.get(camera)
            if since is not None and now - since < ACK_TIMEOUT:
                continue  # still painting the previous one: it gets the newest when it acknowledges
            await client.send_bytes(self._message(camera, feed.version, feed.frame))
            client.superseded += max(0, feed.version - sent - 1) if sent else 0
            client.sent_version[camera] = feed.version
            client.inflight[camera] = now
            client.frames_sent += 1

    def broker_summary(self) -> dict[str, Any]:
        st = self.state.status
        return {"online": self.state.broker_online(), "id": st.get("broker", ""), "uptime": st.get("uptime", 0.0)}
