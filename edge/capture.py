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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anjeon.config.camera import CameraConfig
from anjeon.protocol.logs import fields
from anjeon.protocol.secrets import mask

from .sources import Pacer, Source, SourceError, parse_source
from .stream import StreamOptions

log = logging.getLogger("anjeon.edge")

BACKOFF_START = 0.5  # seconds before the first reopen attempt
BACKOFF_MAX = 10.0  # a camera rebooting takes ~30-60 s; retrying every 10 s finds it soon enough
STABLE_AFTER = (
    10.0  # a stream that lasted this long resets the backoff; one that keeps dropping at once does not
)


def stream_options(config: CameraConfig) -> StreamOptions:
    """How the decoder opens and reads this camera (its transport and the frozen-stream watchdog)."""
    return StreamOptions(
        transport=config.transport,
        open_timeout=max(5.0, config.stall_timeout),
        read_timeout=config.stall_timeout,
    )


@dataclass
class Captured:
    image: np.ndarray
    t_capture: float  # Unix time, for display and latency
    number: int  # count of frames captured so far


class Capture:
    """Owns one source and its thread; ``latest()`` and ``status()`` are what the sender calls."""

    def __init__(self, config: CameraConfig, opener: Callable[[], Source] | None = None) -> None:
        self.config = config
        self._opener = opener or (
            lambda: parse_source(config.source, config.fps, config.loop, stream_options(config))
        )
        self._lock = threading.Lock()
        self._latest: Captured | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = False
        self._last_frame = time.monotonic()
        self.captured = 0
        self.reconnects = 0
        self.state = "connecting"
        self.error = ""
        self.description = mask(config.source)

    def start(self) -> Capture:
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

    def status(self, now: float | None = None) -> tuple[str, str]:
        """(state, error) as the heartbeat reports them.

        The watchdog: a live camera that has sent nothing for stall_timeout seconds is
        reported lost at once, even while the reader thread is still blocked inside the
        decoder waiting for its own read timeout to fire.
        """
        silent = (now if now is not None else time.monotonic()) - self._last_frame
        if self.state == "streaming" and self._live and silent > self.config.stall_timeout:
            return "reconnecting", f"no frame for {silent:.0f} s (frozen stream)"
        return self.state, self.error

    def _run(self) -> None:
        backoff = BACKOFF_START
        logged_errors: set[str] = set()
        while not self._stop.is_set():
            source = self._open(logged_errors)
            if source is None:
                self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            opened = time.monotonic()
            ended = self._read_until_lost(source)
            source.close()
            if ended:
                self.state = "ended"
                log.info("camera %s: %s ended (use --loop to replay it)", self.config.id, self.description)
                return
            if self._stop.is_set():
                return
            silent = time.monotonic() - self._last_frame
            reason = (
                f"no frame for {silent:.0f} s (frozen stream)"
                if silent >= self.config.stall_timeout
                else "stream lost"
            )
            self._fail(f"{reason}: {self.description}", logged_errors, state="reconnecting")
            if time.monotonic() - opened >= STABLE_AFTER:
                backoff = BACKOFF_START
            self._pause(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _open(self, logged_errors: set[str]) -> Source | None:
        try:
            source = self._opener()
            self.description = source.describe()
            source.open()
        except Exception as exc:  # SourceError, or anything a decoder library raises: retry, never die
            message = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
            self._fail(mask(message), logged_errors, state="reconnecting" if self.captured else "error")
            return None
        self._live = source.live
        self._last_frame = time.monotonic()
        if self.captured:
            self.reconnects += 1
            log.info(
                "camera %s reconnected to %s (reconnect %d)",
                self.config.id,
                self.description,
                self.reconnects,
                extra=fields(camera=self.config.id, state="streaming"),
            )
        else:
            log.info(
                "camera %s streaming from %s",
                self.config.id,
                self.description,
                extra=fields(camera=self.config.id, state="streaming"),
            )
        self.state, self.error = "streaming", ""
        logged_errors.clear()  # a new outage logs its reasons again
        return source

    def _pause(self, backoff: float) -> None:
        # Jitter, so that the cameras of a site do not all retry in lockstep after a network blip.
        self._stop.wait(backoff * random.uniform(0.5, 1.0))

    def _read_until_lost(self, source: Source) -> bool:
        """Read frames until the source fails; True if it ended for good (a file without --loop)."""
        pacer = Pacer(source.fps) if not source.live and self.config.realtime else None
        while not self._stop.is_set():
            if pacer is not None:
                pacer.wait(self._stop.wait)
            try:
                image = source.read()
            except Exception as exc:
                log.warning("camera %s: %s", self.config.id, mask(str(exc)))
                return False
            if image is None:
                return not source.live
            if source.live and time.monotonic() - self._last_frame > self.config.stall_timeout:
                return False  # it came back after the watchdog gave up on it: reopen anyway, it may be stale
            self._last_frame = time.monotonic()
            self.captured += 1
            with self._lock:
                self._latest = Captured(image, time.time(), self.captured)
        return False

    def _fail(self, message: str, logged: set[str], state: str) -> None:
        self.state, self.error = state, message
        if message not in logged:  # once per kind, not once per retry
            logged.add(message)
            log.warning(
                "camera %s: %s; retrying with backoff",
                self.config.id,
                message,
                extra=fields(camera=self.config.id, state=state),
            )
