"""One thread per camera that reads as fast as the source delivers and keeps only the newest frame.

Reading continuously matters for live cameras: a reader that pauses lets
frames pile up in the decoder and falls seconds behind. The sender takes the
newest frame when it is ready for one; older ones are simply overwritten.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .sources import Pacer, Source, SourceError, parse_source

log = logging.getLogger("anjeon.edge")

BACKOFF_START = 0.5  # seconds before the first reopen attempt
BACKOFF_MAX = 10.0  # a camera rebooting takes ~30-60 s; retrying every 10 s finds it soon enough


@dataclass
class CameraConfig:
    id: str
    source: str
    fps: float = 10.0  # cap on frames sent per second
    width: int = 0  # resize to this width before encoding (0: keep)
    quality: int = 80  # JPEG quality
    loop: bool = False  # replay files and folders forever


@dataclass
class Captured:
    image: np.ndarray
    t_capture: float  # Unix time, for display and latency
    number: int  # count of frames captured so far


class Capture:
    """Owns one source and its thread; ``latest()`` is the only thing the sender calls."""

    def __init__(self, config: CameraConfig, opener: Callable[[], Source] | None = None) -> None:
        self.config = config
        self._opener = opener or (lambda: parse_source(config.source, config.fps, config.loop))
        self._lock = threading.Lock()
        self._latest: Captured | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.captured = 0
        self.reconnects = 0
        self.state = "connecting"
        self.error = ""
        self.description = config.source

    def start(self) -> "Capture":
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.config.id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def latest(self) -> Captured | None:
        with self._lock:
            return self._latest

    def _run(self) -> None:
        backoff = BACKOFF_START
        logged_errors: set[str] = set()
        while not self._stop.is_set():
            try:
                source = self._opener()
                self.description = source.describe()
                source.open()
            except SourceError as exc:
                self._fail(str(exc), logged_errors)
                self._stop.wait(backoff * random.uniform(0.8, 1.2))  # jitter: cameras do not retry in lockstep
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            if self.state != "connecting":
                self.reconnects += 1
            log.info("camera %s streaming from %s", self.config.id, self.description)
            self.state, self.error, backoff = "streaming", "", BACKOFF_START
            ended = self._read_until_lost(source)
            source.close()
            if ended:
                self.state = "ended"
                log.info("camera %s: %s ended (use --loop to replay it)", self.config.id, self.description)
                return
            if not self._stop.is_set():
                self._fail(f"lost {self.description}", logged_errors, state="reconnecting")

    def _read_until_lost(self, source: Source) -> bool:
        """Read frames until the source fails; True if it ended for good (a file without --loop)."""
        pacer = None if source.live else Pacer(source.fps)
        while not self._stop.is_set():
            if pacer is not None:
                pacer.wait(self._stop.wait)
            image = source.read()
            if image is None:
                return not source.live
            self.captured += 1
            with self._lock:
                self._latest = Captured(image, time.time(), self.captured)
        return False

    def _fail(self, message: str, logged: set[str], state: str = "error") -> None:
        self.state, self.error = state, message
        if message not in logged:  # once per kind, not once per retry
            logged.add(message)
            log.warning("camera %s: %s; retrying with backoff", self.config.id, message)
