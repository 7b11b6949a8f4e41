"""Unit tests of the safety rules as pure logic: geometry, config, debounce, incidents, re-ordering, rules."""

from __future__ import annotations

import random

import numpy as np
import pytest

from anjeon.config import ConfigError, parse_site_config
from anjeon.config.geometry import is_simple_polygon
from anjeon.config.safety import CameraRules, Hours, LineSpec, RuleSpec
from anjeon.safety.debounce import Debouncer, start_slack
from anjeon.safety.engine import CameraEngine
from anjeon.safety.geometry import Line, Zone, anchors
from anjeon.safety.heads import match_heads
from anjeon.safety.incident import Event, Incident, Transition
from anjeon.safety.observation import Observation
from anjeon.safety.reorder import Reorderer

W, H = 1000, 1000
SQUARE = ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))


def person(x: float, y: float, w: float = 60, h: float = 150) -> list[float]:
    """A standing person box whose feet are at normalized (x, y)."""
    return [x * W - w / 2, y * H - h, x * W + w / 2, y * H]


def obs(
    t: float,
    people: dict[int, list[float]],
    seq: int | None = None,
    labels: dict[int, str] | None = None,
    heads: list[tuple[list[float], str]] = (),
    run: str = "r1",
) -> Observation:
    ids = sorted(people)
    labels = labels or {}
    return Observation(
        "cam",
        run,
        int(t * 10) if seq is None else seq,
        t,
        W,
        H,
        boxes=np.array([people[i] for i in ids], float).reshape(-1, 4),
        labels=tuple(labels.get(i, "Normal") for i in ids),
        confidence=np.full(len(ids), 0.9),
        ids=np.array(ids, int),
        heads=np.array([h for h, _ in heads], float).reshape(-1, 4),
        head_labels=tuple(label for _, label in heads),
    )


def engine(*rules: RuleSpec, lines: dict | None = None) -> CameraEngine:
    return CameraEngine("cam", CameraRules(zones={"z": SQUARE}, lines=lines or {}, rules=rules))


def run(eng: CameraEngine, stream: list[Observation]) -> list[tuple[str, str, float]]:
    out = []
    for o in stream:
        for tr in eng.process(o)[1]:
            out.append(
                (tr.kind, tr.event.rule, round(tr.event.ended if tr.kind == "end" else tr.event.updated, 2))
            )
    return out


# ------------------------------------------------------------------ geometry


@pytest.mark.parametrize(
    "point, inside",
    [
        ((0.4, 0.4), True),
        ((0.1, 0.4), False),
        ((0.59, 0.21), True),
        ((0.7, 0.7), False),
        ((0.4, 0.61), False),
    ],
)
def test_zone_contains(point, inside):
    assert Zone("z", SQUARE).contains(np.array([point]))[0] == inside


def test_concave_zone_and_anchor_is_the_feet():
    l_shape = ((0, 0), (1, 0), (1, 0.2), (0.2, 0.2), (0.2, 1), (0, 1))
    zone = Zone("l", l_shape)
    assert list(zone.contains(np.array([[0.5, 0.1], [0.5, 0.5], [0.1, 0.9]]))) == [True, False, True]
    box = np.array([[100, 100, 300, 900]])  # head high up, feet at y=0.9
    assert anchors(box, 1000, 1000).tolist() == [[0.2, 0.9]]


@pytest.mark.parametrize("points, simple", [(SQUARE, True), (((0, 0), (1, 1), (1, 0), (0, 1)), False)])
def test_simple_polygon(points, simple):
    assert is_simple_polygon(points) == simple


def test_line_sides_and_span():
    line = Line("fence", (0.0, 0.5), (1.0, 0.5), "right")
    pts = np.array([[0.5, 0.8], [0.5, 0.2], [0.5, 0.5]])
    assert line.side(pts).tolist() == [1, -1, 0]  # y down: below the line is its right
    assert Line("short", (0.4, 0.5), (0.6, 0.5)).within_span(np.array([[0.5, 0.9], [0.9, 0.9]])).tolist() == [
        True,
        False,
    ]


# ------------------------------------------------------------------ config

