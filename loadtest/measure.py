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

from anjeon.protocol import client
from anjeon.protocol.endpoints import BrokerAddress
from anjeon.protocol.stats import DropCounter

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
    def __init__(self, broker: BrokerAddress, ctx: zmq.Context[Any] | None = None) -> None:
        self.broker = broker
        self.data = Collected()
        self.drops = DropCounter(log)  # by reason; data.stale and data.malformed sum them up
        self._ctx = ctx or zmq.Context.instance()
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
        # newest_only: the protocol's one freshness rule per camera; what it refuses counts as stale.
        sub: client.Subscriber[client.Result | client.Status] = client.Subscriber(
            self.broker,
            [client.RESULTS, client.STATUS],
            newest_only=True,
            rcvhwm=100_000,
            ctx=self._ctx,
            drops=self.drops,
        )
        self._ready.set()
        next_count = 0.0
        with sub:
            while not self._stop.is_set() and not sub.closed:
                msg = sub.recv(0.1)  # one at a time: each result is timed when it arrives
                if msg is not None:
                    self._handle(msg)
                if time.monotonic() >= next_count:  # the drop totals, ten times a second
                    self._count()
                    next_count = time.monotonic() + 0.1
            self._count()

    def _count(self) -> None:
        drops = self.drops.snapshot()
        self.data.stale = drops.get("stale", 0) + drops.get("implausible", 0)
        self.data.malformed = sum(drops.values()) - self.data.stale

    def _handle(self, msg: client.Result | client.Status) -> None:
        now_wall, now = time.time(), time.monotonic()
        if isinstance(msg, client.Status):
            self.data.statuses.append((now, msg.snapshot))
            return
        frame = msg.frame
        ts = frame.ts
        stages = {}
        for name, (a, b) in STAGES.items():
            end = ts.get(b) if b else now_wall
            if a in ts and end is not None:
                stages[name] = (end - ts[a]) * 1000.0
        self.data.rows.append(
            Row(now, frame.camera, msg.worker, (now_wall - frame.t_capture) * 1000.0, stages)
        )
