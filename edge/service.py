"""The edge process: capture threads in, one sender loop out to the broker's frames-in.

The sender wakes for each camera at its fps cap, takes that camera's newest
frame if it has not sent it yet, encodes and pushes it without ever blocking:
a PUSH socket with a tiny high-water mark and ZMQ_IMMEDIATE, so when the
broker is slow or gone the frame is dropped and counted instead of queued.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import zmq

from anjeon.config.camera import CameraConfig
from anjeon.protocol import security, wire
from anjeon.protocol.endpoints import FRAMES_IN, BrokerAddress
from anjeon.protocol.heartbeat import HeartbeatClient, default_name
from anjeon.protocol.secrets import install_log_masking
from anjeon.protocol.sockets import configure, count_error
from anjeon.protocol.stats import DropCounter, RateMeter

from .capture import Capture
from .stream import quiet_native_logs

log = logging.getLogger("anjeon.edge")

SEND_HWM = 2  # frames queued towards the broker at most; more would only be stale


@dataclass
class EdgeConfig:
    broker: BrokerAddress
    cameras: list[CameraConfig]
    name: str = ""
    max_frame_bytes: int = wire.DEFAULT_MAX_FRAME_BYTES


@dataclass
class CameraOut:
    """Per-camera state of the sender."""

    capture: Capture
    drops: DropCounter
    sent: RateMeter = field(default_factory=RateMeter)
    captured: RateMeter = field(default_factory=RateMeter)
    bytes_sent: RateMeter = field(default_factory=RateMeter)
    next_send: float = 0.0
    last_number: int = 0
    seq: int = 0


def encode(image: np.ndarray, config: CameraConfig) -> tuple[bytes, int, int]:
    if config.width and image.shape[1] > config.width:
        scale = config.width / image.shape[1]
        image = cv2.resize(image, (config.width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, config.quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes(), image.shape[1], image.shape[0]


class Edge:
    def __init__(self, config: EdgeConfig, ctx: zmq.SyncContext | None = None) -> None:
        self.config = config
        self.proc = wire.new_id()
        self.run_id = wire.new_id()  # sequences restart with every start; the run id tells them apart
        self._ctx = ctx or zmq.Context.instance()
        self.cameras = {
            c.id: CameraOut(Capture(c), DropCounter(logging.getLogger(f"anjeon.edge.{c.id}")))
            for c in config.cameras
        }
        self.heartbeat = HeartbeatClient(
            self._ctx, config.broker, self.proc, "edge", config.name or default_name("edge"), self._info, log
        )

    def _info(self) -> dict[str, Any]:
        now = time.monotonic()
        cams = {}
        for cam_id, out in self.cameras.items():
            cap = out.capture
            out.captured.count = cap.captured
            state, error = cap.status()
            cams[cam_id] = {
                "state": state,
                "error": error,
                "source": cap.description,
                "capture_fps": round(out.captured.sample(now), 2),
                "sent_fps": round(out.sent.sample(now), 2),
                "sent": out.sent.count,
                "captured": cap.captured,
                "reconnects": cap.reconnects,
                "bytes_per_s": round(out.bytes_sent.sample(now)),
                "drops": out.drops.snapshot(),
            }
        return {"cameras": cams, "run": self.run_id}

    def serve(self, stop: threading.Event) -> None:
        install_log_masking()  # before any camera logs: no password may reach a log line
        quiet_native_logs()
        push = configure(self._ctx.socket(zmq.PUSH), sndhwm=SEND_HWM, immediate=True, peer_heartbeat=True)
        security.connect(push, self.config.broker.endpoint(FRAMES_IN))
        for out in self.cameras.values():
            out.capture.start()
        self.heartbeat.start()
        log.info("edge %s sending %d camera(s) to %s", self.proc, len(self.cameras), self.config.broker)
        try:
            while not stop.is_set():
                now = time.monotonic()
                for cam_id, out in self.cameras.items():
                    if now >= out.next_send and not self._send_newest(push, cam_id, out, now):
                        return  # the socket or its context closed: a clean exit
                wake = min(out.next_send for out in self.cameras.values())
                stop.wait(min(0.05, max(0.002, wake - time.monotonic())))
        finally:
            for out in self.cameras.values():
                out.capture.stop()
            self.heartbeat.stop()
            push.close(0)
            log.info("edge stopped")

    def _send_newest(self, push: zmq.SyncSocket, cam_id: str, out: CameraOut, now: float) -> bool:
        """Send the camera's newest frame if it has a new one; False when the socket is closed."""
        frame = out.capture.latest()
        if frame is None or frame.number == out.last_number:
            out.next_send = now + 0.005  # nothing new yet: look again soon
            return True
        out.last_number = frame.number
        out.next_send = now + 1.0 / out.capture.config.fps
        jpeg, width, height = encode(frame.image, out.capture.config)
        t_encoded = time.time()
        if len(jpeg) > self.config.max_frame_bytes:
            out.drops.drop("oversized", f"{len(jpeg)} bytes; lower --quality or set --width")
            return True
        out.seq += 1
        header = wire.FrameHeader(
            camera=cam_id,
            run=self.run_id,
            seq=out.seq,
            t_capture=frame.t_capture,
            width=width,
            height=height,
            size=len(jpeg),
            edge=self.proc,
            ts={"capture": frame.t_capture, "encoded": t_encoded},
        )
        header.stamp("edge_send")
        header.age = header.ts["edge_send"] - frame.t_capture
        try:
            push.send_multipart([header.to_wire(), jpeg], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            out.drops.drop(
                "no_broker" if not self.heartbeat.broker_online else "backpressure",
                f"camera {cam_id}: the broker is not taking frames",
            )
            return True
        except zmq.ZMQError as exc:  # anything but a closed socket is counted for the camera, logged once
            return not count_error(out.drops, exc, f"camera {cam_id}: sending a frame")
        out.sent.add()
        out.bytes_sent.add(len(jpeg))
        return True