GOOD = """\
cameras:
  gate: synthetic
safety:
  store: /tmp/x.db
  cameras:
    gate:
      zones:
        crane: [[0.1, 0.5], [0.5, 0.5], [0.5, 1.0], [0.1, 1.0]]
      lines:
        fence: {points: [[0, 0.6], [1, 0.6]], restricted: left}
      rules:
        - {type: intrusion, zone: crane, min_duration: 2, hours: "22:00-06:00"}
        - {type: crowding, zone: crane, max_people: 3}
        - {type: line_crossing, line: fence, cooldown: 10}
        - {type: fall}
        - {type: dwell, zone: crane, min_duration: 60, name: loiter, resume_within: 60}
        - {type: helmet, zone: crane}
  alerts:
    - {type: log}
    - {type: webhook, url: "http://127.0.0.1:9/hook", retries: 2}
    - {type: mqtt, host: 127.0.0.1, port: 1883}
"""


def test_good_safety_config():
    site = parse_site_config(GOOD, "site.yaml")
    gate = site.safety.cameras["gate"]
    assert [r.name for r in gate.rules] == [
        "intrusion-crane",
        "crowding-crane",
        "line_crossing-fence",
        "fall-all",
        "loiter",
        "helmet-crane",
    ]
    assert gate.rules[0].hours == Hours(22 * 60, 6 * 60) and gate.rules[0].hours.contains(60)
    assert gate.lines["fence"] == LineSpec(((0.0, 0.6), (1.0, 0.6)), "left")
    assert [a.type for a in site.safety.alerts] == ["log", "webhook", "mqtt"]
    assert gate.rules[4].resume_within == 60.0 and gate.rules[0].resume_within == 300.0  # given; default


def _bad(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            _bad("[[0.1, 0.5], [0.5, 0.5], [0.5, 1.0], [0.1, 1.0]]", "[[0.1, 0.5], [1.5, 0.5], [0.5, 1.0]]"),
            "site.yaml:8: safety.cameras.gate.zones.crane: 1.5 is out of range",
        ),
        (
            _bad("[[0.1, 0.5], [0.5, 0.5], [0.5, 1.0], [0.1, 1.0]]", "[[0, 0], [1, 1], [1, 0], [0, 1]]"),
            "site.yaml:8: safety.cameras.gate.zones.crane: the polygon's edges cross",
        ),
        (
            _bad("[[0.1, 0.5], [0.5, 0.5], [0.5, 1.0], [0.1, 1.0]]", "[[0.1, 0.5], [0.2, 0.5]]"),
            "site.yaml:8: safety.cameras.gate.zones.crane: a zone is a list of 3..64",
        ),
        (
            _bad("{type: fall}", "{type: explode}"),
            "site.yaml:15: safety.cameras.gate.rules.3.type: 'explode' is not one of",
        ),
        (
            _bad("{type: fall}", "{type: fall, colour: red}"),
            "site.yaml:15: safety.cameras.gate.rules.3.colour: unknown setting",
        ),
        (
            _bad("zone: crane, max_people: 3", "zone: cran, max_people: 3"),
            "site.yaml:13: safety.cameras.gate.rules.1.zone: no zone 'cran' on this camera",
        ),
        (
            _bad("max_people: 3", "max_people: -1"),
            "site.yaml:13: safety.cameras.gate.rules.1.max_people: -1 is out of range",
        ),
        (
            _bad("min_duration: 2,", "min_duration: lots,"),
            "site.yaml:12: safety.cameras.gate.rules.0.min_duration: must be float",
        ),
        (
            _bad('"22:00-06:00"', '"25:00-06:00"'),
            "site.yaml:12: safety.cameras.gate.rules.0.hours: '25:00-06:00' is not a time",
        ),
        (
            _bad("{type: fall}", "{type: fall, resume_within: -5}"),
            "site.yaml:15: safety.cameras.gate.rules.3.resume_within: -5.0 is out of range",
        ),
        (_bad("{type: log}", "{type: pager}"), "site.yaml:19: safety.alerts.0.type: 'pager' is not one of"),
        (
            _bad('url: "http://127.0.0.1:9/hook"', 'url: "ftp://x"'),
            "site.yaml:20: safety.alerts.1.url: a webhook needs",
        ),
        (_bad("  store: /tmp/x.db", "  stor: /tmp/x.db"), "site.yaml:4: safety.stor: unknown setting"),
        (
            _bad("{type: line_crossing, line: fence, cooldown: 10}", "{type: line_crossing}"),
            "site.yaml:14: safety.cameras.gate.rules.2.line: a line_crossing rule needs a line",
        ),
        (
            _bad("name: loiter", "name: crowding-crane"),
            "site.yaml:16: safety.cameras.gate.rules.4: two rules are named",
        ),
        (GOOD + "  - [oops\n", "site.yaml:22: not valid YAML"),
    ],
)
def test_hostile_safety_config_names_line_and_field(text, expected):
    with pytest.raises(ConfigError) as err:
        parse_site_config(text, "site.yaml")
    assert str(err.value).startswith(expected), str(err.value)


