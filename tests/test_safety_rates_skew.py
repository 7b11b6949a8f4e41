"""Clock skew between hosts: an edge whose clock is 30 s off the safety host's still gets the right events.

The scripted scene (tests/scenes.py) is replayed by a separate process run
under Debian's ``faketime`` (its clock 30 s behind, or ahead of, everyone
else's), which stamps capture times as an edge on that host would, through
the real broker to the real ``anjeon safety``. The camera goes quiet at
scene time 18 s while all five incidents are still open, so every event is
ended by the quiet-camera path. Every decision must be on capture time:
one event per incident, started on time, none ended while results flowed,
and each ended at the last result that showed it, soon after the camera
went quiet (on the safety host's clock, whatever the edge's says).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
import scenes
from conftest import ROOT, SAMPLE, wait_for
from safety_fixtures import stored_events

from anjeon.safety.rate import QUIET_MIN

STOP_AT = 18.0  # scene seconds: the camera stops sending with every incident still going on
RATE = 2.0

pytestmark = [
    pytest.mark.skipif(
        shutil.which("faketime") is None, reason="needs Debian's faketime (deploy/test-packages.txt)"
    ),
    pytest.mark.skipif(not SAMPLE.exists(), reason=f"the sample video {SAMPLE} is missing"),
]


@pytest.mark.model  # the recorded detections come from the real model (cached after the first run)
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("skew", ["-30s", "+30s"])
def test_an_edge_30_s_off_gets_the_same_events(system, tmp_path, skew):
    scenes.record(5.0)  # recorded on the normal clock, before the shifted process starts
    db, listener = scenes.start_service(system, tmp_path)
    edge = subprocess.Popen(
        [
            "faketime",
            "-f",
            skew,
            sys.executable,
            str(ROOT / "tests" / "scenes.py"),
            f"tcp://127.0.0.1:{system.base + 2}",
            f"tcp://127.0.0.1:{system.base + 3}",
            str(RATE),
            str(STOP_AT),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 300
        while edge.poll() is None and time.monotonic() < deadline:
            listener.drain(0.1)
        out, err = edge.communicate(timeout=30)
    finally:
        edge.kill()
    assert edge.returncode == 0, err
    t0 = float(out.split("t0 ")[1])
    quiet_since = time.monotonic()
    assert abs(t0 - time.time() + STOP_AT) > 20, "faketime did not shift the replaying process's clock"

    def all_ended():
        listener.drain(0.1)
        events = stored_events(db)
        return len(events) >= 5 and all(e["state"] == "ended" for e in events)

    wait_for(all_ended, 60, "the quiet camera's events to end")
    ended_after = time.monotonic() - quiet_since
    stored = {e["rule"]: e for e in stored_events(db)}
    assert sorted(stored) == sorted(t.rule for t in scenes.truth()), (
        stored
    )  # one event per incident, no other
    last = max(m["t_capture"] for m in listener.heard.tracks)  # the last result, on the edge's clock
    assert abs(last - (t0 + STOP_AT)) < 1.0 / RATE + 0.01
    for tr in scenes.truth():
        ev = stored[tr.rule]
        start_error = ev["started"] - (t0 + tr.start + scenes.MIN_DURATION[tr.rule])
        assert -1.0 <= start_error <= 1.0 / RATE + scenes.SLACK, (tr.rule, start_error)
        # Ended at the last result that still showed it: none was ended early while results flowed.
        assert last - 2.0 / RATE - scenes.SLACK <= ev["ended"] <= last, (tr.rule, ev["ended"] - last)
    # Quiet is judged on the safety host's own clock: 15 s without results (rate.QUIET_MIN), checked each second.
    assert ended_after < QUIET_MIN + 1.0 + 3.0, ended_after
