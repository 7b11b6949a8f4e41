"""Prometheus metrics for every anjeon process (`--metrics-port`, GET /metrics; docs/metrics.md).

Most figures already exist in each role's own counters (DropCounter, RateMeter,
the broker's flows and registry, the alert sinks). Rather than updating a second
set of counters on the hot path, a Collector per role reads those objects when
Prometheus scrapes, so a process that nobody scrapes pays nothing and the
numbers can never disagree with the status snapshot. Only what has no counter
yet (latency and batch histograms, events per rule) is recorded as it happens,
through the ``observe_*`` hooks, which do nothing unless metrics were started.

Label sets are bounded on purpose: camera ids come from the network, so only the
first MAX_CAMERAS distinct cameras get their own label and the rest are summed
under "other"; drop reasons and peers are capped the same way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger("anjeon.metrics")

MAX_CAMERAS = int(os.environ.get("ANJEON_METRICS_MAX_CAMERAS", "64"))
MAX_PEERS = 128
MAX_REASONS = 48
OTHER = "other"
Labels = tuple[str, ...]  # one value per label name of a metric
K = TypeVar("K")
V = TypeVar("V")

# Stage stamps in the order a frame passes them (wire.FrameHeader.ts); a latency per
# consecutive pair present. Unknown stamps are ignored, so a peer cannot invent labels.
STAGES = (
    "capture",
    "encoded",
    "edge_send",
    "broker_in",
    "broker_out",
    "worker_in",
    "decoded",
    "inferred",
    "published",
)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
INFER_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)

# Drops recorded without a camera that are losses of our own making, not rejected input.
LOSS_REASONS = frozenset(
    {
        "alert_failed",
        "alert_queue_full",
        "event_backpressure",
        "publish_backpressure",
        "model_error",
        "no_broker",
        "backpressure",
        "store_failed",
    }
)
# Camera states an edge reports (edge/capture.py); anything else is counted as "other".
CAMERA_STATES = ("connecting", "streaming", "reconnecting", "error", "ended")


class LabelCap:
    """Hands out at most ``limit`` distinct label values; later ones become "other".

    First come, first served: a value keeps its label for the life of the process,
    so a series never switches name (which would break rate()).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: Any) -> str:
        text = str(value)
        if text in self._seen:
            return text
        with self._lock:
            if len(self._seen) < self.limit and text != OTHER:
                self._seen.add(text)
                return text
        return OTHER


class Totals:
    """Monotonic totals from snapshots of counters that may reset or vanish.

    The broker forgets a camera after ten silent minutes and a restarted sink
    starts from 0: summing raw values would make a counter go down. Adding only
    the increase since the previous scrape keeps every exported total monotonic.
    """

    def __init__(self) -> None:
        self._last: dict[Any, float] = {}
        self._totals: dict[tuple[str, ...], float] = defaultdict(float)
        self._lock = threading.Lock()

    def update(self, snapshot: Mapping[Any, float], labels: Callable[[Any], Labels]) -> dict[Labels, float]:
        with self._lock:
            for key, value in snapshot.items():
                prev = self._last.get(key, 0.0)
                # Lower than last time: the source restarted from 0, so all of it is new.
                self._totals[labels(key)] += value - prev if value >= prev else max(0.0, value)
            self._last = dict(snapshot)
            return dict(self._totals)


def _copy(d: dict[K, V]) -> dict[K, V]:
    """A copy of a dict another thread may be changing (retried: a resize mid-copy raises)."""
    for _ in range(5):
        try:
            return dict(d)
        except RuntimeError:
            continue
    return {}


class Family:
    """Builds one metric family from labelled values (a thin, typed wrapper over prometheus_client's)."""

    def __init__(self, kind: str, name: str, doc: str, labels: Iterable[str] = ()) -> None:
        cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        self.metric = cls(name, doc, labels=list(labels))

    def add(self, labels: Iterable[str], value: float) -> Family:
        self.metric.add_metric(list(labels), float(value))
        return self

    def add_all(self, values: Mapping[Labels, float]) -> Metric:
        for labels, value in sorted(values.items()):
            self.add(labels, value)
        return self.metric


def counter(name: str, doc: str, labels: Iterable[str], values: Mapping[Labels, float]) -> Metric:
    return Family("counter", name, doc, labels).add_all(values)


def gauge(name: str, doc: str, labels: Iterable[str], values: Mapping[Labels, float]) -> Metric:
    return Family("gauge", name, doc, labels).add_all(values)