# ------------------------------------------------------------------ debounce, incidents, re-ordering


def test_debouncer_min_duration_and_end_after():
    d = Debouncer(min_duration=1.0, end_after=0.5)
    assert d.update(0.0, {"a"}) == {}
    assert d.update(0.4, {"a"}) == {}
    assert d.update(0.7, set()) == {}  # missed for a while, but seen again before end_after
    assert d.update(0.85, {"a"}) == {}
    assert d.update(1.0, {"a"}) == {"a": 0.0}
    d.update(2.0, set())  # gone for 1 s, but on one result only: not over yet
    assert len(d) == 1
    d.update(2.1, set())  # a second result without it: forgotten
    assert len(d) == 0
    assert d.update(2.2, {"a"}) == {}


def test_debouncer_needs_two_results_and_forgives_half_an_interval():
    d = Debouncer(min_duration=0.0, end_after=2.0)
    assert d.update(0.0, {"a"}, interval=1.0) == {}  # one result is never evidence
    assert d.update(1.0, {"a"}, interval=1.0) == {"a": 0.0}
    slow = Debouncer(min_duration=2.0, end_after=2.0)
    for t in (0.0, 1.05):
        assert slow.update(t, {"a"}, interval=1.0) == {}
    assert slow.update(1.55, {"a"}, interval=1.0) == {"a": 0.0}  # 1.55 >= 2.0 - 0.5: jitter between results
    assert (
        start_slack(2.0, 10.0) == 1.0 and start_slack(1.0, None) == 0.0
    )  # never more than half min_duration


def test_one_missing_result_is_no_end_at_a_low_rate():
    inc = Incident("cam", RuleSpec("crowding", name="c", zone="z", end_after=2.0))
    assert inc.update(0.0, {"crowd": 0.0}, set(), 3, ()).kind == "start"
    assert inc.update(2.0, {}, set(), 0, ()) is None  # 2 s without, but only one result (0.5/s)
    assert inc.update(4.0, {"crowd": 0.0}, set(), 3, ()) is None  # back: the same event
    assert inc.update(6.0, {}, set(), 0, ()) is None
    end = inc.update(8.0, {}, set(), 0, ())
    assert end.kind == "end" and end.event.ended == 4.0


def test_incident_start_update_end_cooldown():
    inc = Incident("cam", RuleSpec("intrusion", name="i", zone="z", end_after=1.0, cooldown=5.0))
    start = inc.update(10.0, {1: 9.0}, {1}, 1, (0,))
    assert start.kind == "start" and start.event.started == 10.0 and start.event.since == 9.0
    assert inc.update(10.5, {1: 9.0}, {1}, 1, (0,)) is None  # nothing new: no update spam
    upd = inc.update(11.0, {1: 9.0, 2: 10.5}, {1, 2}, 2, (0, 1))
    assert upd.kind == "update" and upd.event.tracks == [1, 2] and upd.event.peak == 2
    assert inc.update(11.5, {}, set(), 0, ()) is None  # inertia
    end = inc.update(12.1, {}, set(), 0, ())  # 1.1 s and two results without an offender
    assert end.kind == "end" and end.event.ended == 11.0 and end.event.duration == pytest.approx(1.0)
    assert inc.update(14.0, {3: 14.0}, {3}, 1, ()) is None  # cooldown: 5 s after the end
    assert inc.update(16.5, {3: 14.0}, {3}, 1, ()).kind == "start"


def test_incident_hours_gate():
    import time as _t

    now = _t.time()
    minute = _t.localtime(now).tm_hour * 60 + _t.localtime(now).tm_min
    outside = Hours((minute + 60) % 1440, (minute + 120) % 1440)
    inside = Hours((minute - 1) % 1440, (minute + 2) % 1440)
    assert (
        Incident("c", RuleSpec("intrusion", zone="z", hours=outside)).update(now, {1: now}, {1}, 1, ())
        is None
    )
    assert (
        Incident("c", RuleSpec("intrusion", zone="z", hours=inside)).update(now, {1: now}, {1}, 1, ()).kind
        == "start"
    )


