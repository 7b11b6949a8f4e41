"""Rule conditions: what, in one observation, a rule objects to.

Each rule has one verb, ``candidates(obs) -> {key: Candidate}``: the keys are
track ids (per-person rules) or one key for the whole zone (crowding). Rules
look only at confirmed tracks where identity matters; debouncing, events and
cooldowns are the engine's business, so these stay small and testable.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

from anjeon.config.safety import LineSpec, RuleSpec

from .debounce import START_RESULTS
from .geometry import Line, Point, Zone, anchors
from .heads import match_heads
from .observation import NO_HELMET_LABELS, Observation

FALL_LABELS = frozenset({"Fall", "fall", "fallen"})
UPRIGHT_ASPECT = 1.2  # box height / width of a standing person (walking people measure 1.8-3)
DOWN_ASPECT = 1.0  # height / width below this: a lying box (needed together with the Fall label)
# An upright track must move this many of its box heights to count as a moving person. Half a height
# is far beyond box jitter (a static object moves a few pixels) and still reachable at a low result
# rate, where a walker is seen upright only a few times after their track is confirmed.
MOVED_HEIGHTS = 0.5
FORGET_AFTER = 30.0  # seconds: per-track memory of tracks not seen for this long is dropped


@dataclass(frozen=True)
class Candidate:
    tracks: tuple[int, ...]  # track ids involved
    rows: tuple[int, ...]  # their rows in the observation (for drawing)


class Rule(Protocol):
    spec: RuleSpec
    # Results that must show the condition before it counts (debounce.py): 2, so that no single noisy
    # result starts an event; 1 where the condition itself already spans results (a line crossing is a
    # confirmed track seen on both sides).
    evidence_results: ClassVar[int]

    def candidates(self, obs: Observation) -> dict[Hashable, Candidate]: ...


def _per_track(obs: Observation, mask: np.ndarray) -> dict[Hashable, Candidate]:
    rows = np.flatnonzero(mask & obs.confirmed)
    return {int(obs.ids[i]): Candidate((int(obs.ids[i]),), (int(i),)) for i in rows}


def _in_zone(zone: Zone | None, obs: Observation) -> np.ndarray:
    if zone is None:
        return np.ones(len(obs.boxes), bool)
    return zone.contains(anchors(obs.boxes, obs.width, obs.height))


@dataclass
class _ZoneRule:
    """A rule about the people in one zone (``zone`` None: the whole picture)."""

    spec: RuleSpec
    zone: Zone | None
    evidence_results: ClassVar[int] = START_RESULTS


@dataclass
class ZonePresence(_ZoneRule):
    """intrusion and dwell: a person (confirmed track) stands in the zone; the debouncer adds 'for N s'."""

    def candidates(self, obs: Observation) -> dict[Hashable, Candidate]:
        return _per_track(obs, _in_zone(self.zone, obs))


@dataclass
class Crowding(_ZoneRule):
    """More than max_people people in the zone; counts unconfirmed detections too (a count needs no identity)."""

    def candidates(self, obs: Observation) -> dict[Hashable, Candidate]:
        rows = np.flatnonzero(_in_zone(self.zone, obs))
        if len(rows) <= self.spec.max_people:
            return {}
        return {
            "crowd": Candidate(tuple(int(obs.ids[i]) for i in rows if obs.ids[i] >= 0), tuple(map(int, rows)))
        }


@dataclass
class Helmet(_ZoneRule):
    """A person in the zone whose head (matched one to one) is bare."""

    def candidates(self, obs: Observation) -> dict[Hashable, Candidate]:
        bare = np.zeros(len(obs.boxes), bool)
        for person, head in match_heads(obs.boxes, obs.heads).items():
            bare[person] = obs.head_labels[head] in NO_HELMET_LABELS
        return _per_track(obs, bare & _in_zone(self.zone, obs))


@dataclass
class _Posture:
    first: tuple[float, float]  # centre when first seen upright, pixels
    moved: bool = False
    last_seen: float = 0.0


@dataclass
class Fall(_ZoneRule):
    """A track first seen upright and moving that is now down (Fall label or a lying box).

    The default model's Fall label alone fires on static objects (a yellow
    thing on the grass in the sample video): such an object is never a moving
    upright person, so it never qualifies. The debouncer adds 'stays down N s'.
    """

    _tracks: dict[int, _Posture] = field(default_factory=dict)

    def candidates(self, obs: Observation) -> dict[Hashable, Candidate]:
        b = obs.boxes
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        aspect = h / np.maximum(w, 1e-6)
        fallen_label = np.array([label in FALL_LABELS for label in obs.labels], bool)
        upright = (aspect >= UPRIGHT_ASPECT) & ~fallen_label
        # Both the label and a lying box: either alone fires on walkers whose boxes merge (wide,
        # labelled Normal) or on a crouching person the model calls Fall.
        down = fallen_label & (aspect < DOWN_ASPECT)
        for i in np.flatnonzero(obs.confirmed):
            tid, centre = int(obs.ids[i]), ((b[i, 0] + b[i, 2]) / 2, (b[i, 1] + b[i, 3]) / 2)
            state = self._tracks.get(tid)
            if state is None and upright[i]:
                state = self._tracks[tid] = _Posture(centre)
            if state is None:
                continue
            state.last_seen = obs.t
            if (
                upright[i]
                and np.hypot(centre[0] - state.first[0], centre[1] - state.first[1]) > MOVED_HEIGHTS * h[i]
            ):
                state.moved = True
        qualified = np.array(
            [self._tracks.get(int(t)) is not None and self._tracks[int(t)].moved for t in obs.ids], bool
        )
        for tid in [t for t, s in self._tracks.items() if obs.t - s.last_seen > FORGET_AFTER]:
            del self._tracks[tid]
        return _per_track(obs, qualified & down & _in_zone(self.zone, obs))


@dataclass
class LineCrossing:
    """A track that was on the allowed side and is now on the restricted side, within the line's span."""

    spec: RuleSpec
    evidence_results: ClassVar[int] = 1
    line: Line
    _side: dict[int, tuple[int, float]] = field(default_factory=dict)  # track -> (last nonzero side, when)
    _crossed: set[int] = field(default_factory=set)

    def candidates(self, obs: Observation) -> dict[Hashable, Candidate]:
        pts = anchors(obs.boxes, obs.width, obs.height)
        sides, span = self.line.side(pts), self.line.within_span(pts)
        bad = self.line.restricted_sign
        for i in np.flatnonzero(obs.confirmed):
            tid, side = int(obs.ids[i]), int(sides[i])
            if side == 0:
                continue
            previous = self._side.get(tid)
            if side == bad and previous is not None and previous[0] == -bad and span[i]:
                self._crossed.add(tid)
            elif side == -bad:
                self._crossed.discard(tid)  # back on the allowed side: the crossing is over
            self._side[tid] = (side, obs.t)
        for tid in [t for t, (_, seen) in self._side.items() if obs.t - seen > FORGET_AFTER]:
            del self._side[tid]
            self._crossed.discard(tid)
        mask = np.array([int(t) in self._crossed for t in obs.ids], bool)
        return _per_track(obs, mask)


def build_rule(spec: RuleSpec, zones: dict[str, tuple[Point, ...]], lines: dict[str, LineSpec]) -> Rule:
    zone = Zone(spec.zone, zones[spec.zone]) if spec.zone else None
    if spec.type in ("intrusion", "dwell"):
        return ZonePresence(spec, zone)
    if spec.type == "crowding":
        return Crowding(spec, zone)
    if spec.type == "helmet":
        return Helmet(spec, zone)
    if spec.type == "fall":
        return Fall(spec, zone)
    if spec.type == "line_crossing":
        ls = lines[spec.line]
        return LineCrossing(spec, Line(spec.line, ls.points[0], ls.points[1], ls.restricted))
    raise ValueError(f"unknown rule type {spec.type!r}")
