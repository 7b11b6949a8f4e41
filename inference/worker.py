"""The worker process: take frames on credit, drop stale ones, batch, detect, publish.

Sockets:
  DEALER -> broker frames-out: [ready] once and whenever the broker forgets us,
            [credit] per finished frame; receives [frame header, jpeg].
  PUB    -> broker results-in: res/CAM/ (detections), img/CAM/ (detections + the
            JPEG as received; free unless someone subscribes), ann/CAM/ (--render).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import zmq

from anjeon.protocol import imaging, messages, metrics, security, wire
from anjeon.protocol.annotate import draw
from anjeon.protocol.endpoints import FRAMES_OUT, RESULTS_IN, BrokerAddress
from anjeon.protocol.heartbeat import HEARTBEAT_INTERVAL, HeartbeatClient, default_name
from anjeon.protocol.sockets import configure
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
    broker: BrokerAddress
    model: str = "person"
    device: str = "auto"
    batch: int = 1  # the CLI resolves --batch auto to the device's measured default (inference/batching.py)
    batch_wait: float = 0.0  # seconds to wait for a batch to fill; 0: never wait (batch only from backlog)
    burst_gap: float = 0.002  # seconds: the rest of a dispatch burst (see _receive) arrives within this
    credit: int = 0  # 0: the batch size
    gpu_decode: bool = False  # decode JPEGs on the GPU (torchvision/nvJPEG), CPU fallback
    max_age: float = 1.0
    threads: int = 1  # torch threads (the CLI defaults it to the cores this process may use)
    render: bool = False
    name: str = ""
    max_megapixels: float | None = None  # None: ANJEON_MAX_MEGAPIXELS or 40 MP (protocol/imaging.py)

    @property
    def capacity(self) -> int:
        return self.credit or self.batch


@dataclass
class Job:
    header: wire.FrameHeader
    jpeg: zmq.Frame
    received: float  # worker monotonic clock
    image: Any = None  # np.ndarray (CPU decode) or a torch tensor on the GPU


@dataclass
class WorkerStats:
    processed: RateMeter = field(default_factory=RateMeter)
    batches: int = 0
    sizes: BatchTally = field(default_factory=BatchTally)
    infer_ms: float = 0.0  # exponential moving average per batch


class Worker:
    def __init__(self, config: WorkerConfig, detector: Detector, ctx: zmq.Context | None = None) -> None:
        self.config, self.detector = config, detector
        self.proc = wire.new_id()
        self._ctx = ctx or zmq.Context.instance()
        self.drops = DropCounter(log)
        self._pixel_cap = imaging.max_pixels(config.max_megapixels)
        self.decoder = JpegDecoder(detector.device, config.gpu_decode, self._pixel_cap)
        self.stats = WorkerStats()
        self.name = config.name or default_name("worker")
        self.heartbeat = HeartbeatClient(
            self._ctx, config.broker, self.proc, "worker", self.name, self._info, log
        )

    def _info(self) -> dict[str, Any]:
        s = self.stats
        return {
            "model": self.detector.name,
            "device": self.detector.device,
            "batch": self.config.batch,
            "threads": self.config.threads,
            "fps": round(s.processed.sample(), 2),
            "processed": s.processed.count,
            "batch_mean": round(s.processed.count / s.batches, 2) if s.batches else 0.0,
            "batch_sizes": s.sizes.snapshot(),
            "batch_wait_ms": round(1000 * self.config.batch_wait, 1),
            "decode": self.decoder.backend,
            "infer_ms": round(s.infer_ms, 1),
            "drops": self.drops.snapshot(),
            "camera_drops": self.drops.by_camera(),
        }

    def serve(self, stop: threading.Event) -> None:
        cfg = self.config
        dealer = configure(self._ctx.socket(zmq.DEALER), immediate=True, rcvhwm=max(4, 2 * cfg.capacity))
        security.connect(dealer, cfg.broker.endpoint(FRAMES_OUT))
        pub = configure(self._ctx.socket(zmq.PUB), sndhwm=1000)
        security.connect(pub, cfg.broker.endpoint(RESULTS_IN))
        self.heartbeat.start()
        log.info(
            "worker %s: model %s on %s, batch %d, credit %d, max age %.2f s",
            self.proc,
            self.detector.name,
            self.detector.device,
            cfg.batch,
            cfg.capacity,
            cfg.max_age,
        )
        announced_to, last_activity = None, 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                broker_run = self.heartbeat.broker_run
                if broker_run != announced_to or now - last_activity > IDLE_ANNOUNCE:
                    self._announce(dealer)
                    announced_to, last_activity = broker_run, now
                if not dealer.poll(200, zmq.POLLIN):
                    continue
                jobs = self._receive(dealer)
                if jobs is None:  # the broker does not know us
                    announced_to = None
                    continue
                self._process(jobs, pub)
                self._return_credit(dealer, [j.header.grant for j in jobs])
                last_activity = time.monotonic()
        finally:
            self.heartbeat.stop()
            dealer.close(0)
            pub.close(0)
            log.info("worker stopped after %d frames", self.stats.processed.count)

    def _announce(self, dealer: zmq.Socket) -> None:
        try:
            dealer.send(wire.ready(self.proc, self.config.capacity), zmq.NOBLOCK)
        except zmq.Again:
            pass  # no broker connected; the next announce will try again

    def _receive(self, dealer: zmq.Socket) -> list[Job] | None:
        """Take what is waiting, up to the batch size.

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
        """
        jobs: list[Job] = []
        deadline = time.monotonic() + self.config.batch_wait
        while len(jobs) < self.config.batch:
            try:
                frames = dealer.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                if not jobs:
                    break
                wait = max(deadline - time.monotonic(), self.config.burst_gap)
                if dealer.poll(wait * 1000, zmq.POLLIN):
                    continue
                break
            received = time.monotonic()
            try:
                if len(frames) == 1 and wire.unpack(frames[0].bytes, wire.UNKNOWN):
                    return None
                header = messages.decode_dispatched(frames)  # [header, jpeg, trailer] (docs/protocol.md)
            except wire.ProtocolError as exc:
                self.drops.drop(exc.reason, str(exc))
                continue
            header.stamp("worker_in")
            jobs.append(Job(header, frames[1], received))
        return jobs

    def _process(self, jobs: list[Job], pub: zmq.Socket) -> None:
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
            self._publish(pub, job, dets)
        s.processed.add(len(fresh))

    def _decode_fresh(self, jobs: list[Job]) -> list[Job]:
        """Drop frames that are too old, decode the rest (size guard first); bad ones are counted."""
        young = []
        for job in jobs:
            h = job.header
            # Age on single clocks only: the stages' own waits plus the wait here.
            age = h.age + (time.monotonic() - job.received)
            if age > self.config.max_age:
                self.drops.drop(
                    "too_old",
                    f"camera {h.camera}: {age:.2f} s > --max-age {self.config.max_age}",
                    camera=h.camera,
                )
                continue
            h.age = age
            young.append(job)
        fresh = []
        for job, image in zip(young, self.decoder.decode([job.jpeg.buffer for job in young])):
            h = job.header
            if isinstance(image, wire.ProtocolError):
                self.drops.drop(image.reason, f"camera {h.camera} seq {h.seq}: {image}", camera=h.camera)
                continue
            h.stamp("decoded")
            job.image = image
            fresh.append(job)
        return fresh

    def _publish(self, pub: zmq.Socket, job: Job, dets: list[wire.Detection]) -> None:
        h = job.header
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
            self.drops.drop("publish_backpressure", "the results bus is not taking results", camera=h.camera)

    def _bgr(self, job: Job) -> np.ndarray:
        """The frame as a BGR array for drawing (--render), whichever decoder made it."""
        if isinstance(job.image, np.ndarray):
            return job.image
        return job.image.permute(1, 2, 0).flip(-1).contiguous().cpu().numpy()

    def _return_credit(self, dealer: zmq.Socket, grants: list[str]) -> None:
        for grant, n in Counter(grants).items():
            try:
                dealer.send(wire.credit(self.proc, grant, n), zmq.NOBLOCK)
            except zmq.Again:
                pass  # broker gone; we will announce to the next one
