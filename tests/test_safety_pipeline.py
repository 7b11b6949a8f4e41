"""The safety service in the real pipeline: broker, the real model, an edge playing the sample video.

One long run (the model is slow to load on a CPU) checks: intrusion events
start and end as people walk through a zone drawn over the walkway; no fall
event (the static yellow object the model labels Fall raises nothing); every
event has its annotated snapshot; events arrive live on evt/CAM/ and over the
history socket; `anjeon events` lists them as JSON and CSV; and a restart of
`anjeon safety` resumes open events instead of duplicating them.
"""

from __future__ import annotations

import time

import pytest
from conftest import SAMPLE, wait_for
from safety_fixtures import decode_event, events_cli, json_lines, start_safety, stored_events, write_config

RULES = """
zones:
  walkway: [[0.42, 0.32], [0.78, 0.32], [0.78, 0.66], [0.42, 0.66]]
rules:
  - {type: intrusion, zone: walkway, min_duration: 1.0, end_after: 1.5}
  - {type: fall}  # default min_duration: 2 s down
"""


@pytest.mark.model
@pytest.mark.timeout(900)
def test_intrusion_on_sample_video_no_falls_snapshots_bus_history_restart(system, tmp_path):
    assert SAMPLE.exists(), f"the sample video {SAMPLE} is missing (see README.md)"
    db = tmp_path / "events.db"
    config = write_config(tmp_path / "site.yaml", "walk", RULES, db)
    system.broker()
    system.worker("w1", "person", "--device", "cpu")
    safety, history_port = start_safety(system, "safety-1", config)
    sub = system.subscriber(b"evt/")
    time.sleep(1.0)  # let the subscription reach the publisher before events flow
    # Looped: on a slow machine the first part can outlast the 80 s clip, and the restart needs people walking.
    system.edge("edge", f"walk={SAMPLE}", fps=5, extra=("--loop",))

    live: list[dict] = []

    def drain(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            frames = sub.recv(0.1)
            if frames and frames[0].startswith(b"evt/walk/"):
                live.append(decode_event(frames))

    def ended_intrusions() -> list[dict]:
        drain(0.5)
        return [e for e in stored_events(db) if e["type"] == "intrusion" and e["state"] == "ended"]

    # People cross the walkway almost all the time: at a good result rate an incident can last minutes.
    wait_for(ended_intrusions, 400, "an intrusion event that started and ended")
    stored = stored_events(db)
    assert not [e for e in stored if e["type"] == "fall"], stored
    for ev in stored:
        assert ev["snapshot"] and (tmp_path / "snapshots" / "walk" / f"{ev['id']}.jpg").stat().st_size > 1000
        assert ev["ended"] is None or ev["ended"] >= ev["started"]
    ended = ended_intrusions()[0]
    assert ended["duration"] >= 0 and ended["peak"] >= 1 and ended["tracks"] != "[]"

    # Live on the bus: a start and an end for the same event id.
    kinds = {(m["transition"], m["event"]["id"]) for m in live}
    assert ("start", ended["id"]) in kinds and ("end", ended["id"]) in kinds, live

    # History over ZeroMQ and the CLI, JSON and CSV.
    from anjeon.protocol import client

    remote = client.History(f"tcp://127.0.0.1:{history_port}", ctx=system.ctx).events(
        {"camera": "walk", "rule": "intrusion"}
    )
    assert ended["id"] in {e.id for e in remote}
    as_json = json_lines(events_cli("--db", str(db), "--camera", "walk", "--json").stdout)
    assert ended["id"] in {e["id"] for e in as_json}
    as_csv = events_cli("--db", str(db), "--rule", "intrusion", "--csv").stdout.splitlines()
    assert as_csv[0].startswith("id,camera,rule") and any(ended["id"] in line for line in as_csv[1:])
    assert events_cli("--history", f"tcp://127.0.0.1:{history_port}", "--json").returncode == 0

    # Restart: wait for an open intrusion, stop the service, start it again on the same store.
    wait_for(lambda: [e for e in stored_events(db) if e["state"] == "open"], 120, "an open event")
    assert safety.stop() == 0
    before = {e["id"]: e for e in stored_events(db)}
    safety2, _ = start_safety(system, "safety-2", config)
    wait_for(lambda: "resumed" in safety2.output(), 60, "the restarted service to resume open events")

    def moved_on() -> bool:
        # The resumed service is working on: a new event, an update to a resumed one (people keep walking
        # through the looped clip, so an open intrusion may rightly never end), or every resumed one ended.
        now = {e["id"]: e for e in stored_events(db)}
        return (
            len(now) > len(before)
            or any(now[i]["updated"] != e["updated"] for i, e in before.items())
            or all(now[i]["state"] == "ended" for i in before)
        )

    wait_for(moved_on, 120, "the resumed events to move on")
    after = {e["id"]: e for e in stored_events(db)}
    assert set(before) <= set(after), "a stored event was lost"
    for rule in {e["rule"] for e in after.values()}:
        assert len([e for e in after.values() if e["rule"] == rule and e["state"] == "open"]) <= 1
    assert not [e for e in after.values() if e["type"] == "fall"]
    assert safety2.alive, safety2.output()