def test_reorderer_orders_drops_late_and_follows_new_runs():
    r: Reorderer[int] = Reorderer(window=0.3)
    for seq, arrive in [(2, 0.0), (1, 0.05), (4, 0.1), (3, 0.2)]:
        assert r.push("a", seq, 100 + seq, seq, arrive) == "newer"
    assert r.pop_ready(0.25) == []
    assert r.pop_ready(0.6) == [1, 2, 3, 4]
    assert r.push("a", 3, 103, 3, 0.7) == "stale" and r.late == 1  # arrived after 4 was released
    assert r.push("b", 0, 104.5, 10, 0.8) == "newer"  # edge restarted: new run, newer capture time
    assert r.flush() == [10]
    assert r.push("c", 0, 50, 11, 0.9) == "stale"  # another run whose frames are older than what was released


def test_reorderer_releases_a_direct_successor_at_once():
    r: Reorderer[int] = Reorderer(window=10.0)
    r.push("a", 1, 1.0, 1, 0.0)
    assert r.pop_ready(0.0) == [] and r.pop_ready(10.0) == [1]
    r.push("a", 2, 2.0, 2, 11.0)
    assert r.pop_ready(11.0) == [2]  # nothing can come between 1 and 2: no wait
    r.push("a", 5, 5.0, 5, 12.0)
    assert r.pop_ready(12.0) == []  # 3 and 4 may still be on their way


def test_reorderer_is_bounded_in_results():
    r: Reorderer[int] = Reorderer(window=100.0, max_behind=8)
    for seq in range(0, 40, 2):
        r.push("a", seq, seq / 10, seq, 0.0)
    assert r.pop_ready(0.0) == list(range(0, 24, 2)) and len(r) == 8


def test_reorderer_refuses_a_forged_sequence_jump():
    r: Reorderer[int] = Reorderer(window=0.0)
    r.push("a", 1, 100.0, 1, 0.0)
    assert r.pop_ready(0.0) == [1]
    assert r.push("a", 2**62, 100.1, 99, 0.1) == "implausible" and r.implausible == 1
    assert r.push("a", 2, 100.1, 2, 0.1) == "newer"  # the real next frame is not frozen out
    assert r.pop_ready(0.1) == [2]


# ------------------------------------------------------------------ rules through the engine


def test_intrusion_one_event_per_incident_with_out_of_order_and_dropped_results():
    eng = engine(RuleSpec("intrusion", name="i", zone="z", min_duration=1.0, end_after=1.0))
    stream = []
    for k in range(60):  # 6 s at 10 fps; person 7 in the zone from t=1.0 to t=4.0
        t = k / 10
        people = {7: person(0.4, 0.4)} if 1.0 <= t < 4.0 else {7: person(0.9, 0.9)}
        stream.append(obs(t, people))
    rng = random.Random(6)
    kept = [o for o in stream if rng.random() > 0.3]  # 30% of results dropped by the pipeline
    shuffled = kept[:]
    for i in range(0, len(shuffled) - 1, 2):  # pairs swapped: two workers racing
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    r: Reorderer[Observation] = Reorderer(window=0.3)
    ordered = []
    for i, o in enumerate(shuffled):
        r.push(o.run, o.seq, o.t, o, now=i * 0.1)
        ordered += r.pop_ready(now=i * 0.1)
    ordered += r.flush()
    assert [o.seq for o in ordered] == sorted(o.seq for o in kept)
    events = run(eng, ordered)
    assert [e[0] for e in events] == ["start", "end"]
    start_t = events[0][2]
    assert 2.0 <= start_t <= 2.0 + 0.5  # entered at 1.0, min_duration 1 s; drops may delay it by a few frames
    assert 3.5 <= events[1][2] < 4.0  # ended at the last frame seen inside


