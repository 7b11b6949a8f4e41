"""One event per incident: start, update, end, with cooldown and active hours.

An ``Incident`` turns the debounced offenders of one rule on one camera into
transitions. It opens an event when offenders appear (outside the cooldown
and within the rule's hours), updates it when new tracks join or the count
peaks, and ends it once no offender was seen for ``end_after`` seconds; the
event's end is the last time an offender was seen, so the inertia does not
inflate durations.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .config import RuleSpec

Kind = Literal["start", "update", "end"]


@dataclass
class Event:
    id: str
    camera: str
    rule: str
    type: str
    zone: str
    line: str
    severity: str
    started: float  # capture time of the frame that started it
    since: float  # when the earliest offender began meeting the condition (started - since >= min_duration)
    updated: float
    ended: float | None = None
    peak: int = 0
    count: int = 0
    tracks: list[int] = field(default_factory=list)
    run: str = ""
    seq: int = 0
    snapshot: str = ""

    @property
    def open(self) -> bool:
        return self.ended is None

    @property
    def duration(self) -> float:
        return (self.ended if self.ended is not None else self.updated) - self.started

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = "open" if self.open else "ended"
        d["duration"] = round(self.duration, 3)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Event":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Transition:
    kind: Kind
    event: Event
    rows: tuple[int, ...] = ()  # the offending rows of the observation that caused it (for the snapshot)


def _local_minute(t: float) -> int:
    tm = time.localtime(t)
    return tm.tm_hour * 60 + tm.tm_min


@dataclass
class Incident:
    camera: str
    spec: RuleSpec
    event: Event | None = None
    _last_active: float = 0.0
    _last_end: float | None = None

    def resume(self, event: Event, now: float) -> None:
        """Carry on an event that was open when the service stopped: no duplicate if the condition persists."""
        self.event, self._last_active = event, now

    def update(self, t: float, offenders: dict[Any, float], tracks: set[int], count: int, rows: tuple[int, ...],
               run: str = "", seq: int = 0) -> Transition | None:
        """``offenders``: debounced key -> since; ``tracks``/``count``/``rows``: who and how many, for the record."""
        hours = self.spec.hours
        if offenders and hours is not None and not hours.contains(_local_minute(t)):
            offenders = {}
        ev = self.event
        if not offenders:
            if ev is not None and t - self._last_active >= self.spec.end_after:
                ev.ended = ev.updated = max(self._last_active, ev.started)
                self.event, self._last_end = None, ev.ended
                return Transition("end", ev)
            return None
        self._last_active = t
        if ev is None:
            if self._last_end is not None and t - self._last_end < self.spec.cooldown:
                return None
            s = self.spec
            self.event = Event(id=uuid.uuid4().hex[:16], camera=self.camera, rule=s.name, type=s.type, zone=s.zone,
                               line=s.line, severity=s.severity, started=t, since=min(offenders.values()), updated=t,
                               peak=count, count=count, tracks=sorted(tracks), run=run, seq=seq)
            return Transition("start", self.event, rows)
        ev.updated, ev.count = t, count
        grew = not tracks.issubset(ev.tracks) or count > ev.peak
        if grew:
            ev.tracks = sorted(set(ev.tracks) | tracks)
            ev.peak = max(ev.peak, count)
            return Transition("update", ev, rows)
        return None
