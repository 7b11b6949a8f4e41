"""Debouncing in time and in results: a condition counts once it has held long enough, on enough results.

The rules see a camera at whatever rate the pipeline delivers (0.5 to 30
results a second), so neither a time nor a count alone is right at every
rate: 2 s of ``end_after`` is 60 results at 30/s but a single missing result
at 0.5/s, and one result showing a condition is no evidence at all. So:

- **start**: a key (a track id, or the zone for crowding) is *held* once it
  was seen on at least ``min_results`` results (2: never on one noisy
  result) spanning at least ``min_duration`` less half a result interval
  (the jitter between results; never more than half of ``min_duration``).
  Its start time ``since`` is the first result that showed it.
- **end / forget**: a key (and an incident, incident.py) is gone only after
  ``end_after`` seconds **and** at least ``END_RESULTS`` consecutive results
  without it (``absent_long_enough``). A person missed for one result, or a
  count that dips for one result, keeps its start time.

Times are capture times of one camera, fed in order.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

END_RESULTS = 2  # consecutive results without the condition before it is over (plus end_after seconds)
START_RESULTS = 2  # results showing the condition before it counts (per-track rules on confirmed tracks too)


def absent_long_enough(absent_s: float, missed_results: int, end_after: float) -> bool:
    """The one end rule (debouncer keys and incidents alike): end_after seconds and END_RESULTS results."""
    return absent_s >= end_after and missed_results >= END_RESULTS


def start_slack(min_duration: float, interval: float | None) -> float:
    """Seconds of min_duration forgiven for the spacing of results: half an interval, at most half min_duration."""
    return min(min_duration, interval or 0.0) / 2.0


@dataclass
class _Seen:
    since: float
    last: float
    results: int = 0  # results that showed the key since ``since``
    missed: int = 0  # consecutive results without it


@dataclass
class Debouncer:
    min_duration: float
    end_after: float
    min_results: int = START_RESULTS
    _keys: dict[Hashable, _Seen] = field(default_factory=dict)

    def update(
        self, t: float, present: Iterable[Hashable], interval: float | None = None
    ) -> dict[Hashable, float]:
        """Keys present now that have held long enough, each with the time it began.

        ``interval``: the camera's live result interval (rate.py), None while unknown."""
        need = self.min_duration - start_slack(self.min_duration, interval)
        held: dict[Hashable, float] = {}
        now = set(present)
        for key in now:
            seen = self._keys.get(key)
            if seen is None:
                seen = self._keys[key] = _Seen(since=t, last=t)
            seen.last, seen.missed = t, 0
            seen.results += 1
            if seen.results >= self.min_results and t - seen.since >= need:
                held[key] = seen.since
        for key, seen in list(self._keys.items()):
            if key in now:
                continue
            seen.missed += 1
            if absent_long_enough(t - seen.last, seen.missed, self.end_after):
                del self._keys[key]  # bounded: only keys seen within end_after (and 2 results) remain
        return held

    def __len__(self) -> int:
        return len(self._keys)