class RoleCollector(Collector):
    """Base for the per-role collectors: a failing read is logged once and skipped, never fatal."""

    role = ""

    def __init__(self, source: Any = None) -> None:
        self.source = source  # the role's service object, whose counters are read at scrape time
        self.cameras = LabelCap(MAX_CAMERAS)
        self.reasons = LabelCap(MAX_REASONS)
        self._totals: dict[str, Totals] = defaultdict(Totals)
        self._warned = False

    def totals(
        self, name: str, snapshot: Mapping[Any, float], labels: Callable[[Any], Labels]
    ) -> dict[Labels, float]:
        return self._totals[name].update(snapshot, labels)

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self.metrics()
        except Exception:  # a scrape must never take the process down
            if not self._warned:
                self._warned = True
                log.exception("collecting %s metrics failed (logged once)", self.role)

    def metrics(self) -> Iterator[Metric]:
        raise NotImplementedError

    # -- shared shapes ---------------------------------------------------------------
    def drops(self, per_camera: dict[str, dict[str, int]], other: dict[str, int]) -> Iterator[Metric]:
        """Per-camera drops as frames dropped; drops without a camera as rejected input or other losses."""
        per_cam = {(cam, reason): n for cam, reasons in per_camera.items() for reason, n in reasons.items()}
        yield counter(
            "anjeon_frames_dropped_total",
            "Frames dropped, by stage (process role), camera and reason.",
            ("stage", "camera", "reason"),
            self.totals(
                "frames_dropped", per_cam, lambda k: (self.role, self.cameras(k[0]), self.reasons(k[1]))
            ),
        )
        rejected = {r: n for r, n in other.items() if r not in LOSS_REASONS}
        lost = {r: n for r, n in other.items() if r in LOSS_REASONS}
        yield counter(
            "anjeon_input_rejected_total",
            "Messages refused as bad input (malformed, bad version, "
            "oversized, not JPEG...), by stage and reason.",
            ("stage", "reason"),
            self.totals("rejected", rejected, lambda r: (self.role, self.reasons(r))),
        )
        yield counter(
            "anjeon_dropped_total",
            "Other losses not tied to a camera (alert or event backpressure, "
            "model errors, no broker), by stage and reason.",
            ("stage", "reason"),
            self.totals("lost", lost, lambda r: (self.role, self.reasons(r))),
        )

    def queues(self, lengths: Mapping[str, tuple[float, float]]) -> Iterator[Metric]:
        """Every bounded buffer this process can see: its length now and its bound."""
        yield gauge(
            "anjeon_queue_length",
            "Items held now in a bounded buffer or queue.",
            ("stage", "queue"),
            {(self.role, q): n for q, (n, _cap) in lengths.items()},
        )
        yield gauge(
            "anjeon_queue_capacity",
            "The bound of that buffer or queue.",
            ("stage", "queue"),
            {(self.role, q): cap for q, (_n, cap) in lengths.items()},
        )


class HeartbeatCollector(RoleCollector):
    """Every process's own view of the broker: connected or not, reconnects, beats sent."""

    def __init__(self, role: str, heartbeat: Any) -> None:
        super().__init__()
        self.role, self.heartbeat = role, heartbeat

    def metrics(self) -> Iterator[Metric]:
        hb = self.heartbeat
        yield gauge(
            "anjeon_broker_connected",
            "1 while the broker answers this process's heartbeats.",
            ("stage",),
            {(self.role,): 1.0 if hb.broker_online else 0.0},
        )
        yield counter(
            "anjeon_broker_reconnects_total",
            "Times this process got the broker back after losing it.",
            ("stage",),
            {(self.role,): getattr(hb, "reconnects", 0)},
        )
        yield counter(
            "anjeon_heartbeats_sent_total",
            "Heartbeats this process sent.",
            ("stage",),
            {(self.role,): getattr(hb, "beats_sent", 0)},
        )
        yield gauge(
            "anjeon_process_threads",
            "Threads of this process.",
            ("stage",),
            {(self.role,): threading.active_count()},
        )