def test_intrusion_ignores_people_passing_through_quickly():
    eng = engine(RuleSpec("intrusion", name="i", zone="z", min_duration=2.0))
    stream = [obs(k / 10, {k // 10: person(0.4, 0.4)}) for k in range(60)]  # a new track each second
    assert run(eng, stream) == []


def test_crowding_counts_and_peak():
    eng = engine(RuleSpec("crowding", name="c", zone="z", max_people=2, min_duration=0.5, end_after=0.5))
    stream = []
    for k in range(50):
        t = k / 10
        n = 4 if 1.0 <= t < 3.0 else 2
        n = 5 if 2.0 <= t < 2.5 else n
        stream.append(obs(t, {i: person(0.25 + 0.07 * i, 0.5) for i in range(n)}))
    events = run(eng, stream)
    assert [e[0] for e in events] == ["start", "update", "end"]
    assert events[0][2] == pytest.approx(1.5)


def test_fall_needs_an_upright_moving_person_and_ignores_a_static_fall_label():
    eng = engine(RuleSpec("fall", name="f", min_duration=1.0, end_after=1.0))
    lying = [700, 800, 850, 860]  # the yellow thing on the grass: wide box, labelled Fall every frame
    stream = []
    for k in range(80):
        t = k / 10
        people = {1: lying}
        labels = {1: "Fall"}
        if t < 3.0:  # person 2 walks upright
            people[2] = person(0.1 + 0.1 * t, 0.5)
        else:  # then lies down and stays there
            people[2] = [150, 450, 300, 500]
            labels[2] = "Fall"
        stream.append(obs(t, people, labels=labels))
    events = [e for e in run(eng, stream)]
    assert [e[0] for e in events] == ["start"]
    assert events[0][2] == pytest.approx(4.0)
    assert eng.open_events()[0].tracks == [2]


def test_line_crossing_into_restricted_side_only():
    lines = {"fence": LineSpec(((0.0, 0.5), (1.0, 0.5)), "right")}  # below the line is restricted
    eng = engine(RuleSpec("line_crossing", name="x", line="fence", end_after=0.5), lines=lines)
    stream = []
    for k in range(40):
        t = k / 10
        y1 = 0.3 + 0.1 * t if t < 3 else 0.3  # person 1 walks down across the line, then jumps back up
        stream.append(
            obs(t, {1: person(0.5, y1), 2: person(0.2, 0.8)})
        )  # person 2 always below: never crossed
    events = run(eng, stream)
    assert [e[0] for e in events] == ["start", "end"]
    assert 2.0 <= events[0][2] <= 2.1  # feet pass y=0.5 at t=2.0


def test_helmet_heads_matched_one_to_one_by_position():
    people = np.array([[100, 100, 200, 400], [180, 110, 280, 410]], float)  # two workers shoulder to shoulder
    heads = np.array(
        [
            [125, 100, 165, 140],  # in person 0's upper part only
            [215, 112, 255, 150],  # in person 1's upper part only (its box overlaps person 0's)
            [185, 105, 195, 115],
        ],
        float,
    )  # a tiny box in both upper parts: ambiguous, unmatched
    assert match_heads(people, heads) == {0: 0, 1: 1}
    assert match_heads(people, heads[[2]]) == {}


def test_helmet_rule_blames_the_right_worker():
    eng = engine(RuleSpec("helmet", name="h", zone="z", min_duration=0.5))
    stream = []
    for k in range(20):
        a, b = person(0.35, 0.5, 60, 200), person(0.42, 0.5, 60, 200)
        heads = [
            ([a[0] + 15, a[1], a[0] + 45, a[1] + 30], "With Helmet"),
            ([b[0] + 15, b[1], b[0] + 45, b[1] + 30], "Without Helmet"),
        ]
        stream.append(obs(k / 10, {1: a, 2: b}, heads=heads))
    events = run(eng, stream)
    assert [e[0] for e in events] == ["start"]
    assert eng.open_events()[0].tracks == [2]


def test_resume_after_restart_does_not_duplicate():
    spec = RuleSpec("intrusion", name="i", zone="z", min_duration=0.5, end_after=1.0)
    first = engine(spec)
    run(first, [obs(k / 10, {1: person(0.4, 0.4)}) for k in range(20)])
    (open_event,) = first.open_events()
    second = engine(spec)  # the service restarted
    second.resume([open_event])
    events = run(second, [obs(2.5 + k / 10, {9: person(0.4, 0.4)}) for k in range(20)])
    assert events[0][0] == "update" and all(e[0] != "start" for e in events)
    assert second.open_events()[0].id == open_event.id


T0 = 1_700_000_000.0  # capture times as an edge sends them (seconds since the epoch)


def transitions(eng: CameraEngine, stream: list[Observation]) -> list[Transition]:
    return [tr for o in stream for tr in eng.process(o)[1]]


def left_open(spec: RuleSpec) -> Event:
    """An event a previous run of the service left open: someone in the zone from T0 for 2 s, then a stop."""
    first = engine(spec)
    run(first, [obs(T0 + k / 10, {1: person(0.4, 0.4)}) for k in range(20)])
    (ev,) = first.open_events()
    assert ev.updated == T0 + 1.9
    return Event.from_dict(ev.to_dict())  # as the store gives it back: a copy, no shared state


INSIDE = {1: person(0.4, 0.4)}


def test_a_short_restart_carries_the_event_on():
    spec = RuleSpec("intrusion", name="i", zone="z", min_duration=0.5, end_after=1.0)
    old = left_open(spec)
    eng = engine(spec)
    eng.resume([old])
    back = T0 + 1.9 + 10  # the first result 10 s after the event's last update: a quick restart
    stream = [obs(back + k / 10, INSIDE if k < 20 else {}) for k in range(40)]
    got = transitions(eng, stream)
    assert [tr.kind for tr in got] == ["end"], got  # no new start, no early end
    assert got[0].event.id == old.id and got[0].event.ended == back + 1.9  # last seen in this run
    assert got[0].event.started == old.started  # the same incident, as it began in the earlier run


def test_a_long_gap_ends_the_old_event_at_its_last_update_and_starts_a_new_one():
    spec = RuleSpec("intrusion", name="i", zone="z", min_duration=0.5, end_after=1.0)
    old = left_open(spec)
    eng = engine(spec)
    eng.resume([old])
    back = T0 + 3 * 3600  # three hours later someone is in the zone again: a new incident
    first = transitions(eng, [obs(back, INSIDE)])
    assert [(tr.kind, tr.event.id) for tr in first] == [("end", old.id)]  # on the first result at once
    assert first[0].event.ended == first[0].event.updated == T0 + 1.9  # at its last stored update
    assert eng.open_events() == []
    got = transitions(eng, [obs(back + k / 10, INSIDE) for k in range(1, 20)])
    assert [tr.kind for tr in got] == ["start"], got  # one new alert, after the normal debounce
    new = got[0].event
    assert new.id != old.id and new.started >= back + 0.5 - 0.05 and new.since == back
    assert eng.open_events() == [new]


@pytest.mark.parametrize(
    "resume_within, end_after, gap, carried",
    [
        (300.0, 1.0, 3 * 3600.0, False),  # the default window: hours are far past it
        (300.0, 1.0, 60.0, True),
        (30.0, 1.0, 20.0, True),
        (30.0, 1.0, 60.0, False),
        (0.0, 5.0, 3.0, True),  # never less than end_after: within it the event could not have ended
        (0.0, 5.0, 8.0, False),
    ],
)
def test_a_resumed_event_with_nobody_there_ends(resume_within, end_after, gap, carried):
    spec = RuleSpec("intrusion", name="i", zone="z", end_after=end_after, resume_within=resume_within)
    old = left_open(spec)
    last = old.updated  # the incident changes the event it carries on: keep what the store had
    eng = engine(spec)
    eng.resume([old])
    back = last + gap
    got = transitions(eng, [obs(back + k, {}) for k in range(12)])  # 1 result/s, nobody in the zone
    assert [(tr.kind, tr.event.id) for tr in got] == [("end", old.id)], got
    if carried:  # its quiet time starts at the first result after the restart
        assert got[0].event.ended == back
    else:  # ended on the first result, at its last update
        assert got[0].event.ended == last


def test_a_resumed_event_of_a_camera_that_never_sends_again_ends_at_its_last_update():
    spec = RuleSpec("intrusion", name="i", zone="z", end_after=1.0)
    old = left_open(spec)
    last = old.updated
    eng = engine(spec)
    eng.resume([old])
    assert eng.idle(last + 0.9) == []
    (end,) = eng.idle(last + 4 * 3600)
    assert (end.kind, end.event.id, end.event.ended) == ("end", old.id, last)


def test_tracker_keeps_ids_through_dropped_frames():
    from anjeon.safety.tracker import PersonTracker

    tracker = PersonTracker()
    seen = set()
    for k in range(40):
        if k % 3 == 1:
            continue  # the pipeline dropped this frame
        t = k / 10
        o = Observation(
            "cam",
            "r",
            k,
            t,
            W,
            H,
            boxes=np.array([person(0.1 + 0.01 * k, 0.5), person(0.8, 0.9)]),
            labels=("Normal", "Normal"),
            confidence=np.array([0.8, 0.5]),
        )
        tracked = tracker.update(o, 0.1)
        seen |= {int(i) for i in tracked.ids if i >= 0}
    assert seen == {0, 1}
