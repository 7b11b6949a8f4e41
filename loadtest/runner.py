"""Runs a load test: optionally spawns its own broker and workers, offers load, measures, reports."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import zmq

from anjeon.protocol.endpoints import BrokerAddress

from .cameras import SyntheticCameras, make_pool
from .measure import Collector
from .report import SCHEMA, SendSample, slope_ms_per_min, summarize, timeline

WARMUP = 3.0  # seconds of load before measuring (pipelines fill, rates settle)


@dataclass
class LoadTestConfig:
    broker: BrokerAddress
    cameras: int = 4
    fps: float = 10.0
    width: int = 1280
    height: int = 720
    quality: int = 80
    duration: float = 30.0
    ramp: bool = False
    ramp_start: float = 1.0  # fps per camera of the first ramp step
    ramp_factor: float = 1.5
    step_seconds: float = 10.0
    max_steps: int = 12
    slo_ms: float = 500.0
    spawn: bool = False
    workers: int = 1
    model: str = "null"
    batch: int | str = "auto"
    device: str = "cpu"
    threads: int = 0
    worker_args: tuple[str, ...] = ()  # more flags for spawned workers (e.g. --engine, --decode gpu)
    extra: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "broker": str(self.broker),
            "cameras": self.cameras,
            "fps": self.fps,
            "resolution": f"{self.width}x{self.height}",
            "quality": self.quality,
            "duration_s": self.duration,
            "ramp": self.ramp,
            "ramp_start": self.ramp_start,
            "slo_ms": self.slo_ms,
            "spawn": self.spawn,
            "workers": self.workers,
            "model": self.model,
            "batch": self.batch,
            **self.extra,
        }


class Progress:
    """One live line on a terminal, a line every few seconds elsewhere."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self._out, self._tty, self._last = out, out.isatty(), 0.0

    def show(self, text: str) -> None:
        if self._tty:
            self._out.write("\r\x1b[2K" + text)
            self._out.flush()
        elif time.monotonic() - self._last >= 5:
            self._out.write(text + "\n")
            self._out.flush()
            self._last = time.monotonic()

    def done(self) -> None:
        if self._tty:
            self._out.write("\n")


