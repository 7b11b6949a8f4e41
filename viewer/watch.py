"""`anjeon watch`: a live terminal table of cameras and workers, JSON lines, or recorded JPEGs.

It is a registering subscriber: it SUBs to results-out (results and the
broker's status snapshots) and heartbeats like every other process, so the
broker lists it and its drops.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import zmq

from anjeon.protocol import imaging, messages, security, wire
from anjeon.protocol.annotate import draw
from anjeon.protocol.endpoints import RESULTS_OUT, BrokerAddress
from anjeon.protocol.heartbeat import HeartbeatClient, default_name
from anjeon.protocol.sockets import configure
from anjeon.protocol.stats import DropCounter, RateMeter

from .freshness import FreshnessGate
from .table import TableOptions, render_table

log = logging.getLogger("anjeon.watch")

LATENCY_WINDOW = 200  # results per camera behind the p50/p95 figures


@dataclass
class WatchConfig:
    broker: BrokerAddress
    cameras: tuple[str, ...] = ()  # empty: all
    json_lines: bool = False
    record: Path | None = None
    record_limit: int = 10000
    duration: float = 0.0  # 0: until stopped
    count: int = 0  # 0: unlimited results
    refresh: float = 1.0
    name: str = ""
    table: TableOptions = field(default_factory=TableOptions)  # sort, filter, row limit of the table


@dataclass
class CameraView:
    """What this subscriber saw of one camera."""

    results: RateMeter = field(default_factory=RateMeter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    classes: Counter[str] = field(default_factory=Counter)  # in the newest result
    last_seen: float = 0.0


class Watch:
    def __init__(self, config: WatchConfig, out: TextIO = sys.stdout, ctx: zmq.Context | None = None) -> None:
        self.config, self._out = config, out
        self._ctx = ctx or zmq.Context.instance()
        self.proc = wire.new_id()
        self.drops = DropCounter(log)
        self.gate = FreshnessGate()
        self.views: dict[str, CameraView] = {}
        self.status: dict[str, Any] = {}
        self.recorded = 0
        self.received = 0
        self.heartbeat = HeartbeatClient(
            self._ctx,
            config.broker,
            self.proc,
            "watch",
            config.name or default_name("watch"),
            lambda: {"drops": self.drops.snapshot(), "results": self.received},
            log,
        )

    def _subscribe(self, sub: zmq.Socket) -> None:
        prefixes = [wire.IMAGE_PREFIX if self.config.record else wire.RESULT_PREFIX]
        if self.config.cameras:
            for prefix in prefixes:
                for cam in self.config.cameras:
                    sub.setsockopt(zmq.SUBSCRIBE, wire.topic(prefix, cam))
        else:
            for prefix in prefixes:
                sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        sub.setsockopt(zmq.SUBSCRIBE, wire.STATUS_TOPIC)

    def serve(self, stop: threading.Event) -> None:
        cfg = self.config
        sub = configure(self._ctx.socket(zmq.SUB), rcvhwm=1000)
        security.connect(sub, cfg.broker.endpoint(RESULTS_OUT))
        self._subscribe(sub)
        self.heartbeat.start()
        started = time.monotonic()
        next_draw = started + 1.0  # give the first status snapshot a chance to arrive
        try:
            while not stop.is_set():
                if cfg.duration and time.monotonic() - started >= cfg.duration:
                    break
                if cfg.count and self.received >= cfg.count:
                    break
                if sub.poll(100, zmq.POLLIN):
                    for _ in range(1000):  # drain what is there, then redraw
                        try:
                            frames = sub.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._handle(frames)
                        if cfg.count and self.received >= cfg.count:
                            break
                if not cfg.json_lines and time.monotonic() >= next_draw:
                    self._draw()
                    next_draw = time.monotonic() + cfg.refresh
        finally:
            self.heartbeat.stop()
            sub.close(0)

    def _handle(self, frames: list[bytes]) -> None:
        topic = frames[0]
        if topic == wire.STATUS_TOPIC:
            try:
                self.status = messages.decode_status(frames[1]) if len(frames) == 2 else self.status
            except wire.ProtocolError as exc:
                self.drops.drop(exc.reason, f"status: {exc}")
            return
        try:
            if len(frames) < 2:
                raise wire.ProtocolError("malformed", f"a result with {len(frames)} part(s)")
            result = wire.Result.from_wire(frames[1])
        except wire.ProtocolError as exc:
            self.drops.drop(exc.reason, f"on topic {topic[:40]!r}: {exc}")
            return
        frame = result.frame
        if not self.gate.admit(frame):
            self.drops.drop(
                "stale", f"camera {frame.camera}: a result older than one already shown", camera=frame.camera
            )
            return
        now = time.time()
        self.received += 1
        view = self.views.setdefault(frame.camera, CameraView())
        view.results.add()
        view.latencies.append((now - frame.t_capture) * 1000.0)
        view.classes = Counter(d.cls for d in result.detections)
        view.last_seen = time.monotonic()
        if self.config.json_lines:
            self._out.write(json.dumps(result.to_json(now)) + "\n")
            self._out.flush()
        if self.config.record is not None and len(frames) == 3:
            self._record(result, frames[2])

    def _record(self, result: wire.Result, jpeg: bytes) -> None:
        if self.recorded >= self.config.record_limit:
            self.drops.drop(
                "record_limit", f"--record-limit {self.config.record_limit} reached; not saving more"
            )
            return
        try:
            image = imaging.decode_jpeg(jpeg)
        except wire.ProtocolError as exc:
            self.drops.drop(exc.reason, f"camera {result.frame.camera}: {exc}", camera=result.frame.camera)
            return
        f = result.frame
        folder = self.config.record / f.camera
        folder.mkdir(parents=True, exist_ok=True)
        caption = f"{f.camera} #{f.seq} {time.strftime('%H:%M:%S', time.localtime(f.t_capture))}"
        cv2.imwrite(str(folder / f"{f.run}-{f.seq:08d}.jpg"), draw(image, result.detections, caption))
        self.recorded += 1

    def _draw(self) -> None:
        text = render_table(
            self.config.broker,
            self.status,
            self.views,
            self.drops.by_camera(),
            self.heartbeat.broker_online,
            self.config.table,
        )
        if self._out.isatty():
            self._out.write("\x1b[H\x1b[2J" + text)
        else:
            self._out.write(text + "\n")
        self._out.flush()
