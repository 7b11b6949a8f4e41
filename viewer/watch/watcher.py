"""`anjeon watch`: a live terminal table of cameras and workers, JSON lines, or recorded JPEGs.

It is a registering subscriber: it takes results (or pictures, to record them)
and the broker's status snapshots from results-out through the protocol's
client library (typed messages, the one freshness rule, drops counted by
reason), and heartbeats like every other process, so the broker lists it and
its drops.
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

from anjeon.protocol import client, imaging, wire
from anjeon.protocol.annotate import draw
from anjeon.protocol.client import Picture, Result, Status
from anjeon.protocol.endpoints import BrokerAddress
from anjeon.protocol.heartbeat import HeartbeatClient, default_name
from anjeon.protocol.stats import DropCounter, RateMeter

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
    def __init__(
        self, config: WatchConfig, out: TextIO = sys.stdout, ctx: zmq.Context[Any] | None = None
    ) -> None:
        self.config, self._out = config, out
        self._ctx = ctx or zmq.Context.instance()
        self.proc = wire.new_id()
        self.drops = DropCounter(log)
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

    def serve(self, stop: threading.Event) -> None:
        cfg = self.config
        sub: client.Subscriber[Result | Picture | Status] = client.Subscriber(
            cfg.broker,
            [client.PICTURES if cfg.record else client.RESULTS, client.STATUS],
            cfg.cameras,
            newest_only=True,  # the one freshness rule: never a result older than one already shown
            rcvhwm=1000,
            ctx=self._ctx,
            drops=self.drops,
        )
        self.heartbeat.start()
        started = time.monotonic()
        next_draw = started + 1.0  # give the first status snapshot a chance to arrive
        try:
            while not stop.is_set() and not sub.closed:
                if cfg.duration and time.monotonic() - started >= cfg.duration:
                    break
                if cfg.count and self.received >= cfg.count:
                    break
                for msg in sub.drain(timeout=0.1, limit=1000):  # what is there, then redraw
                    self._handle(msg)
                    if cfg.count and self.received >= cfg.count:
                        break
                if not cfg.json_lines and time.monotonic() >= next_draw:
                    self._draw()
                    next_draw = time.monotonic() + cfg.refresh
        finally:
            self.heartbeat.stop()
            sub.close()

    def _handle(self, msg: Result | Picture | Status) -> None:
        if isinstance(msg, Status):
            self.status = msg.snapshot
            return
        result = msg.result if isinstance(msg, Picture) else msg
        frame = result.frame
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
        if self.config.record is not None and isinstance(msg, Picture):
            self._record(self.config.record, msg)

    def _record(self, folder: Path, picture: Picture) -> None:
        if self.recorded >= self.config.record_limit:
            self.drops.drop(
                "record_limit", f"--record-limit {self.config.record_limit} reached; not saving more"
            )
            return
        f = picture.frame
        try:
            image = imaging.decode_jpeg(picture.jpeg)
        except wire.ProtocolError as exc:
            self.drops.drop(exc.reason, f"camera {f.camera}: {exc}", camera=f.camera)
            return
        folder = folder / f.camera
        folder.mkdir(parents=True, exist_ok=True)
        caption = f"{f.camera} #{f.seq} {time.strftime('%H:%M:%S', time.localtime(f.t_capture))}"
        cv2.imwrite(str(folder / f"{f.run}-{f.seq:08d}.jpg"), draw(image, picture.result.detections, caption))
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