def _bar(fraction: float, width: int = 24) -> str:
    filled = int(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Run:
    def __init__(
        self, config: LoadTestConfig, stop: threading.Event, progress: Progress | None = None
    ) -> None:
        self.config, self.stop = config, stop
        self.progress = progress or Progress()
        self.ctx = zmq.Context()
        self.samples: list[SendSample] = []

    def _wait(
        self,
        seconds: float,
        cams: SyntheticCameras,
        collector: Collector,
        label: str,
        total: float,
        offset: float,
    ) -> None:
        end = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < end:
            self.stop.wait(min(1.0, max(0.0, end - time.monotonic())))
            c = cams.counts
            self.samples.append(SendSample(time.monotonic(), c.offered, c.sent, c.dropped))
            recent = [r for r in collector.data.rows[-2000:] if r.received > time.monotonic() - 2]
            lat = sorted(r.latency_ms for r in recent)
            p95 = f"{lat[int(0.95 * (len(lat) - 1))]:.0f} ms" if lat else "-"
            elapsed = offset + seconds - max(0.0, end - time.monotonic())
            self.progress.show(
                f"{label} {_bar(elapsed / total)} {elapsed:4.0f}/{total:.0f} s  offered "
                f"{cams.fps * len(cams.camera_ids):7.1f} fps  delivered {len(recent) / 2:7.1f} fps  "
                f"p95 {p95}"
            )

    def execute(self) -> dict[str, Any]:
        cfg = self.config
        pool = make_pool(cfg.width, cfg.height, cfg.quality)
        collector = Collector(cfg.broker, self.ctx).start()
        cams = SyntheticCameras(cfg.broker, cfg.cameras, cfg.fps, pool, self.ctx)
        ids = set(cams.camera_ids)
        try:
            cams.start()
            self.samples.append(SendSample(time.monotonic(), 0, 0, 0))
            self._wait(WARMUP, cams, collector, "warm-up", WARMUP, 0.0)
            report: dict[str, Any] = {
                "schema": SCHEMA,
                "config": cfg.public(),
                "edge_encode_ms": round(pool.encode_ms, 2),
                "jpeg_kb": round(sum(map(len, pool.jpegs)) / len(pool.jpegs) / 1024, 1),
            }
            t0 = time.monotonic()
            stale0 = collector.data.stale
            if cfg.ramp:
                report["ramp"] = self._ramp(cams, collector, ids)
            else:
                self._wait(cfg.duration, cams, collector, "load", cfg.duration, 0.0)
            t1 = time.monotonic()
            self.progress.done()
            report["summary"] = summarize(collector.data, self.samples, t0, t1, ids, stale0)
            report["timeline"] = timeline(collector.data, self.samples, t0, t1)
            report["summary"]["p99_slope_ms_per_min"] = slope_ms_per_min(report["timeline"])
            report["interrupted"] = self.stop.is_set()
            if cfg.ramp:
                from .sizing import from_ramp, plan

                capacity = from_ramp(report)
                report["sizing"] = (
                    None
                    if capacity is None
                    else {
                        "worker_fps": capacity.worker_fps,
                        "broker_us_per_frame": capacity.broker_us_per_frame,
                        "rows": plan([capacity]),
                    }
                )
            return report
        finally:
            cams.stop()
            collector.stop()
            self.ctx.destroy(linger=0)

    def _ramp(self, cams: SyntheticCameras, collector: Collector, ids: set[str]) -> dict[str, Any]:
        cfg = self.config
        steps, sustainable = [], None
        total = cfg.step_seconds * cfg.max_steps
        cams.fps = cfg.ramp_start
        for i in range(cfg.max_steps):
            if self.stop.is_set():
                break
            if i:
                cams.fps *= cfg.ramp_factor
            a = time.monotonic()
            stale0 = collector.data.stale
            self._wait(cfg.step_seconds, cams, collector, f"step {i + 1}", total, i * cfg.step_seconds)
            s = summarize(collector.data, self.samples, a + 1.0, time.monotonic(), ids, stale0)
            holds = (
                s["latency_ms"]["p95"] is not None
                and s["latency_ms"]["p95"] <= cfg.slo_ms
                and s["delivered_fps"] >= 0.95 * s["offered_fps"]
            )
            broker_cpu = next((p.get("cpu") for p in s["processes"] if p.get("role") == "broker"), None)
            steps.append(
                {
                    "fps_per_camera": round(cams.fps, 2),
                    "offered_fps": s["offered_fps"],
                    "delivered_fps": s["delivered_fps"],
                    "latency_ms": s["latency_ms"],
                    "holds": holds,
                    "broker_cpu": broker_cpu,
                }
            )
            if holds:
                sustainable = s["delivered_fps"]
            else:
                break
        return {"slo_ms": cfg.slo_ms, "steps": steps, "sustainable_fps": sustainable}


def spawned_system(cfg: LoadTestConfig, log_dir: Path | None, cores: int) -> tuple[Any, Callable[[], None]]:
    """Start a private broker and workers on 127.0.0.1; return (supervisor, stop function)."""
    from anjeon.runtime.supervisor import ServiceSpec, Supervisor

    threads = cfg.threads or max(1, cores // max(1, cfg.workers))
    specs = [
        ServiceSpec("broker", ["broker", "--bind", "127.0.0.1", "--base-port", str(cfg.broker.base_port)])
    ]
    for i in range(cfg.workers):
        specs.append(
            ServiceSpec(
                f"worker-{i + 1}",
                [
                    "worker",
                    "--broker",
                    str(cfg.broker),
                    "--model",
                    cfg.model,
                    "--batch",
                    str(cfg.batch),
                    "--threads",
                    str(threads),
                    "--device",
                    cfg.device,
                    *cfg.worker_args,
                    "--name",
                    f"worker-{i + 1}",
                ],
            )
        )
    sup = Supervisor(specs, log_dir)
    sup.start()
    return sup, sup.shutdown


def wait_for_status(
    broker: BrokerAddress, predicate: Callable[[dict[str, Any]], bool], timeout: float, stop: threading.Event
) -> bool:
    """Block until the broker's status snapshot satisfies ``predicate`` (or the timeout)."""
    ctx = zmq.Context()
    collector = Collector(broker, ctx).start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            if predicate(collector.latest_status()):
                return True
            stop.wait(0.2)
        return False
    finally:
        collector.stop()
        ctx.destroy(linger=0)


def wait_for_workers(broker: BrokerAddress, count: int, timeout: float, stop: threading.Event) -> bool:
    """Block until the broker's status lists ``count`` online workers."""
    return wait_for_status(
        broker,
        lambda s: len([w for w in s.get("workers", {}).values() if w.get("online")]) >= count,
        timeout,
        stop,
    )
