"""Debouncing: a condition counts only once it has held for a minimum time.

Detections flicker (a person missed for one frame, a track id confirmed a
frame late), so a key that vanishes for less than ``grace`` seconds keeps its
start time. Times are capture times of one camera, fed in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable


@dataclass
class Debouncer:
    min_duration: float
    grace: float
    _since: dict[Hashable, float] = field(default_factory=dict)
    _last: dict[Hashable, float] = field(default_factory=dict)

    def update(self, t: float, present: Iterable[Hashable]) -> dict[Hashable, float]:
        """Keys present now that have held for ``min_duration``, each with the time it began."""
        held = {}
        for key in present:
            if key not in self._since or t - self._last[key] > self.grace:
                self._since[key] = t
            self._last[key] = t
            if t - self._since[key] >= self.min_duration:
                held[key] = self._since[key]
        for key in [k for k, last in self._last.items() if t - last > self.grace]:
            del self._since[key], self._last[key]  # bounded: only keys seen within the grace period remain
        return held

    def __len__(self) -> int:
        return len(self._since)
