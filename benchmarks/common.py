"""Shared pieces of the benchmarks: a private anjeon system, load runs, the model, frame pools."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from anjeon.loadtest.cameras import FramePool, make_pool
from anjeon.loadtest.runner import LoadTestConfig, Progress, Run, spawned_system, wait_for_workers
from anjeon.protocol.endpoints import BrokerAddress, free_base_port

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "ultralytics"))
LOG_DIR = Path("logs/bench")
log = logging.getLogger("bench")


class QuietProgress(Progress):
    def show(self, text: str) -> None:  # benchmarks print their own summaries
        pass


@contextlib.contextmanager
def anjeon_system(
    workers: int,
    model: str,
    threads: int,
    batch: int | str = 1,
    device: str = "cpu",
    worker_args: tuple[str, ...] = (),
) -> Iterator[BrokerAddress]:
    """A private broker and workers on loopback, stopped on exit."""
    address = BrokerAddress("127.0.0.1", free_base_port())
    cfg = LoadTestConfig(
        broker=address,
        workers=workers,
        model=model,
        threads=threads,
        batch=batch,
        spawn=True,
        device=device,
        worker_args=worker_args,
    )
    _, shutdown = spawned_system(cfg, LOG_DIR, cores=os.cpu_count() or 1)
    try:
        if not wait_for_workers(address, workers, 240, threading.Event()):
            raise RuntimeError(f"workers did not come up; see {LOG_DIR}")
        time.sleep(1.0)
        yield address
    finally:
        shutdown()


def load_run(
    address: BrokerAddress, cameras: int, fps: float, seconds: float, width: int = 1280, height: int = 720
) -> dict[str, Any]:
    cfg = LoadTestConfig(
        broker=address, cameras=cameras, fps=fps, width=width, height=height, duration=seconds
    )
    return Run(cfg, threading.Event(), QuietProgress()).execute()


def pool_images(pool: FramePool) -> list[np.ndarray]:
    return [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in pool.jpegs]


def service_time(model: str, threads: int, pool: FramePool, seconds: float = 8.0) -> float:
    """Seconds per frame of decode + predict in one process: one worker's capacity is its inverse."""
    from anjeon.inference.models import load_detector

    detector = load_detector(model, "cpu", threads)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        jpeg = pool.jpegs[n % len(pool.jpegs)]
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        detector.predict([image])
        n += 1
    return (time.perf_counter() - started) / n


__all__ = ["anjeon_system", "load_run", "make_pool", "service_time", "pool_images", "LOG_DIR"]
