"""Synthetic cameras for load tests: real JPEG content, sent at an exact rate, like many edges.

Frames are encoded once into a pool (so a 2-core load generator can offer
hundreds of frames per second) and sent with fresh headers: the broker and
workers see real JPEGs of the asked resolution, and decode costs are real.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import zmq

from anjeon.protocol import security, wire
from anjeon.protocol.endpoints import FRAMES_IN, BrokerAddress
from anjeon.protocol.heartbeat import HeartbeatClient
from anjeon.protocol.sockets import configure
from anjeon.protocol.synthetic import SyntheticSource

log = logging.getLogger("anjeon.loadtest")

POOL_FRAMES = 24  # distinct frames per run; enough that caches see varied data


@dataclass
class FramePool:
    jpegs: list[bytes]
    width: int
    height: int
    encode_ms: float  # mean time to encode one frame of this size here (the edge's encode stage)


def make_pool(width: int, height: int, quality: int = 80, frames: int = POOL_FRAMES) -> FramePool:
    scene = SyntheticSource(fps=10)
    scene.open()
    jpegs, spent = [], 0.0
    for _ in range(frames):
        image = cv2.resize(scene.read(), (width, height), interpolation=cv2.INTER_AREA)
        started = time.perf_counter()
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        spent += time.perf_counter() - started
        jpegs.append(buf.tobytes())
    scene.close()
    return FramePool(jpegs, width, height, 1000.0 * spent / frames)


@dataclass
class SendCounts:
    offered: int = 0  # frames that were due
    sent: int = 0
    dropped: int = 0  # the socket would have blocked (edge-side drop)
    per_camera: dict[str, int] = field(default_factory=dict)


class SyntheticCameras:
    """Sends ``cameras`` x ``fps`` frames per second, spread evenly in time, never blocking."""

    def __init__(
        self,
        broker: BrokerAddress,
        cameras: int,
        fps: float,
        pool: FramePool,
        ctx: zmq.Context[Any] | None = None,
        prefix: str = "load",
    ) -> None:
        self.broker, self.pool = broker, pool
        self.camera_ids = [f"{prefix}{i:02d}" for i in range(cameras)]
        self.fps = fps  # per camera; the ramp changes it while running
        self.counts = SendCounts()
        self._ctx = ctx or zmq.Context.instance()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.proc, self.run_id = wire.new_id(), wire.new_id()
        self.heartbeat = HeartbeatClient(self._ctx, broker, self.proc, "edge", "loadtest", self._info, log)

    def _info(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "cameras": {
                cam: {"state": "streaming", "source": "loadtest", "sent": self.counts.per_camera.get(cam, 0)}
                for cam in self.camera_ids
            },
        }

    def start(self) -> SyntheticCameras:
        self.heartbeat.start()
        self._thread = threading.Thread(target=self._run, name="loadtest-send", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.heartbeat.stop()

    def _run(self) -> None:
        # Two frames of queue per camera, as N edges with their own sockets would have: one shared
        # socket with room for 2 drops frames of hundreds of cameras whenever the broker blinks.
        push = configure(
            self._ctx.socket(zmq.PUSH), sndhwm=2 * len(self.camera_ids), immediate=True, peer_heartbeat=True
        )
        security.connect(push, self.broker.endpoint(FRAMES_IN))
        n_cams, pool = len(self.camera_ids), self.pool
        seqs = dict.fromkeys(self.camera_ids, 0)
        start, k, rate = time.monotonic(), 0, self.fps
        try:
            while not self._stop.is_set():
                if self.fps != rate:  # the ramp raised the load: restart the schedule
                    start, k, rate = time.monotonic(), 0, self.fps
                due = start + k / (n_cams * rate)
                now = time.monotonic()
                if due > now:
                    self._stop.wait(min(due - now, 0.1))
                    continue
                if now - due > 1.0:  # we stalled (a busy machine): do not burst to catch up
                    start, k = now, 0
                cam = self.camera_ids[k % n_cams]
                jpeg = pool.jpegs[k % len(pool.jpegs)]
                k += 1
                seqs[cam] += 1
                self.counts.offered += 1
                t = time.time()
                header = wire.FrameHeader(
                    camera=cam,
                    run=self.run_id,
                    seq=seqs[cam],
                    t_capture=t,
                    width=pool.width,
                    height=pool.height,
                    size=len(jpeg),
                    edge=self.proc,
                    ts={"capture": t, "encoded": t, "edge_send": t},
                )
                try:
                    push.send_multipart([header.to_wire(), jpeg], zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    self.counts.dropped += 1
                    continue
                self.counts.sent += 1
                self.counts.per_camera[cam] = self.counts.per_camera.get(cam, 0) + 1
        finally:
            push.close(0)
