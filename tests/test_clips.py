"""Incident clips end to end: real broker, `anjeon safety`, `anjeon viewer` and a real headless Chromium.

A scripted camera (the test publishes img/ results on the real bus, a real JPEG with one person box moving
into a zone and out again) makes exactly one intrusion event. Its clip must exist, cover pre-roll to
post-roll, carry the drawn boxes, and play in Chromium from the console (duration > 0, currentTime moving).
The operator's acknowledgement (false alarm, with a reason) goes through the console into the safety store.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import msgpack
import numpy as np
import pytest
from conftest import wait_for
from evidence_fixtures import scripted_camera
from safety_fixtures import (
    events_cli,
    json_lines,
    pit_intrusion,
    start_console,
    start_safety,
    stored_events,
    write_config,
)

from anjeon.config.evidence import ClipSpec
from anjeon.config.safety import CameraRules
from anjeon.safety.clips import ClipFrame, Recording
from anjeon.safety.incident import Event

PRE, POST, FPS = 3.0, 3.0, 5.0
INSIDE = 4.0  # seconds the person stands in the zone
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def probe(path: str) -> dict:
    import av

    with av.open(path) as c:
        stream = c.streams.video[0]
        frames = [f for f in c.decode(stream)]
        return {
            "codec": stream.codec_context.name,
            "frames": len(frames),
            "width": stream.width,
            "duration": float(frames[-1].time - frames[0].time) if frames else 0.0,
            "middle": frames[len(frames) // 2].to_ndarray(format="bgr24") if frames else None,
        }


@pytest.fixture
def clip_system(system, tmp_path, bus_jpg):
    db = tmp_path / "events.db"
    config = write_config(
        tmp_path / "site.yaml",
        "yard",
        pit_intrusion("min_duration: 0.5, end_after: 2.0"),
        db,
    )
    with open(config, "a") as f:
        f.write(f"  clips: {{pre: {PRE}, post: {POST}, fps: {FPS}, max: 60}}\n")
    system.broker()
    safety, history_port = start_safety(system, "safety", config)
    wait_for(lambda: "history on" in safety.output(), 60, "the safety service to start")
    viewer, port = start_console(system, history_port, tmp_path)
    events = system.subscriber(b"evt/")
    url = f"http://127.0.0.1:{port}"
    # The console must be listening on the bus before the incident, so its alarm panel shows it live.
    wait_for(lambda: _status_online(url), 120, "the console up with the broker's status")
    time.sleep(1.0)  # subscriptions reach the broker
    stop = threading.Event()
    lead = PRE + 2.0  # outside the zone first, so the pre-roll is there; then INSIDE s inside, then outside
    feeder = threading.Thread(
        target=scripted_camera,
        args=(system, "yard", open(bus_jpg, "rb").read(), stop, lambda s: lead <= s < lead + INSIDE, 3000),
        daemon=True,
    )
    feeder.start()
    try:
        yield {
            "db": db,
            "safety": safety,
            "viewer": viewer,
            "url": url,
            "history": f"tcp://127.0.0.1:{history_port}",
            "tmp": tmp_path,
            "events": events,
        }
    finally:
        stop.set()
        feeder.join(5)


def clip_row(db, event_id):
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute(
            "SELECT state, path, start, end, frames, dropped, bytes, error FROM clips WHERE event = ?",
            (event_id,),
        ).fetchone()
    finally:
        con.close()
    return (
        dict(zip(("state", "path", "start", "end", "frames", "dropped", "bytes", "error"), row))
        if row
        else None
    )


def test_clip_covers_pre_to_post_roll_plays_in_chromium_and_ack_is_stored(clip_system):
    db = clip_system["db"]
    wait_for(lambda: [e for e in stored_events(db) if e["state"] == "ended"], 90, "the intrusion to end")
    event = stored_events(db)[0]  # the first incident (a loaded machine may split one into several)
    clip = wait_for(
        lambda: (c := clip_row(db, event["id"])) and c["state"] != "recording" and c,
        60,
        "the clip to be finished",
    )
    assert clip["state"] == "ready", clip
    # The live end transition (what alerts at `end` carry) names the clip.
    ends = []
    while (frames := clip_system["events"].recv(1.0)) is not None:
        msg = msgpack.unpackb(frames[1])
        if msg["transition"] == "end":
            ends.append(msg["event"])
    assert [e["clip"]["path"] for e in ends if e["id"] == event["id"]] == [clip["path"]]
    info = probe(clip["path"])
    assert info["codec"] == "h264" and info["width"] == 810
    # The clip runs from PRE s before the start to POST s after the end (one clip frame of slack each side).
    want = (event["ended"] + POST) - (event["started"] - PRE)
    assert clip["start"] == pytest.approx(event["started"] - PRE, abs=1e-3)
    assert clip["end"] >= event["ended"] + POST - 2 / FPS
    assert info["duration"] == pytest.approx(want, abs=2.5 / FPS), (info["duration"], want)
    assert info["frames"] >= (want - 1) * FPS * 0.8
    # Drawn as on the snapshot: the offender's red box (BGR 40, 40, 230) in the middle of the incident.
    mid = info["middle"].astype(int)
    red = (abs(mid[:, :, 2] - 230) < 40) & (mid[:, :, 1] < 90) & (mid[:, :, 0] < 90)
    assert red.sum() > 200, red.sum()
    print(f"clip {info['frames']} frames, {info['duration']:.2f} s (wanted {want:.2f}), {clip['bytes']} B")

    # `anjeon events` shows the clip; the console plays it in a real Chromium.
    run = events_cli("--db", str(db), "--json")
    row = next(r for r in json_lines(run.stdout) if r["id"] == event["id"])
    assert row["clip"]["state"] == "ready" and row["clip"]["path"] == clip["path"]
    import playwright.sync_api as playwright

    url = clip_system["url"]
    wait_for(lambda: _get(url + "/api/me"), 60, "the console to answer")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROME_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/#/history", wait_until="domcontentloaded", timeout=60_000)
            # The History row opens the event drawer, whose player loads the clip by event id.
            page.click(f"#history-table tr[data-event='{event['id']}'] td:nth-child(2)", timeout=60_000)
            video = "#event-drawer video.clip"
            page.wait_for_function(
                f"() => {{ const v = document.querySelector('{video}');"
                " return v && (v.error || v.readyState >= 2); }",
                timeout=30_000,
            )
            state = page.evaluate(
                f"() => {{ const v = document.querySelector('{video}');"
                " return {d: v.duration, e: v.error && v.error.code, t: v.currentTime}; }"
            )
            assert state["e"] is None and state["d"] == pytest.approx(want, abs=1.0), state
            page.wait_for_function(
                f"() => document.querySelector('{video}').currentTime > 0.5", timeout=30_000
            )
            assert page.get_attribute("#event-drawer a.clip-download", "href").endswith("clip.mp4?download=1")
            # The alarm panel opens the same drawer.
            page.click("#event-drawer form button")
            page.click(f"#alarm-list li[data-event='{event['id']}'] .event-button", timeout=30_000)
            page.wait_for_function(
                f"() => {{ const v = document.querySelector('{video}');"
                " return v && v.readyState >= 2 && v.duration > 0; }",
                timeout=30_000,
            )
            # The System page shows what the safety service stores and the days it covers.
            page.click("#event-drawer form button")
            page.goto(url + "/#/system", wait_until="domcontentloaded")
            page.wait_for_selector("#storage-card[data-used]", timeout=30_000)
            assert int(page.get_attribute("#storage-card", "data-used")) > 0
            assert "MB" in page.inner_text("#storage-card")
            assert not errors, errors
        finally:
            browser.close()
    # Download: the whole file, as stored.
    with urllib.request.urlopen(url + f"/api/events/{event['id']}/clip.mp4?download=1", timeout=30) as resp:
        assert resp.read() == open(clip["path"], "rb").read()
        assert "attachment" in resp.headers["Content-Disposition"]
    # A range, as a browser seeking asks for it.
    req = urllib.request.Request(
        url + f"/api/events/{event['id']}/clip.mp4", headers={"Range": "bytes=10-19"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 206 and resp.read() == open(clip["path"], "rb").read()[10:20]

    # The acknowledgement goes through the console into the safety store.
    body = json.dumps(
        {"by": "kim", "note": "saw it", "outcome": "false_alarm", "reason": "a worker with a permit"}
    )
    req = urllib.request.Request(
        url + f"/api/alarms/{event['id']}/ack",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert json.loads(resp.read())["stored"]["outcome"] == "false_alarm"
    run = events_cli("--db", str(db), "--json")
    ack = next(r for r in json_lines(run.stdout) if r["id"] == event["id"])["ack"]
    assert (ack["by"], ack["note"], ack["outcome"], ack["reason"]) == (
        "kim",
        "saw it",
        "false_alarm",
        "a worker with a permit",
    )
    assert ack["response"] == pytest.approx(ack["at"] - event["started"], abs=0.01)
    assert clip_system["safety"].alive


def _status_online(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/status", timeout=5) as resp:
            return bool(json.loads(resp.read()).get("broker_online"))
    except (OSError, ValueError):
        return False


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def test_a_full_encoder_queue_drops_clip_frames_and_counts_them():
    """The rules' side of a recording never waits: past its queue, frames are dropped and counted."""
    ev = Event("e1", "cam", "r", "intrusion", "pit", "", "warning", started=100.0, since=99.0, updated=100.0)
    rec = Recording(
        ev, CameraRules(), ClipSpec(pre=2, post=2, fps=5), path=None, start=98.0, cap=158.0, queue_cap=10
    )
    jpeg = b"\xff\xd8"
    for i in range(50):
        assert rec.offer(ClipFrame(98.0 + i * 0.2, jpeg, np.zeros((0, 4)), np.zeros(0, int)))
    assert len(rec.frames) == 10 and rec.dropped == 40
    rec.finish(105.0)  # event ended at 103 + post 2
    assert not rec.offer(ClipFrame(106.0, jpeg, np.zeros((0, 4)), np.zeros(0, int)))  # past the post-roll
