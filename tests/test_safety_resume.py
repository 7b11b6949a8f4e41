"""A restart of `anjeon safety` on its real SQLite store, with an event left open by an earlier run.

A short restart carries the open event on (no second alert); after a long gap
(hours) the old event ends at its last stored update, stored and published like
any end, and a person in the zone now is a new event. The detections are
published by the test on the results bus (a scripted person, on a real JPEG),
so what the rules see is known exactly without a model.
"""

from __future__ import annotations

import threading
import time

import msgpack
import zmq
from conftest import wait_for
from safety_fixtures import decode_event, pit_intrusion, start_safety, stored_events, write_config

from anjeon.protocol import wire
from anjeon.safety.incident import Event
from anjeon.safety.store import EventStore

RULE = "intrusion-pit"


def feed(system, camera: str, jpeg: bytes, inside: threading.Event, stop: threading.Event) -> None:
    """img/CAM/ results at 10/s, capture time now: one person, in the pit while ``inside`` is set."""
    pub = system.ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(f"tcp://127.0.0.1:{system.base + 2}")
    seq = 0
    try:
        while not stop.is_set() and seq < 1200:
            x = 300 if inside.is_set() else 20
            header = wire.FrameHeader(
                camera=camera,
                run="run2",
                seq=seq,
                t_capture=time.time(),
                width=810,
                height=1080,
                size=len(jpeg),
            )
            det = wire.Detection("person", 0.9, [x, 200, x + 60, 400], "Normal")
            result = wire.Result(header, "test", "script", [det])
            pub.send_multipart([wire.topic(wire.IMAGE_PREFIX, camera), result.to_wire(), jpeg])
            seq += 1
            stop.wait(0.1)
    finally:
        pub.close(0)


def seed_open_event(db, updated: float) -> Event:
    """The store as an earlier run left it: an intrusion on `yard` still open, last updated at ``updated``."""
    ev = Event(
        id="ev-left-open",
        camera="yard",
        rule=RULE,
        type="intrusion",
        zone="pit",
        line="",
        severity="warning",
        started=updated - 60,
        since=updated - 61,
        updated=updated,
        peak=1,
        count=1,
        tracks=[1],
        run="run1",
    )
    store = EventStore(db)
    store.save(ev)
    store.close()
    return ev


class Restarted:
    """Broker, the safety service on the seeded store, a subscriber on evt/ and trk/ of `yard`, the feed."""

    def __init__(self, system, tmp_path, bus_jpg, updated: float) -> None:
        self.db = tmp_path / "events.db"
        self.old = seed_open_event(self.db, updated)
        self.last_update = updated  # as stored by the earlier run
        config = write_config(
            tmp_path / "site.yaml", "yard", pit_intrusion("min_duration: 0.5, end_after: 1.0"), self.db
        )
        with open(config, "a") as f:
            f.write("  alerts:\n    - {type: log}\n")
        system.broker()
        self.sub = system.subscriber(b"evt/yard/", b"trk/yard/", b"status/")
        self.safety, _ = start_safety(system, "safety", config)
        wait_for(lambda: "resumed 1 open event" in self.safety.output(), 60, "the open event resumed")
        # Our subscriber is connected once status arrives, and the service is online with the broker.
        self.sub.status_where(lambda s: s.get("subscribers"), 60, "the safety service online")
        self.live: list[tuple[str, str]] = []  # (transition, event id) as published, in order
        self.tripped: list[float] = []  # capture times of results on which the person met the rule
        self.inside, self.stop = threading.Event(), threading.Event()
        self.inside.set()
        self.fed_from = time.time()
        jpeg = open(bus_jpg, "rb").read()
        self.feeder = threading.Thread(
            target=feed, args=(system, "yard", jpeg, self.inside, self.stop), daemon=True
        )
        self.feeder.start()

    def events(self) -> dict[str, dict]:
        """The stored events by id, after taking in what was published meanwhile."""
        while (frames := self.sub.recv(0.05)) is not None:
            if frames[0].startswith(b"evt/yard/"):
                m = decode_event(frames)
                self.live.append((m["transition"], m["event"]["id"]))
            elif frames[0].startswith(b"trk/yard/"):
                m = msgpack.unpackb(frames[1])
                if any(RULE in t["rules"] for t in m["tracks"]):
                    self.tripped.append(m["t_capture"])
        return {e["id"]: e for e in stored_events(self.db)}

    def close(self) -> None:
        self.stop.set()
        self.feeder.join(5)


def test_a_short_restart_carries_the_open_event_on(system, tmp_path, bus_jpg):
    r = Restarted(system, tmp_path, bus_jpg, updated=time.time() - 10)  # the last run stopped 10 s ago
    try:
        wait_for(lambda: r.events() and r.tripped, 60, "the person in the pit, as the rules see it")
        r.inside.clear()  # then gone: the carried-on incident ends
        wait_for(lambda: r.events()[r.old.id]["state"] == "ended", 60, "the resumed event to end")
        wait_for(lambda: r.events() and r.live, 30, "the end on evt/yard/")
        wait_for(lambda: f"ALERT end intrusion {r.old.id}" in r.safety.output(), 30, "the end alert")
    finally:
        r.close()
    stored = r.events()
    assert list(stored) == [r.old.id], stored  # no second event: the same incident went on
    ended = stored[r.old.id]
    assert ended["started"] == r.old.started
    assert ended["ended"] >= r.tripped[0] > r.last_update  # last seen in this run, not at the old update
    # The person of this run joined the carried-on event (an update, no start), then it ended.
    assert {i for _, i in r.live} == {r.old.id} and "start" not in [k for k, _ in r.live], r.live
    assert r.live[-1] == ("end", r.old.id), r.live
    assert "ALERT start" not in r.safety.output()


def test_after_a_long_gap_the_old_event_ends_and_a_new_one_starts(system, tmp_path, bus_jpg):
    r = Restarted(system, tmp_path, bus_jpg, updated=time.time() - 3 * 3600)  # a run of three hours ago

    def new_events() -> list[dict]:
        return [e for i, e in r.events().items() if i != r.old.id]

    try:
        wait_for(new_events, 60, "a new event for the person in the pit now")
        wait_for(lambda: r.events() and len(r.live) >= 2, 30, "the transitions on evt/yard/")
        wait_for(lambda: "ALERT start intrusion" in r.safety.output(), 30, "the new event's alert")
    finally:
        r.close()
    stored = r.events()
    old = stored[r.old.id]
    assert old["state"] == "ended" and old["ended"] == old["updated"] == r.last_update, old
    assert old["started"] == r.old.started
    (new,) = new_events()
    assert new["state"] == "open" and new["started"] >= r.fed_from + 0.5 - 0.05  # after min_duration
    assert [k for k, _ in r.live] == ["end", "start"], r.live  # the old end published before the new start
    assert r.live == [("end", r.old.id), ("start", new["id"])], r.live
    out = r.safety.output()  # alerts go in order per sink: the old event's end came first
    assert f"ALERT end intrusion {r.old.id} on yard" in out and out.count("ALERT start intrusion") == 1