class BrokerCollector(RoleCollector):
    role = "broker"

    def __init__(self, broker: Any) -> None:
        super().__init__()
        self.broker = broker
        self.peers = LabelCap(MAX_PEERS)

    def metrics(self) -> Iterator[Metric]:
        b = self.broker
        state = b.state  # broker/state.py: cameras, scheduler and registry in one place
        flows = _copy(state.cameras.flowing)
        cam = self.cameras
        yield counter(
            "anjeon_broker_frames_received_total",
            "Frames the broker accepted from edges, per camera.",
            ("camera",),
            self.totals("in", {c: f.frames_in.count for c, f in flows.items()}, lambda c: (cam(c),)),
        )
        yield counter(
            "anjeon_broker_results_total",
            "Results forwarded on the results bus, per camera.",
            ("camera",),
            self.totals("out", {c: f.results_out.count for c, f in flows.items()}, lambda c: (cam(c),)),
        )
        yield from self.drops({c: dict(f.drops) for c, f in flows.items()}, b.drops.snapshot())
        slots = _copy(state.scheduler.workers())
        peers = _copy(state.registry.peers)
        names = {p.proc: p.name for p in peers.values()}
        worker = lambda proc: self.peers(names.get(proc, proc))  # noqa: E731
        yield counter(
            "anjeon_broker_frames_dispatched_total",
            "Frames sent to workers (each on one credit), per worker.",
            ("worker",),
            self.totals("dispatched", {p: s.dispatched for p, s in slots.items()}, lambda p: (worker(p),)),
        )
        yield gauge(
            "anjeon_broker_worker_credit",
            "Credit a worker has left (frames it may still be sent).",
            ("worker",),
            {(worker(p),): s.credit for p, s in slots.items()},
        )
        yield gauge(
            "anjeon_broker_worker_capacity",
            "Credit a worker announced (its frames in flight at most).",
            ("worker",),
            {(worker(p),): s.capacity for p, s in slots.items()},
        )
        yield gauge(
            "anjeon_broker_cameras", "Cameras the broker has seen frames from recently.", (), {(): len(flows)}
        )
        yield from self.queues({"pending_frames": (state.scheduler.pending_count(), max(1, len(flows)))})
        yield from self._peers(peers)

    def _peers(self, peers: dict[str, Any]) -> Iterator[Metric]:
        now = time.monotonic()
        counts: dict[Labels, float] = defaultdict(float)
        for role in ("edge", "worker", "safety", "viewer", "watch"):
            for state in ("online", "offline"):
                counts[(role, state)] = 0.0
        up: dict[Labels, float] = {}
        age: dict[Labels, float] = {}
        for p in peers.values():
            counts[(str(p.role)[:32], "online" if p.online else "offline")] += 1
            key = (str(p.role)[:32], self.peers(p.name))
            up[key] = 1.0 if p.online else 0.0
            age[key] = max(0.0, now - p.last_seen)
        yield gauge(
            "anjeon_peers",
            "Processes in the broker's registry, by role and state.",
            ("role", "state"),
            dict(counts),
        )
        yield gauge(
            "anjeon_peer_up", "1 while a peer's heartbeats arrive (3 missed beats: 0).", ("role", "peer"), up
        )
        yield gauge(
            "anjeon_peer_heartbeat_age_seconds",
            "Seconds since the peer's last heartbeat.",
            ("role", "peer"),
            age,
        )
        yield counter(
            "anjeon_peer_heartbeats_total",
            "Heartbeats received, per peer.",
            ("role", "peer"),
            self.totals(
                "beats",
                {(p.role, p.name): getattr(p, "beats", 0) for p in peers.values()},
                lambda k: (str(k[0])[:32], self.peers(k[1])),
            ),
        )


def split_drops(drops: Any) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """A DropCounter's drops by camera, and the rest (recorded without a camera), from one consistent read."""
    totals, by_camera = drops.read()
    attributed: dict[str, int] = defaultdict(int)
    for reasons in by_camera.values():
        for reason, n in reasons.items():
            attributed[reason] += n
    return by_camera, {r: n - attributed[r] for r, n in totals.items() if n > attributed[r]}


class EdgeCollector(RoleCollector):
    role = "edge"

    def metrics(self) -> Iterator[Metric]:
        cams = _copy(self.source.cameras)
        cam = self.cameras
        one = lambda c: (cam(c),)  # noqa: E731
        yield counter(
            "anjeon_edge_frames_captured_total",
            "Frames read from the camera.",
            ("camera",),
            self.totals("captured", {c: o.capture.captured for c, o in cams.items()}, one),
        )
        yield counter(
            "anjeon_edge_frames_sent_total",
            "Frames sent to the broker.",
            ("camera",),
            self.totals("sent", {c: o.sent.count for c, o in cams.items()}, one),
        )
        yield counter(
            "anjeon_edge_sent_bytes_total",
            "JPEG bytes sent to the broker.",
            ("camera",),
            self.totals("bytes", {c: o.bytes_sent.count for c, o in cams.items()}, one),
        )
        yield counter(
            "anjeon_edge_camera_reconnects_total",
            "Times the camera's stream was reopened.",
            ("camera",),
            self.totals("reconnects", {c: o.capture.reconnects for c, o in cams.items()}, one),
        )
        states: dict[Labels, float] = {}
        for c, o in cams.items():
            current, _error = o.capture.status()
            for state in CAMERA_STATES:
                states[(cam(c), state)] = 1.0 if current == state else 0.0
        yield gauge(
            "anjeon_edge_camera_state", "1 for the state the camera is in now.", ("camera", "state"), states
        )
        by_cam = {c: o.drops.snapshot() for c, o in cams.items()}
        yield from self.drops(by_cam, {})
        yield from self.queues(
            {"newest_frame": (sum(o.capture.latest() is not None for o in cams.values()), len(cams))}
        )


