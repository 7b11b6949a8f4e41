"""Helpers for the evidence tests (clips, retention, reports): a scripted camera on the real results bus,
stored events made to measure."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import zmq

from anjeon.protocol import wire
from anjeon.safety.incident import Event


def ended_event(
    started: float,
    duration: float,
    camera: str = "gate",
    kind: str = "intrusion",
    zone: str = "pit",
    since: float | None = None,
    updated: float | None = None,
    **more: Any,
) -> Event:
    """An ended event of rule ``KIND-ZONE`` (a fresh id; since: a second before the start; updated: its end)."""
    return Event(
        uuid.uuid4().hex[:16],
        camera,
        f"{kind}-{zone}",
        kind,
        zone,
        "",
        "warning",
        started,
        started - 1 if since is None else since,
        started + duration if updated is None else updated,
        ended=started + duration,
        **more,
    )


def scripted_camera(
    system,
    camera: str,
    jpeg: bytes,
    stop: threading.Event,
    inside: Callable[[float], bool],
    limit: int = 100_000,
) -> None:
    """Publish img/CAM/ results at 10/s on a real JPEG: one person box, in the zone while ``inside(seconds)``."""
    pub = system.ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(f"tcp://127.0.0.1:{system.base + 2}")
    t0, seq = time.time(), 0
    try:
        while not stop.is_set() and seq < limit:
            now = time.time()
            x = 300 if inside(now - t0) else 20
            header = wire.FrameHeader(
                camera=camera, run="run1", seq=seq, t_capture=now, width=810, height=1080, size=len(jpeg)
            )
            result = wire.Result(
                header, "test", "script", [wire.Detection("person", 0.9, [x, 200, x + 60, 400], "Normal")]
            )
            pub.send_multipart([wire.topic(wire.IMAGE_PREFIX, camera), result.to_wire(), jpeg])
            seq += 1
            stop.wait(0.1)
    finally:
        pub.close(0)
