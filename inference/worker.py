"""The worker process: take frames on credit, drop stale ones, batch, detect, publish.

Sockets, per broker served (``--broker``, repeatable: a ``BrokerLink`` each):
  DEALER -> broker frames-out: [ready] once and whenever that broker forgets us,
            [credit] per finished frame; receives [frame header, jpeg, trailer].
  PUB    -> broker results-in: res/CAM/ (detections), img/CAM/ (detections + the
            JPEG as received; free unless someone subscribes), ann/CAM/ (--render).
  and a heartbeat DEALER to its control socket (protocol/heartbeat.py).

Several brokers (one per site or camera group) share one worker fairly: each
grants its own credit (the worker's full capacity, so one busy broker alone
still fills batches), a batch takes frames from the brokers in turn, and every
result and credit goes back to the broker its frame came from. A broker that is
gone costs nothing: its sends are non-blocking and its frames stop coming.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import zmq

from anjeon.protocol import imaging, messages, metrics, security, wire
from anjeon.protocol.annotate import draw
from anjeon.protocol.endpoints import FRAMES_OUT, RESULTS_IN, BrokerAddress
from anjeon.protocol.heartbeat import HEARTBEAT_INTERVAL, HeartbeatClient, default_name
from anjeon.protocol.sockets import configure, count_error
from anjeon.protocol.stats import DropCounter, RateMeter

from .batching import BatchTally
from .decode import JpegDecoder
from .models import Detector

log = logging.getLogger("anjeon.worker")

# With no frame for this long, announce full capacity again: it costs nothing and
# heals any credit the broker and we disagree about (a lost message, a restart).
IDLE_ANNOUNCE = HEARTBEAT_INTERVAL


@dataclass
class WorkerConfig:
    brokers: Sequence[BrokerAddress] = ()  # served together (one per site or camera group), at least one
    batch: int = 1  # the CLI resolves --batch auto to the device's measured default (inference/batching.py)
    batch_wait: float = 0.0  # seconds to wait for a batch to fill; 0: never wait (batch only from backlog)
    burst_gap: float = 0.002  # seconds: the rest of a dispatch burst (see _receive) arrives within this
    credit: int = 0  # frames each broker may have in flight here; 0: the batch size
    gpu_decode: bool = False  # decode JPEGs on the GPU (torchvision/nvJPEG), CPU fallback
    max_age: float = 1.0
    threads: int = 1  # torch threads (the CLI defaults it to the cores this process may use)
    render: bool = False
    name: str = ""
    max_megapixels: float | None = None  # None: ANJEON_MAX_MEGAPIXELS or 40 MP (protocol/imaging.py)

    def __post_init__(self) -> None:
        self.brokers = tuple(self.brokers)
        if not self.brokers:
            raise ValueError("a worker needs at least one broker")
        twice = sorted({str(b) for b in self.brokers if self.brokers.count(b) > 1})
        if twice:
            raise ValueError(f"broker {', '.join(twice)} is given twice")

    @property
    def capacity(self) -> int:
        return self.credit or self.batch


@dataclass
class BrokerLink:
    """One broker this worker serves: its sockets and heartbeat, what we announced, what we did for it."""

    address: BrokerAddress
    heartbeat: HeartbeatClient
    dealer: zmq.SyncSocket | None = None  # frames-out
    pub: zmq.SyncSocket | None = None  # results-in
    announced_to: str | None = None  # the broker instance (run id) we last sent ``ready`` to
    last_activity: float = 0.0  # when we last announced or finished a frame of this broker
    processed: RateMeter = field(default_factory=RateMeter)  # frames of this broker inferred and published
    camera_drops: dict[str, Counter[str]] = field(default_factory=dict)  # this broker's cameras only
    lock: threading.Lock = field(default_factory=threading.Lock)  # camera_drops: its heartbeat thread reads

    def count(self, camera: str, reason: str, n: int) -> None:
        with self.lock:
            self.camera_drops.setdefault(camera, Counter())[reason] += n

    def drops_by_camera(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {cam: dict(c) for cam, c in self.camera_drops.items()}


@dataclass
class Job:
    header: wire.FrameHeader
    jpeg: zmq.Frame
    received: float  # worker monotonic clock
    link: BrokerLink  # the broker it came from: its result and credit go back there
    image: Any = None  # np.ndarray (CPU decode) or a torch tensor on the GPU


@dataclass
class WorkerStats:
    processed: RateMeter = field(default_factory=RateMeter)
    batches: int = 0
    sizes: BatchTally = field(default_factory=BatchTally)
    infer_ms: float = 0.0  # exponential moving average per batch


class Worker:
    def __init__(self, config: WorkerConfig, detector: Detector, ctx: zmq.SyncContext | None = None) -> None:
        self.config, self.detector = config, detector
        self.proc = wire.new_id()  # the same at every broker: one process
        self._ctx = ctx or zmq.Context.instance()
        self.drops = DropCounter(log)
        self._pixel_cap = imaging.max_pixels(config.max_megapixels)
        self.decoder = JpegDecoder(detector.device, config.gpu_decode, self._pixel_cap)
        self.stats = WorkerStats()
        self.name = config.name or default_name("worker")
        self.links = [self._link(address) for address in config.brokers]
        self.heartbeat = self.links[0].heartbeat  # the first broker's (metrics: anjeon_broker_connected)
        self._turn = 0  # which broker a batch asks first (round robin)

    def _link(self, address: BrokerAddress) -> BrokerLink:
        link: BrokerLink  # the heartbeat's info reads it; beats start in serve(), long after it is bound
        beats = HeartbeatClient(
            self._ctx, address, self.proc, "worker", self.name, lambda: self._info(link), log
        )
        link = BrokerLink(address, beats)
        return link

    def _info(self, link: BrokerLink) -> dict[str, Any]:
        """The heartbeat to ``link``'s broker: this process's figures, that broker's frames and cameras."""
        s = self.stats
        info = {
            "model": self.detector.name,
            "device": self.detector.device,
            "batch": self.config.batch,
            "threads": self.config.threads,
            "fps": round(link.processed.sample(), 2),
            "processed": link.processed.count,
            "batch_mean": round(s.processed.count / s.batches, 2) if s.batches else 0.0,
            "batch_sizes": s.sizes.snapshot(),
            "batch_wait_ms": round(1000 * self.config.batch_wait, 1),
            "decode": self.decoder.backend,
            "infer_ms": round(s.infer_ms, 1),
            "drops": self.drops.snapshot(),
            "camera_drops": link.drops_by_camera(),
        }
        if len(self.links) > 1:
            info["brokers"] = len(self.links)
        return info

    def _drop(self, job: Job, reason: str, detail: str, n: int = 1) -> None:
        """Count a drop of ``job``'s camera: in this process's counter and for the broker it came from."""
        self.drops.drop(reason, detail, n=n, camera=job.header.camera)
        job.link.count(job.header.camera, reason, n)

    def serve(self, stop: threading.Event) -> None:
        cfg = self.config
        poller = zmq.Poller()
        for link in self.links:
            link.dealer = configure(
                self._ctx.socket(zmq.DEALER), immediate=True, rcvhwm=max(4, 2 * cfg.capacity)
            )
            security.connect(link.dealer, link.address.endpoint(FRAMES_OUT))
            link.pub = configure(self._ctx.socket(zmq.PUB), sndhwm=1000)
            security.connect(link.pub, link.address.endpoint(RESULTS_IN))
            poller.register(link.dealer, zmq.POLLIN)
            link.heartbeat.start()
        log.info(
            "worker %s: model %s on %s, batch %d, credit %d, max age %.2f s, broker%s %s",
            self.proc,
            self.detector.name,
            self.detector.device,
            cfg.batch,
            cfg.capacity,
            cfg.max_age,
            "s" if len(self.links) > 1 else "",
            ", ".join(str(link.address) for link in self.links),
        )
        try:
            while not stop.is_set():
                try:
                    self._turn_once(poller)
                except zmq.ZMQError as exc:
                    # The context or a socket closed: a clean exit. Anything else is counted and logged
                    # once per kind, and the loop goes on (one broker's trouble must not stop the others).
                    if count_error(self.drops, exc, "in the worker's loop"):
                        break
        finally:
            for link in self.links:
                link.heartbeat.stop()
            for link in self.links:
                for sock in (link.dealer, link.pub):
                    if sock is not None:
                        sock.close(0)
            log.info("worker stopped after %d frames", self.stats.processed.count)

    def _turn_once(self, poller: zmq.Poller) -> None:
        now = time.monotonic()
        for link in self.links:
            broker_run = link.heartbeat.broker_run
            if broker_run != link.announced_to or now - link.last_activity > IDLE_ANNOUNCE:
                self._announce(link)
                link.announced_to, link.last_activity = broker_run, now
        if not poller.poll(200):
            return
        jobs = self._receive(poller)
        self._process(jobs)
        self._return_credit(jobs)
        done = time.monotonic()
        for job in jobs:
            job.link.last_activity = done

    def _announce(self, link: BrokerLink) -> None:
        assert link.dealer is not None
        try:
            link.dealer.send(wire.ready(self.proc, self.config.capacity), zmq.NOBLOCK)
        except zmq.Again:
            pass  # that broker is not connected; the next announce will try again

    def _receive(self, poller: zmq.Poller) -> list[Job]:
        """Take what is waiting, up to the batch size, from each broker in turn.

        By default this never waits for more: at light load a batch is the one
        frame that came, so latency is that of batch 1, and batches grow only
        when frames pile up while the model runs. ``batch_wait`` (GPU workers,
        where a bigger batch is almost free) waits at most that long for more.

        One short gap is always allowed between frames: a batch's credits go
        back in one message, so under a backlog the broker answers with that
        many frames at once and they arrive some 100 µs apart. Taking only the
        first would split every batch in two (measured: sizes 1, 3, 1, 3 for a
        backlogged batch of 4); waiting ``burst_gap`` (2 ms) for the next one
        costs a light load 2 ms and keeps the burst together.

        With several brokers, one frame is taken from each in turn (the first
        asked changes every batch), so a broker with a backlog cannot crowd
        out another's frames.
        """
        jobs: list[Job] = []
        deadline = time.monotonic() + self.config.batch_wait
        n = len(self.links)
        order = [self.links[(self._turn + i) % n] for i in range(n)]
        self._turn = (self._turn + 1) % n
        open_links = list(order)
        while len(jobs) < self.config.batch:
            took = False
            for link in list(open_links):
                if len(jobs) >= self.config.batch:
                    break
                job = self._take(link)
                if job is None:
                    open_links.remove(link)  # nothing (valid) waiting there now
                elif isinstance(job, Job):
                    jobs.append(job)
                    took = True
                else:
                    took = True  # a message that was not a frame: look there again
            if took:
                continue
            if not jobs:
                break
            wait = max(deadline - time.monotonic(), self.config.burst_gap)
            if not poller.poll(int(wait * 1000)):
                break
            open_links = list(order)
        return jobs

    def _take(self, link: BrokerLink) -> Job | bool | None:
        """One message from ``link``: a Job; True for one that was not a frame; None when nothing waits."""
        assert link.dealer is not None
        try:
            frames = link.dealer.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        received = time.monotonic()
        try:
            if len(frames) == 1 and wire.unpack(frames[0].bytes, wire.UNKNOWN):
                link.announced_to = None  # that broker does not know us: announce again
                return True
            header = messages.decode_dispatched(frames)  # [header, jpeg, trailer] (docs/protocol.md)
        except wire.ProtocolError as exc:
            self.drops.drop(exc.reason, str(exc))
            return True
        header.stamp("worker_in")
        return Job(header, frames[1], received, link)

    def _process(self, jobs: list[Job]) -> None:
        fresh = self._decode_fresh(jobs)
        if not fresh:
            return
        started = time.monotonic()
        try:
            detections = self.detector.predict([job.image for job in fresh])
        except Exception as exc:  # a model failure on one batch must not kill the worker
            self.drops.drop("model_error", f"{type(exc).__name__}: {exc}", n=len(fresh))
            return
        elapsed = (time.monotonic() - started) * 1000.0
        s = self.stats
        s.infer_ms = elapsed if s.batches == 0 else 0.9 * s.infer_ms + 0.1 * elapsed
        s.batches += 1
        s.sizes.add(len(fresh))
        metrics.observe_batch(len(fresh), elapsed / 1000.0)
        inferred = time.time()
        for job, dets in zip(fresh, detections):
            job.header.ts["inferred"] = inferred
            self._publish(job, dets)
            job.link.processed.add()
        s.processed.add(len(fresh))

    def _decode_fresh(self, jobs: list[Job]) -> list[Job]:
        """Drop frames that are too old, decode the rest (size guard first); bad ones are counted."""
        young = []
        for job in jobs:
            h = job.header
            # Age on single clocks only: the stages' own waits plus the wait here.
            age = h.age + (time.monotonic() - job.received)
            if age > self.config.max_age:
                self._drop(
                    job, "too_old", f"camera {h.camera}: {age:.2f} s > --max-age {self.config.max_age}"
                )
                continue
            h.age = age
            young.append(job)
        fresh = []
        for job, image in zip(young, self.decoder.decode([job.jpeg.buffer for job in young])):
            h = job.header
            if isinstance(image, wire.ProtocolError):
                self._drop(job, image.reason, f"camera {h.camera} seq {h.seq}: {image}")
                continue
            h.stamp("decoded")
            job.image = image
            fresh.append(job)
        return fresh

    def _publish(self, job: Job, dets: list[wire.Detection]) -> None:
        """The result to the broker the frame came from."""
        h, pub = job.header, job.link.pub
        assert pub is not None
        h.stamp("published")
        metrics.observe_latency(h.camera, h.t_capture, h.ts, now=h.ts["published"])
        result = wire.Result(frame=h, worker=self.proc, model=self.detector.name, detections=dets)
        body = result.to_wire()
        try:
            pub.send_multipart([wire.topic(wire.RESULT_PREFIX, h.camera), body], zmq.NOBLOCK)
            pub.send_multipart(
                [wire.topic(wire.IMAGE_PREFIX, h.camera), body, job.jpeg], zmq.NOBLOCK, copy=False
            )
            if self.config.render:
                ok, buf = cv2.imencode(".jpg", draw(self._bgr(job), dets), [cv2.IMWRITE_JPEG_QUALITY, 80])
                if ok:
                    result.rendered = True
                    pub.send_multipart(
                        [wire.topic(wire.RENDER_PREFIX, h.camera), result.to_wire(), buf.tobytes()],
                        zmq.NOBLOCK,
                    )
        except zmq.Again:
            self._drop(
                job, "publish_backpressure", f"the results bus of {job.link.address} is not taking results"
            )

    def _bgr(self, job: Job) -> np.ndarray:
        """The frame as a BGR array for drawing (--render), whichever decoder made it."""
        if isinstance(job.image, np.ndarray):
            return job.image
        bgr: np.ndarray = job.image.permute(1, 2, 0).flip(-1).contiguous().cpu().numpy()
        return bgr

    def _return_credit(self, jobs: list[Job]) -> None:
        """One credit message per broker and grant for the frames of this batch (processed or dropped)."""
        by_link: dict[int, tuple[BrokerLink, Counter[str]]] = {}
        for job in jobs:
            by_link.setdefault(id(job.link), (job.link, Counter()))[1][job.header.grant] += 1
        for link, grants in by_link.values():
            assert link.dealer is not None
            for grant, n in grants.items():
                try:
                    link.dealer.send(wire.credit(self.proc, grant, n), zmq.NOBLOCK)
                except zmq.Again:
                    pass  # that broker is gone; we will announce to the next one
