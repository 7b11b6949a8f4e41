"""The result rate of one camera, measured live on capture times.

A camera's rate is whatever reaches the rules: the edge's fps, less what the
broker and workers dropped under load (freshness beats completeness), and it
changes by the minute. Everything in the rules that would otherwise count
frames (track confirmation and patience, debouncing, ends) reads the
``interval`` measured here: the median gap between the last results in
capture time, so one late or missing result does not swing it.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

WINDOW = 9  # intervals in the median: about the last few seconds at 3 results/s
MAX_INTERVAL = 30.0  # a gap longer than this is an outage, not a rate


@dataclass
class ResultRate:
    _last: float | None = None
    _gaps: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def observe(self, t: float) -> None:
        """Feed the capture time of each result in order (re-ordered first)."""
        if self._last is not None and 0.0 < t - self._last <= MAX_INTERVAL:
            self._gaps.append(t - self._last)
        if self._last is None or t > self._last:
            self._last = t

    @property
    def interval(self) -> float | None:
        """Seconds between results (median of the last few), None before two results were seen."""
        return statistics.median(self._gaps) if self._gaps else None

    @property
    def per_second(self) -> float:
        i = self.interval
        return 1.0 / i if i else 0.0


QUIET_RESULTS = 3  # a camera is quiet after this many result intervals without a result ...
# ... and at least this many seconds: a pipeline hiccup (a worker stalled for seconds on a busy host,
# measured up to 5 s on the shared 2-core machine) must not end events that the late results then
# show going on (one incident, two events). Broker and console call a process gone after 3 missed
# 1 s heartbeats; a camera's events get much longer, since ending them early is the costlier mistake.
QUIET_MIN = 15.0
QUIET_DEFAULT_INTERVAL = 1.0  # assumed while no interval is measured yet


@dataclass
class CaptureClock:
    """ "Now" in a camera's capture time while it sends nothing: one clock per decision.

    Results carry the edge's capture time; the safety host's clock may be
    minutes off. When a camera goes quiet, its open events must still end,
    so the service marks each result's capture time with the moment it was
    processed (our monotonic clock) and, once quiet, estimates capture-time
    "now" as that capture time plus the elapsed monotonic time: a duration on
    one clock added to a time on the other, never two absolute clocks mixed.
    """

    capture: float | None = None
    at: float = 0.0  # monotonic time of the mark

    def mark(self, capture: float, at: float) -> None:
        self.capture, self.at = capture, at

    def quiet_now(self, at: float, interval: float | None) -> float | None:
        """Capture-time now if no result came for QUIET_RESULTS intervals (None: not quiet, or never marked)."""
        if self.capture is None:
            return None
        elapsed = at - self.at
        if elapsed < max(QUIET_MIN, QUIET_RESULTS * (interval or QUIET_DEFAULT_INTERVAL)):
            return None
        return self.capture + elapsed
