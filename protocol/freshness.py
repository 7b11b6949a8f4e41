"""The one rule for "is this result newer than the last one?" per camera.

Every subscriber that shows or reasons about "now" (the console, the safety
re-orderer, watch) compares a result's ``(run, seq, t_capture)`` with the last
one it accepted. Naively (same run: higher seq wins; new run: later capture
wins) one forged message freezes a camera: ``seq = 2**62`` makes every real
frame look old forever. This rule adds three guards, all measured on the
receiver's own monotonic clock so no cross-host clock agreement is needed:

- **A sequence jump must agree with capture time.** Within one run the
  sequence advances once per sent frame, so it cannot grow faster than the
  camera's frame rate: a jump of more than ``1 + max_fps * dt`` frames for
  ``dt`` seconds of capture time is implausible and ignored.
- **Capture time cannot outrun real time.** Since the last accepted result,
  capture time may advance by at most the receiver's elapsed time plus
  ``max_lead`` (pipeline jitter between results of different workers); a
  result further "in the future" is ignored, whatever its run.
- **A silent stream times out.** When nothing was accepted for ``timeout``
  seconds (the run stopped sending, or a forged reference got past the
  guards), a result of another run is accepted whatever its capture time (a
  restarted edge whose clock is behind takes over), and one of the same run
  with a lower sequence but a later capture time is accepted (the
  reference's sequence was forged). A true straggler, older on both counts,
  stays stale. The capture-time guard is lifted after the timeout too: a
  reference that itself arrived late (a stalled worker catching up) would
  otherwise make every fresher result look "in the future" for good. So no
  single message freezes a camera for longer than ``timeout`` seconds, and a
  forged one gets in only while the camera has been silent that long.

Ignored results do not move the reference. Verdicts name why, so callers can
count drops by reason (``stale``, ``implausible``).

A result equal to the reference (same run, same sequence) is ``stale``: a
duplicate is never newer, so "not NEWER" is the re-orderer's "already
released or older". Who calls what: ``FreshnessRule.verdict`` with the last
released ``Mark`` (safety/reorder.py); ``FreshnessGate.admit_frame`` per
camera (the console, watch, the load test, and ``client.Subscriber`` with
``newest_only``).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .wire import FrameHeader

NEWER = "newer"
STALE = "stale"  # older than, or the same as, the last accepted result
IMPLAUSIBLE = "implausible"  # a sequence jump or a capture time that contradicts the elapsed time


@dataclass(frozen=True)
class Mark:
    """The last accepted result of one stream, and when (receiver's monotonic clock) it was accepted."""

    run: str
    seq: int
    t_capture: float
    at: float


@dataclass(frozen=True)
class FreshnessRule:
    # Highest rate (frames/s) at which a real edge's sequence advances; loose on purpose: it only has
    # to tell a plausible jump (dropped frames) from a forged one (2**62).
    max_fps: float = 1000.0
    # Seconds capture time may run ahead of the receiver's elapsed time: results of different workers
    # arrive with different delays, bounded by the workers' max age (1 s by default).
    max_lead: float = 5.0
    # Seconds without an accepted result after which a new run takes over (see the module doc).
    timeout: float = 3.0

    def verdict(self, last: Mark | None, run: str, seq: int, t_capture: float, now: float) -> str:
        """NEWER, STALE or IMPLAUSIBLE for a result arriving at ``now`` after ``last``."""
        if not math.isfinite(t_capture):
            return IMPLAUSIBLE
        if last is None:
            return NEWER
        elapsed, dt = now - last.at, t_capture - last.t_capture
        timed_out = elapsed > self.timeout
        # After the timeout the capture-time guard no longer applies: a reference that itself arrived
        # late (a worker stalled, then caught up) makes every fresher result look "in the future" by
        # the lag it had, however long we wait, and would freeze the camera for good.
        if dt > elapsed + self.max_lead and not timed_out:
            return IMPLAUSIBLE
        if run != last.run:
            return NEWER if dt > 0 or timed_out else STALE
        if seq > last.seq:
            span = max(dt, elapsed) if timed_out else max(dt, 0.0)
            return NEWER if seq - last.seq <= 1 + self.max_fps * span else IMPLAUSIBLE
        # An older sequence with a later capture time: after the timeout, time wins (the reference's
        # sequence was forged, or the edge's counter went back without a new run id).
        return NEWER if timed_out and dt > 0 else STALE

    def is_newer(self, last: Mark | None, run: str, seq: int, t_capture: float, now: float) -> bool:
        return self.verdict(last, run, seq, t_capture, now) == NEWER


class StreamFreshness:
    """The reference of one stream (one camera) under a rule."""

    def __init__(
        self, rule: FreshnessRule | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rule = rule or FreshnessRule()
        self._clock = clock
        self.last: Mark | None = None

    def check(self, run: str, seq: int, t_capture: float, now: float | None = None) -> str:
        """The verdict without accepting anything."""
        return self.rule.verdict(self.last, run, seq, t_capture, self._clock() if now is None else now)

    def admit(self, run: str, seq: int, t_capture: float, now: float | None = None) -> str:
        """The verdict; a NEWER result becomes the reference."""
        now = self._clock() if now is None else now
        verdict = self.rule.verdict(self.last, run, seq, t_capture, now)
        if verdict == NEWER:
            self.last = Mark(run, seq, t_capture, now)
        return verdict


class FreshnessGate:
    """Per-camera freshness with a bounded number of cameras.

    Camera ids come off the wire, so they are attacker-chosen: past
    ``max_cameras`` the camera not seen for longest is forgotten (counted in
    ``evicted``). A forgotten camera's next result is simply accepted.
    """

    def __init__(
        self,
        rule: FreshnessRule | None = None,
        max_cameras: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rule = rule or FreshnessRule()
        self.max_cameras = max_cameras
        self._clock = clock
        self._marks: OrderedDict[str, Mark] = OrderedDict()
        self.evicted = 0

    def admit(self, camera: str, run: str, seq: int, t_capture: float, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        verdict = self.rule.verdict(self._marks.get(camera), run, seq, t_capture, now)
        if verdict == NEWER:
            self._marks[camera] = Mark(run, seq, t_capture, now)
            self._marks.move_to_end(camera)
            while len(self._marks) > self.max_cameras:
                self._marks.popitem(last=False)
                self.evicted += 1
        return verdict

    def admit_frame(self, frame: FrameHeader, now: float | None = None) -> str:
        """``admit`` for a frame header: NEWER (and it becomes its camera's reference), STALE or IMPLAUSIBLE."""
        return self.admit(frame.camera, frame.run, frame.seq, frame.t_capture, now)

    def last(self, camera: str) -> Mark | None:
        return self._marks.get(camera)

    def forget(self, camera: str) -> None:
        self._marks.pop(camera, None)

    def __len__(self) -> int:
        return len(self._marks)