class WorkerCollector(RoleCollector):
    role = "worker"

    def metrics(self) -> Iterator[Metric]:
        w = self.source
        yield counter(
            "anjeon_worker_frames_total", "Frames inferred and published.", (), {(): w.stats.processed.count}
        )
        yield counter(
            "anjeon_worker_batches_total", "Batches run through the model.", (), {(): w.stats.batches}
        )
        yield gauge(
            "anjeon_worker_credit",
            "Frames this worker lets the broker have in flight to it (its credit).",
            (),
            {(): w.config.capacity},
        )
        yield gauge("anjeon_worker_max_batch", "Largest micro-batch (--batch).", (), {(): w.config.batch})
        yield gauge(
            "anjeon_worker_info",
            "Model and device of this worker (value 1).",
            ("model", "device"),
            {(str(w.detector.name)[:64], str(w.detector.device)[:32]): 1.0},
        )
        yield from self.drops(*split_drops(w.drops))


class SafetyCollector(RoleCollector):
    role = "safety"

    def __init__(self, service: Any) -> None:
        super().__init__()
        self.service = service
        # Every configured rule's series exist from the start at 0, so rate() and alerts work before the first event.
        for cam in _copy(service.cameras).values():
            for spec in getattr(cam.engine.rules, "rules", ()):
                for transition in ("start", "update", "end"):
                    EVENTS.labels(_rules(spec.name), transition)

    def metrics(self) -> Iterator[Metric]:
        s = self.service
        yield counter(
            "anjeon_safety_results_total", "Results evaluated by the rules.", (), {(): s.results.count}
        )
        cams = _copy(s.cameras)
        yield gauge(
            "anjeon_safety_open_events",
            "Events open now.",
            (),
            {(): sum(len(c.engine.open_events()) for c in cams.values())},
        )
        sinks = list(getattr(s.alerts, "sinks", []))
        label = [f"{getattr(k.spec, 'type', 'sink')}-{i + 1}" for i, k in enumerate(sinks)]
        yield counter(
            "anjeon_alerts_sent_total",
            "Alerts delivered, per sink (TYPE-N in config order).",
            ("sink",),
            {(label[i],): k.sent for i, k in enumerate(sinks)},
        )
        yield counter(
            "anjeon_alerts_failed_total",
            "Alerts given up after all retries, per sink.",
            ("sink",),
            {(label[i],): k.failed for i, k in enumerate(sinks)},
        )
        retention = getattr(s, "retention", None)
        storage = retention.report() if retention is not None else {}
        yield counter(
            "anjeon_safety_store_write_errors_total",
            "Writes of event rows, snapshots or clips that failed (a full disk); rules and alerts go on.",
            (),
            {(): int(storage.get("write_errors", 0))},
        )
        queues = {f"alerts_{label[i]}": (_qsize(k), _qmax(k)) for i, k in enumerate(sinks)}
        queues["reorder"] = (
            sum(len(c.reorder) for c in cams.values()),
            # safety/reorder.py releases once more than max_behind results wait: at most max_behind + 1 held
            sum(c.reorder.max_behind + 1 for c in cams.values()),
        )
        yield from self.queues(queues)
        yield from self.drops(*split_drops(s.drops))


def _qsize(sink: Any) -> int:
    q = getattr(sink, "_queue", None)
    return q.qsize() if q is not None else 0


def _qmax(sink: Any) -> int:
    q = getattr(sink, "_queue", None)
    return q.maxsize if q is not None else 0


