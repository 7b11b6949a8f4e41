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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .state import ConsoleState, Frame, TrackFrame

log = logging.getLogger("anjeon.viewer")

TICK = 0.5  # seconds between camera-list checks even without news (offline marking needs a clock)
ACK_TIMEOUT = 5.0  # a frame not acknowledged by then is taken as lost, so a camera never freezes for good
# Lists (cameras, alarms) go to a browser at most this often: a burst of 20,000 forged events becomes a
# handful of list messages, each at most --max-alarms long, not 20,000 growing ones.
LIST_INTERVAL = 0.25
MAX_WATCH = 1024  # camera names a browser may ask for


def frame_message(meta: dict[str, Any], jpeg: bytes) -> bytes:
    data = json.dumps(meta, separators=(",", ":")).encode()
    return struct.pack(">I", len(data)) + data + jpeg


@dataclass(eq=False)  # one object per connection, kept in a set by identity
class Client:
    send_bytes: Callable[[bytes], Awaitable[None]]
    send_text: Callable[[str], Awaitable[None]]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dirty: set[str] = field(default_factory=lambda: {"cameras", "alarms"})
    sent_version: dict[str, int] = field(default_factory=dict)
    inflight: dict[str, float] = field(default_factory=dict)  # camera -> time.monotonic() sent
    watch: set[str] | None = field(default_factory=set)  # None: every camera; none until the browser says
    last_cameras: str = ""
    lists_sent: float = 0.0  # time.monotonic() of the last list message
    lists_due: bool = False  # a wake-up for the held-back lists is scheduled
    shown: dict[str, tuple[str, int]] = field(default_factory=dict)  # camera -> (run, seq) of the frame sent
    redraw: dict[str, str] = field(default_factory=dict)  # camera -> tracks message for the frame it shows
    bytes_sent: int = 0
    frames_sent: int = 0
    superseded: int = 0  # frames this client never got because a newer one was ready first

    def ack(self, camera: str) -> None:
        self.inflight.pop(camera, None)
        self.wake.set()

    def set_watch(self, cameras: list[str] | None) -> None:
        """Send pictures of these cameras only (None: all). A camera coming (back) on screen gets its newest
        frame at once, even if it is the one sent before: the browser dropped that tile meanwhile."""
        new = None if cameras is None else {str(c)[:64] for c in cameras[:MAX_WATCH]}
        for cam in list(self.sent_version):
            if new is not None and cam not in new or self.watch is not None and cam not in self.watch:
                self.sent_version.pop(cam, None)
                self.inflight.pop(cam, None)
        self.watch = new
        self.wake.set()


class Hub:
    """The set of connected browsers; the bus tells it what changed, each client's pump sends."""

    def __init__(self, state: ConsoleState) -> None:
        self.state = state
        self.clients: set[Client] = set()
        self._packed: dict[str, tuple[int, bytes]] = {}  # camera -> (version, message): one encode per frame
        self._cameras: tuple[float, str] = (
            -1.0,
            "",
        )  # (when, text): one camera list per tick for all clients

    def frame(self, _camera: str) -> None:
        for c in self.clients:
            c.wake.set()

    def tracks(self, tf: TrackFrame) -> None:
        """The safety service's tracks for a frame a browser already has: it redraws that frame with them
        (the tracks of a result come after its picture, by the time the service takes)."""
        text = None
        for c in self.clients:
            if c.shown.get(tf.camera) == (tf.run, tf.seq):
                text = text or json.dumps(
                    {
                        "type": "tracks",
                        "camera": tf.camera,
                        "run": tf.run,
                        "seq": tf.seq,
                        "tracks": tf.tracks,
                    },
                    separators=(",", ":"),
                )
                c.redraw[tf.camera] = text
                c.wake.set()

    def changed(self, what: str) -> None:
        for c in self.clients:
            c.dirty.add(what)
            c.wake.set()

    def stats(self) -> dict[str, Any]:
        return {
            "clients": len(self.clients),
            "frames_sent": sum(c.frames_sent for c in self.clients),
            "superseded": sum(c.superseded for c in self.clients),
            "bytes_sent": sum(c.bytes_sent for c in self.clients),
        }

    def _message(self, camera: str, version: int, frame: Frame) -> bytes:
        cached = self._packed.get(camera)
        if cached is None or cached[0] != version:
            cached = self._packed[camera] = (
                version,
                frame_message(self.state.frame_meta(camera) or {}, frame.jpeg),
            )
            if len(self._packed) > len(self.state.feeds) * 2 + 16:  # cameras that left the state
                for cam in [c for c in self._packed if c not in self.state.feeds]:
                    del self._packed[cam]
        return cached[1]

    def cameras_text(self) -> str:
        now = time.monotonic()
        if now - self._cameras[0] >= 0.1:
            self._cameras = (
                now,
                json.dumps(
                    {"type": "cameras", "broker": self.broker_summary(), "cameras": self.state.cameras()}
                ),
            )
        return self._cameras[1]

    @staticmethod
    def _due(client: Client) -> None:
        client.lists_due = False
        client.wake.set()

    async def _send(self, client: Client, text: str) -> None:
        client.bytes_sent += len(text)
        await client.send_text(text)

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
                wait = client.lists_sent + LIST_INTERVAL - time.monotonic()
                if client.dirty and wait <= 0:
                    await self._send_json(client)
                elif client.dirty and not client.lists_due:
                    client.lists_due = True  # the lists follow shortly
                    asyncio.get_running_loop().call_later(wait, self._due, client)
                await self._send_redraws(client)
                await self._send_frames(client)
        finally:
            self.clients.discard(client)

    async def _send_json(self, client: Client) -> None:
        dirty, client.dirty = client.dirty, set()
        client.lists_sent = time.monotonic()
        if dirty & {"cameras", "status"}:
            text = self.cameras_text()
            if text != client.last_cameras:
                client.last_cameras = text
                await self._send(client, text)
        if "alarms" in dirty:
            await self._send(client, json.dumps({"type": "alarms", "alarms": self.state.alarm_list()}))

    async def _send_redraws(self, client: Client) -> None:
        while client.redraw:
            _, text = client.redraw.popitem()
            await self._send(client, text)

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
            message = self._message(camera, feed.version, feed.frame)
            client.bytes_sent += len(message)
            await client.send_bytes(message)
            client.superseded += max(0, feed.version - sent - 1) if sent else 0
            client.sent_version[camera] = feed.version
            client.shown[camera] = (feed.frame.picture.frame.run, feed.frame.picture.frame.seq)
            client.inflight[camera] = now
            client.frames_sent += 1

    def broker_summary(self) -> dict[str, Any]:
        st = self.state.broker
        return {
            "online": self.state.broker_online(),
            "id": st.broker if st else "",
            "uptime": st.uptime if st else 0.0,
        }
