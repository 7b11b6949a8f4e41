"""One event per incident: start, update, end, with cooldown and active hours.

An ``Incident`` turns the debounced offenders of one rule on one camera into
transitions. It opens an event when offenders appear (outside the cooldown
and within the rule's hours), updates it when new tracks join or the count
peaks, and ends it once no offender was seen for ``end_after`` seconds of
capture time **and** on at least two consecutive results (debounce.py's
``absent_long_enough``): at a low rate one missing result is no end. The
event's end is the last time an offender was seen, so the inertia does not
inflate durations.

Every decision is on the camera's capture time, never the safety host's
clock: an edge whose clock is off by minutes still gets events of the right
length. A camera that stops sending is ended by ``idle(t)``, where the service
supplies ``t`` in the same capture-time scale (last capture time plus the
time elapsed since, measured on its own monotonic clock).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from anjeon.config.safety import RuleSpec

from .debounce import absent_long_enough

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
    def from_dict(cls, d: dict[str, Any]) -> Event:
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
    _last_active: float | None = None  # capture time an offender was last seen; None: not yet (resumed)
    _missed: int = 0  # consecutive results without offenders
    _last_end: float | None = None

    def resume(self, event: Event) -> None:
        """Carry on an event that was open when the service stopped: no duplicate if the condition persists
        (and the first result comes within ``resume_within`` of its last update: ``expire_resumed``).

        Its quiet time starts at the first result seen after the restart (capture time, the edge's clock),
        not at the safety host's clock, so a skewed edge neither ends it early nor keeps it open."""
        self.event, self._last_active, self._missed = event, None, 0

    def expire_resumed(self, t: float) -> Transition | None:
        """Before the first result after a restart (``t``, capture time): a resumed event whose last update
        is more than ``resume_within`` (at least ``end_after``) older belongs to an earlier run's incident.
        It ends at that last update and the rule starts afresh (a new event, after the normal debounce);
        a short restart carries the event on, so no alert is duplicated. The engine calls this first."""
        ev = self.event
        if ev is None or self._last_active is not None:  # not resumed, or a result already seen since
            return None
        if t - ev.updated <= max(self.spec.resume_within, self.spec.end_after):
            return None
        return self._end(ev.updated)

    def _end(self, last_active: float) -> Transition:
        ev = self.event
        assert ev is not None, "only an open incident ends"
        ev.ended = ev.updated = max(last_active, ev.started)
        self.event, self._last_end = None, ev.ended
        return Transition("end", ev)

    def idle(self, t: float) -> Transition | None:
        """No results at all (the camera went quiet): end after end_after; no results are coming to count."""
        if self.event is None:
            return None
        last = self._last_active if self._last_active is not None else self.event.updated
        return self._end(last) if t - last >= self.spec.end_after else None

    def update(
        self,
        t: float,
        offenders: dict[Any, float],
        tracks: set[int],
        count: int,
        rows: tuple[int, ...],
        run: str = "",
        seq: int = 0,
    ) -> Transition | None:
        """One result: ``offenders``: debounced key -> since; ``tracks``/``count``/``rows``: who and how many."""
        hours = self.spec.hours
        if offenders and hours is not None and not hours.contains(_local_minute(t)):
            offenders = {}
        ev = self.event
        if not offenders:
            if ev is None:
                return None
            if self._last_active is None:  # resumed: quiet from the first result after the restart
                self._last_active = t
            self._missed += 1
            if absent_long_enough(t - self._last_active, self._missed, self.spec.end_after):
                return self._end(self._last_active)
            return None
        self._last_active, self._missed = t, 0
        if ev is None:
            if self._last_end is not None and t - self._last_end < self.spec.cooldown:
                return None
            s = self.spec
            self.event = Event(
                id=uuid.uuid4().hex[:16],
                camera=self.camera,
                rule=s.name,
                type=s.type,
                zone=s.zone,
                line=s.line,
                severity=s.severity,
                started=t,
                since=min(offenders.values()),
                updated=t,
                peak=count,
                count=count,
                tracks=sorted(tracks),
                run=run,
                seq=seq,
            )
            return Transition("start", self.event, rows)
        ev.updated, ev.count = t, count
        grew = not tracks.issubset(ev.tracks) or count > ev.peak
        if grew:
            ev.tracks = sorted(set(ev.tracks) | tracks)
            ev.peak = max(ev.peak, count)
            return Transition("update", ev, rows)
        return None