class ViewerCollector(RoleCollector):
    role = "viewer"

    def __init__(self, state: Any, hub: Any, bus: Any) -> None:
        super().__init__()
        self.state, self.hub, self.bus = state, hub, bus

    def metrics(self) -> Iterator[Metric]:
        stats = self.hub.stats()
        yield counter(
            "anjeon_viewer_results_total",
            "Results (pictures) the console took in.",
            (),
            {(): self.bus.stats.results.count},
        )
        yield gauge(
            "anjeon_viewer_clients",
            "Browsers connected to the live WebSocket.",
            (),
            {(): stats.get("clients", 0)},
        )
        yield counter(
            "anjeon_viewer_frames_sent_total",
            "Frames sent to browsers (all clients).",
            (),
            self.totals("sent", {"all": stats.get("frames_sent", 0)}, lambda _k: ()),
        )
        yield counter(
            "anjeon_viewer_frames_superseded_total",
            "Frames a slow browser never got because a newer one was ready first.",
            (),
            self.totals("superseded", {"all": stats.get("superseded", 0)}, lambda _k: ()),
        )
        feeds = _copy(self.state.feeds)
        clients = list(getattr(self.hub, "clients", ()))
        yield from self.queues(
            {
                "camera_frames": (sum(f.frame is not None for f in feeds.values()), len(feeds)),
                "client_inflight": (sum(len(c.inflight) for c in clients), len(feeds) * len(clients)),
            }
        )
        yield from self.drops(*split_drops(self.bus.stats.drops))


# -- hooks for what has no counter of its own -------------------------------------------
_enabled = False
_stage_cap = LabelCap(len(STAGES))
_hook_cameras = LabelCap(MAX_CAMERAS)
_rules = LabelCap(MAX_REASONS)

LATENCY = Histogram(
    "anjeon_latency_seconds",
    "Capture to this process: at publish for a worker, at arrival "
    "for safety and the console (wall clocks across hosts: needs NTP).",
    ["stage", "camera"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
STAGE_LATENCY = Histogram(
    "anjeon_stage_latency_seconds",
    "Time between two consecutive stage stamps of a frame (FROM_to_TO), seen by this process.",
    ["stage", "step"],
    buckets=STAGE_BUCKETS,
    registry=None,
)
BATCH_SIZE = Histogram(
    "anjeon_worker_batch_size", "Frames per model batch.", buckets=BATCH_BUCKETS, registry=None
)
INFERENCE = Histogram(
    "anjeon_worker_inference_seconds",
    "Model time per batch; its rate() is the busy fraction of the worker.",
    buckets=INFER_BUCKETS,
    registry=None,
)
EVENTS = Counter(
    "anjeon_safety_events_total",
    "Event transitions, per rule and transition (start, update, end).",
    ["rule", "transition"],
    registry=None,
)
_role = ""
# The recorded metrics each role has (the others would only export empty series).
HOOKED = {
    "worker": (LATENCY, STAGE_LATENCY, BATCH_SIZE, INFERENCE),
    "safety": (LATENCY, STAGE_LATENCY, EVENTS),
    "viewer": (LATENCY,),
}


def observe_latency(
    camera: str, t_capture: float, ts: dict[str, float] | None = None, now: float | None = None
) -> None:
    """One result seen by this process: capture-to-now, and each stage step that its stamps allow."""
    if not _enabled:
        return
    now = time.time() if now is None else now
    LATENCY.labels(_role, _hook_cameras(camera)).observe(max(0.0, now - t_capture))
    if not ts:
        return
    prev = None
    for stage in STAGES:
        t = ts.get(stage)
        if t is None:
            continue
        if prev is not None:
            STAGE_LATENCY.labels(_role, f"{prev[0]}_to_{stage}").observe(max(0.0, t - prev[1]))
        prev = (stage, t)


def observe_batch(size: int, seconds: float) -> None:
    if _enabled:
        BATCH_SIZE.observe(size)
        INFERENCE.observe(seconds)


def count_event(rule: str, transition: str) -> None:
    if _enabled:
        EVENTS.labels(_rules(rule), transition if transition in ("start", "update", "end") else OTHER).inc()


# -- the endpoint -----------------------------------------------------------------------
class MetricsError(RuntimeError):
    """The metrics port cannot be served; the message is one sentence for the user."""


def start_metrics(port: int, host: str, role: str, *collectors: Collector) -> CollectorRegistry | None:
    """Serve GET /metrics for this process on host:port (0: metrics off, returns None)."""
    global _enabled, _role
    if not port:
        return None
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_resident_memory_bytes, process_open_fds, CPU seconds
    for metric in HOOKED.get(role, ()):
        registry.register(metric)
    for collector in collectors:
        registry.register(collector)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); choose another --metrics-port"
        ) from None
    _role, _enabled = role, True
    log.info("metrics on http://%s:%d/metrics", host, port)
    return registry
