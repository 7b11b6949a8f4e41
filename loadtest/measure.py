"""The measuring subscriber: every result's latency and per-stage times, plus the broker's status.

Runs in its own thread with its own SUB socket. Results are kept as plain
rows (a few floats each), so a minute at thousands of results per second
stays small; the report slices them by arrival time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from anjeon.protocol import messages, security, wire
from anjeon.protocol.endpoints import RESULTS_OUT, BrokerAddress
from anjeon.protocol.sockets import configure
from anjeon.viewer.freshness import FreshnessGate

log = logging.getLogger("anjeon.loadtest")

# Per-stage durations, from consecutive timestamps in a result's `ts` (ms).
STAGES = {
    "transport_in": ("edge_send", "broker_in"),  # edge -> broker
    "broker_wait": ("broker_in", "broker_out"),  # waiting for a worker's credit
    "transport_out": ("broker_out", "worker_in"),  # broker -> worker (and its queue)
    "decode": ("worker_in", "decoded"),
    "inference": ("decoded", "inferred"),
    "publish": ("inferred", None),  # worker -> bus -> this subscriber
}


@dataclass
class Row:
    received: float  # monotonic
    camera: str
    worker: str
    latency_ms: float
    stages: dict[str, float]


@dataclass
class Collected:
    rows: list[Row] = field(default_factory=list)
    stale: int = 0
    malformed: int = 0
    statuses: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (monotonic, snapshot)


class Collector:
    def __init__(self, broker: BrokerAddress, ctx: zmq.Context | None = None) -> None:
        self.broker = broker
        self.data = Collected()
        self._ctx = ctx or zmq.Context.instance()
        self._gate = FreshnessGate()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Collector:
        self._thread = threading.Thread(target=self._run, name="loadtest-collect", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def latest_status(self) -> dict[str, Any]:
        return self.data.statuses[-1][1] if self.data.statuses else {}

    def _run(self) -> None:
        sub = configure(self._ctx.socket(zmq.SUB), rcvhwm=100_000)
        security.connect(sub, self.broker.endpoint(RESULTS_OUT))
        sub.setsockopt(zmq.SUBSCRIBE, wire.RESULT_PREFIX.encode())
        sub.setsockopt(zmq.SUBSCRIBE, wire.STATUS_TOPIC)
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sub.poll(100, zmq.POLLIN):
                    continue
                for _ in range(10_000):
                    try:
                        frames = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(frames)
        finally:
            sub.close(0)

    def _handle(self, frames: list[bytes]) -> None:
        now_wall, now = time.time(), time.monotonic()
        try:
            if frames[0] == wire.STATUS_TOPIC:
                self.data.statuses.append((now, messages.decode_status(frames[1])))
                return
            header = wire.unpack(frames[1], wire.RESULT)
            frame = wire.FrameHeader.from_map(header)
        except (wire.ProtocolError, IndexError):
            self.data.malformed += 1
            return
        if not self._gate.admit(frame):
            self.data.stale += 1
            return
        ts = frame.ts
        stages = {}
        for name, (a, b) in STAGES.items():
            end = ts.get(b) if b else now_wall
            if a in ts and end is not None:
                stages[name] = (end - ts[a]) * 1000.0
        self.data.rows.append(
            Row(
                now,
                frame.camera,
                str(header.get("worker", "")),
                (now_wall - frame.t_capture) * 1000.0,
                stages,
            )
        )
