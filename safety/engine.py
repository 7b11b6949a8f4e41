"""The rules of one camera: track, evaluate each rule, debounce, turn into event transitions.

``CameraEngine.process(obs)`` takes observations in capture order (the
service re-orders them first) and returns what changed. It measures the
camera's result rate live (rate.py) and hands the interval to the tracker
and the debouncers, so every "how long" holds in time and in results at any
rate. It knows nothing of sockets, storage or pictures, so it is tested and
benchmarked on synthetic streams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anjeon.config.safety import CameraRules, RuleSpec

from .debounce import Debouncer
from .geometry import Zone, anchors
from .incident import Event, Incident, Transition
from .observation import Observation
from .rate import ResultRate
from .rules import Rule, build_rule

Tracker = Callable[[Observation, "float | None"], Observation]  # (obs, live result interval) -> obs with ids


@dataclass
class _Slot:
    rule: Rule
    debounce: Debouncer
    incident: Incident


@dataclass(frozen=True)
class TrackView:
    """One person as the rules see them on one result (published on trk/CAM/, drawn on snapshots)."""

    id: int  # -1: not confirmed
    box: list[float]
    zones: list[str]
    rules: list[str]  # rules whose (debounced) condition this person meets now

    @property
    def confirmed(self) -> bool:
        return self.id >= 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "box": self.box,
            "zones": self.zones,
            "rules": self.rules,
            "confirmed": self.confirmed,
        }


@dataclass(eq=False)
class CameraEngine:
    camera: str
    rules: CameraRules
    tracker: Tracker | None = None  # None: observations arrive with track ids already (tests)
    rate: ResultRate = field(default_factory=ResultRate)
    view: list[TrackView] = field(default_factory=list)  # the last processed result, as the rules saw it

    def __post_init__(self) -> None:
        self._slots = [self._slot(spec) for spec in self.rules.rules]
        self._zones = [Zone(name, pts) for name, pts in self.rules.zones.items()]
        self._last_t: float | None = None

    def _slot(self, spec: RuleSpec) -> _Slot:
        rule = build_rule(spec, self.rules.zones, self.rules.lines)
        return _Slot(
            rule,
            Debouncer(spec.min_duration, spec.end_after, rule.evidence_results),
            Incident(self.camera, spec),
        )

    def resume(self, events: list[Event]) -> None:
        """Re-attach events left open by a previous run of the service (matched by rule name); the first
        result ends those whose last update is longer ago than their rule's ``resume_within``."""
        by_rule = {s.incident.spec.name: s for s in self._slots}
        for ev in events:
            slot = by_rule.get(ev.rule)
            if slot is not None and slot.incident.event is None:
                slot.incident.resume(ev)

    def open_events(self) -> list[Event]:
        return [s.incident.event for s in self._slots if s.incident.event is not None]

    def process(self, obs: Observation) -> tuple[Observation, list[Transition]]:
        if self._last_t is not None and obs.t <= self._last_t:
            return (
                obs,
                [],
            )  # capture time repeated or went backwards (edge clock stepped): never feed rules the past
        self._last_t = obs.t
        self.rate.observe(obs.t)
        interval = self.rate.interval
        if self.tracker is not None:
            obs = self.tracker(obs, interval)
        out: list[Transition] = []
        tripped: dict[int, list[str]] = {}
        for slot in self._slots:
            expired = slot.incident.expire_resumed(obs.t)  # an earlier run's event, too long ago to go on
            if expired is not None:
                out.append(expired)
            found = slot.rule.candidates(obs)
            held = slot.debounce.update(obs.t, found, interval)
            tracks = {t for key in held for t in found[key].tracks}
            rows = tuple(sorted({r for key in held for r in found[key].rows}))
            for r in rows:
                tripped.setdefault(r, []).append(slot.rule.spec.name)
            count = len(rows) if slot.rule.spec.type == "crowding" else len(held)
            change = slot.incident.update(obs.t, held, tracks, count, rows, obs.run, obs.seq)
            if change is not None:
                out.append(change)
        self.view = self._view(obs, tripped)
        return obs, out

    def _view(self, obs: Observation, tripped: dict[int, list[str]]) -> list[TrackView]:
        feet = anchors(obs.boxes, obs.width, obs.height)
        inside = [zone.contains(feet) for zone in self._zones]
        return [
            TrackView(
                int(obs.ids[i]),
                [round(float(v), 1) for v in obs.boxes[i]],
                [z.name for z, mask in zip(self._zones, inside) if mask[i]],
                tripped.get(i, []),
            )
            for i in range(len(obs.boxes))
        ]

    def idle(self, t: float) -> list[Transition]:
        """No results for a while (camera gone): end what has been quiet for end_after; ``t`` in capture time."""
        out = []
        for slot in self._slots:
            change = slot.incident.idle(t)
            if change is not None:
                out.append(change)
        return out
