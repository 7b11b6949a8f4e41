"""Counting what a process throws away (by reason, said once) and how fast things flow.

Freshness means dropping; dropping silently means nobody can tell a healthy
system from a broken one. Every role keeps one DropCounter, logs the first
drop of each reason (never one line per frame), and reports the counts in its
heartbeat so `anjeon watch` can show them.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections import Counter

from .logs import fields


class DropCounter:
    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._counts: Counter[str] = Counter()
        self._cameras: dict[str, Counter[str]] = {}
        self._lock = threading.Lock()

    def drop(self, reason: str, detail: str = "", n: int = 1, camera: str | None = None) -> None:
        """Count ``n`` drops for ``reason`` (and its camera, if any); log the first one of that reason."""
        with self._lock:
            first = reason not in self._counts
            self._counts[reason] += n
            if camera is not None:
                self._cameras.setdefault(camera, Counter())[reason] += n
        if first:
            suffix = f": {detail}" if detail else ""
            self._log.warning(
                "dropping %s%s (logged once; counted in status)",
                reason.replace("_", " "),
                suffix,
                extra=fields(camera=camera, reason=reason),
            )

    def __getitem__(self, reason: str) -> int:
        with self._lock:
            return self._counts[reason]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def by_camera(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {cam: dict(c) for cam, c in self._cameras.items()}

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def read(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """snapshot() and by_camera() taken together, so they agree (metrics subtract one from the other)."""
        with self._lock:
            return dict(self._counts), {cam: dict(c) for cam, c in self._cameras.items()}


class RateMeter:
    """Events per second over the last sampling period.

    ``add`` is called on the hot path (a counter increment); ``sample`` once a
    second or so by whoever reports the rate.
    """

    def __init__(self) -> None:
        self.count = 0
        self._last_count = 0
        self._last_time = time.monotonic()
        self.rate = 0.0

    def add(self, n: int = 1) -> None:
        self.count += n

    def sample(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        dt = now - self._last_time
        if dt >= 0.2:  # shorter windows are noise
            self.rate = (self.count - self._last_count) / dt
            self._last_count, self._last_time = self.count, now
        return self.rate


class ProcessMeter:
    """This process's CPU use (percent of one core since the last sample) and resident memory.

    Every heartbeat carries it, so `anjeon watch` and `anjeon loadtest` can show
    what each process costs even when it runs on another host.
    """

    def __init__(self) -> None:
        self._last_cpu = self._cpu_seconds()
        self._last_time = time.monotonic()

    @staticmethod
    def _cpu_seconds() -> float:
        t = os.times()
        return t.user + t.system

    @staticmethod
    def rss_mb() -> float:
        try:
            with open("/proc/self/statm") as f:  # current RSS (Linux)
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
        except OSError:  # elsewhere: peak RSS is the best portable figure
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3

    def sample(self) -> dict[str, float]:
        now, cpu = time.monotonic(), self._cpu_seconds()
        dt = max(now - self._last_time, 1e-6)
        percent = 100.0 * (cpu - self._last_cpu) / dt
        self._last_cpu, self._last_time = cpu, now
        return {"cpu": round(percent, 1), "rss_mb": round(self.rss_mb(), 1)}
