"""A scripted scene with ground truth, through the real pipeline and the real model.

A real person (cut from ultralytics' bus.jpg) walks on a plain yard: from the
left, across a fence line into a danger zone, stays, and walks back out; a
second person stands still outside everything. Known frame numbers say when
each rule should fire; the test checks that exactly the expected events start
and end, and that each starts within the stated tolerance of the ground truth
(min_duration after the true entry, plus at most TOLERANCE seconds).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import wait_for
from safety_fixtures import start_safety, stored_events, write_config

FPS = 5  # slow enough that a loaded CPU worker still sees the walker on both sides of the fence
FRAMES = 110
W, H = 768, 576
PERSON_BOX = (50, 400, 244, 903)  # the man on the left of bus.jpg, pixels
TOLERANCE = 1.5  # seconds the event may start after min_duration past the true moment (a CPU worker sees ~5 fps)
MIN_DURATION = 1.0


def feet_x(k: int) -> float:
    """Walker's feet, normalized x, at frame k: walk right (0-29), stay (30-69), walk back (70-99), gone."""
    if k < 30:
        return 0.12 + (0.66 - 0.12) * k / 30
    if k < 70:
        return 0.66
    return 0.66 - (0.66 - 0.12) * (k - 70) / 30


# Ground truth from feet_x: the fence (x = 0.45) is crossed when feet_x passes it going right,
# the zone (x 0.5..0.9) is entered when feet_x passes 0.5 and left when it comes back.
ENTER_ZONE = next(k for k in range(FRAMES) if feet_x(k) >= 0.5)
CROSS_LINE = next(k for k in range(FRAMES) if feet_x(k) > 0.45)
LEAVE_ZONE = next(k for k in range(40, FRAMES) if feet_x(k) < 0.5)

RULES = """
zones:
  danger: [[0.5, 0.3], [0.9, 0.3], [0.9, 0.95], [0.5, 0.95]]
lines:
  fence: {points: [[0.45, 0.0], [0.45, 1.0]], restricted: left}
rules:
  - {type: intrusion, zone: danger, min_duration: 1.0, end_after: 3.0}
  - {type: line_crossing, line: fence, end_after: 3.0}
  - {type: crowding, zone: danger, max_people: 1}
  - {type: fall, min_duration: 1.0}
"""


def build_scene(folder, bus_jpg: str) -> None:
    bus = cv2.imread(bus_jpg)
    x1, y1, x2, y2 = PERSON_BOX
    person = cv2.resize(bus[y1:y2, x1:x2], None, fx=0.45, fy=0.45)
    ph, pw = person.shape[:2]
    rng = np.random.default_rng(1)
    yard = np.full((H, W, 3), (120, 135, 130), np.uint8)
    yard = cv2.GaussianBlur((yard + rng.integers(0, 25, yard.shape, dtype=np.uint8)), (5, 5), 0)
    folder.mkdir()
    for k in range(FRAMES):
        frame = yard.copy()
        frame[H - 40 - ph:H - 40, 20:20 + pw] = person  # the bystander, never in the zone nor across the fence
        if k < 100:
            cx, bottom = int(feet_x(k) * W), int(0.9 * H)
            frame[bottom - ph:bottom, cx - pw // 2:cx - pw // 2 + pw] = person
        cv2.imwrite(str(folder / f"{k:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])


@pytest.mark.model
def test_scripted_scene_raises_exactly_the_expected_events_on_time(system, tmp_path, bus_jpg):
    build_scene(tmp_path / "scene", bus_jpg)
    db = tmp_path / "events.db"
    config = write_config(tmp_path / "site.yaml", "yard", RULES, db)
    system.broker()
    system.worker("w1", "person", "--device", "cpu")
    start_safety(system, "safety", config)
    wait_for(lambda: "model person" in (tmp_path / "w1.log").read_text(), 120, "the worker to load its model")
    system.edge("edge", f"yard={tmp_path / 'scene'}", fps=FPS)

    def settled():
        events = stored_events(db)
        return events if len(events) >= 2 and all(e["state"] == "ended" for e in events) else None

    wait_for(settled, 180, "the intrusion and the line crossing to start and end")
    events = stored_events(db)
    by_type = {e["type"]: e for e in events}
    assert sorted(e["type"] for e in events) == ["intrusion", "line_crossing"], events  # no crowding, no fall
    intrusion, crossing = by_type["intrusion"], by_type["line_crossing"]
    report = {}
    for ev, truth, wait in ((intrusion, ENTER_ZONE, MIN_DURATION), (crossing, CROSS_LINE, 0.0)):
        delay = (ev["seq"] - 1 - truth) / FPS - wait  # the edge numbers the scene's frames from 1, in order
        report[ev["type"]] = round(delay, 2)
        assert -0.3 <= delay <= TOLERANCE, (ev, truth)
        assert json.loads(ev["tracks"]) and ev["ended"] > ev["started"]
    # The walker leaves the zone at LEAVE_ZONE: the intrusion lasted about that long.
    truth_duration = (LEAVE_ZONE - ENTER_ZONE) / FPS - MIN_DURATION
    assert abs(intrusion["duration"] - truth_duration) <= TOLERANCE + 0.5, (intrusion, truth_duration)
    print("start delay beyond min_duration vs ground truth (s):", report)
