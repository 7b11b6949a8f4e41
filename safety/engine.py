"""The rules of one camera: track, evaluate each rule, debounce, turn into event transitions.

``CameraEngine.process(obs)`` takes observations in capture order (the
service re-orders them first) and returns what changed. It knows nothing of
sockets, storage or pictures, so it is tested and benchmarked on synthetic
streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .config import CameraRules, RuleSpec
from .debounce import Debouncer
from .incident import Event, Incident, Transition
from .observation import Observation
from .rules import Rule, build_rule


@dataclass
class _Slot:
    rule: Rule
    debounce: Debouncer
    incident: Incident


class CameraEngine:
    def __init__(self, camera: str, rules: CameraRules,
                 tracker: Callable[[Observation], Observation] | None = None) -> None:
        self.camera, self.rules = camera, rules
        self._track = tracker  # None: observations arrive with track ids already (tests)
        self._slots = [self._slot(spec) for spec in rules.rules]
        self._last_t: float | None = None

    def _slot(self, spec: RuleSpec) -> _Slot:
        # A key that disappears for less than the rule's inertia keeps its start time.
        return _Slot(build_rule(spec, self.rules.zones, self.rules.lines), Debouncer(spec.min_duration, spec.end_after),
                     Incident(self.camera, spec))

    def resume(self, events: list[Event], now: float) -> None:
        """Re-attach events left open by a previous run of the service (matched by rule name)."""
        by_rule = {s.incident.spec.name: s for s in self._slots}
        for ev in events:
            slot = by_rule.get(ev.rule)
            if slot is not None and slot.incident.event is None:
                slot.incident.resume(ev, now)

    def open_events(self) -> list[Event]:
        return [s.incident.event for s in self._slots if s.incident.event is not None]

    def process(self, obs: Observation) -> tuple[Observation, list[Transition]]:
        if self._last_t is not None and obs.t < self._last_t:
            return obs, []  # capture time went backwards (edge clock stepped): never feed rules the past
        self._last_t = obs.t
        if self._track is not None:
            obs = self._track(obs)
        out: list[Transition] = []
        for slot in self._slots:
            found = slot.rule.candidates(obs)
            held = slot.debounce.update(obs.t, found)
            tracks = {t for key in held for t in found[key].tracks}
            rows = tuple(sorted({r for key in held for r in found[key].rows}))
            count = len(rows) if slot.rule.spec.type == "crowding" else len(held)
            change = slot.incident.update(obs.t, held, tracks, count, rows, obs.run, obs.seq)
            if change is not None:
                out.append(change)
        return obs, out

    def idle(self, t: float) -> list[Transition]:
        """Time passes without results (camera gone): end what has been quiet for long enough."""
        out = []
        for slot in self._slots:
            change = slot.incident.update(t, {}, set(), 0, ())
            if change is not None:
                out.append(change)
        return out
