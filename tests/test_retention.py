"""Retention and a full disk.

1. The disk cap deletes the oldest clips first, then the oldest snapshots, and never the event rows of
   the last `keep_events_days`; age limits apply per kind (a real store with real files).
2. A real `anjeon safety` whose store lives on a small tmpfs made by the test: when the disk fills, the
   rules still publish every event on the bus and the alerts still go out, the failure shows in the
   service's storage figures, and storing resumes by itself when space returns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import msgpack
import pytest
from conftest import free_base_port, wait_for
from evidence_fixtures import ended_event, scripted_camera
from safety_fixtures import pit_intrusion, start_safety, stored_events, write_config

from anjeon.config.evidence import RetentionSpec
from anjeon.safety.retention import Retention
from anjeon.safety.store import ClipRecord, EventStore

DAY = 86400.0
NOW = 1_790_000_000.0


def make_evidence(tmp: Path, n: int = 20) -> tuple[EventStore, list[dict]]:
    """n ended events, one every 2 days back from NOW, each with a 100 kB snapshot and a 300 kB clip file."""
    store = EventStore(tmp / "events.db")
    made = []
    for i in range(n):
        started = NOW - (n - i) * 2 * DAY
        ev = ended_event(started, 5)
        snap = tmp / "snapshots" / "gate" / f"{ev.id}.jpg"
        clip = tmp / "clips" / "gate" / f"{ev.id}.mp4"
        for path, size in ((snap, 100_000), (clip, 300_000)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(size))
        ev.snapshot = str(snap)
        store.save(ev)
        store.set_clip(ClipRecord(ev.id, "ready", str(clip), started - 10, started + 15, 100, 0, 300_000))
        made.append({"id": ev.id, "started": started, "snap": snap, "clip": clip})
    return store, made


def test_disk_cap_deletes_oldest_clips_then_snapshots_never_recent_event_rows(tmp_path):
    store, made = make_evidence(tmp_path)
    used = Retention(RetentionSpec(), store.path, tmp_path / "snapshots", tmp_path / "clips").used()
    total = sum(used.values())
    # Cap 1: room for everything but ~5 clips -> exactly the 5 oldest clips go, no snapshot.
    cap = total - 5 * 300_000 + 1000
    r = Retention(
        RetentionSpec(max_disk_gb=cap / 1e9, keep_events_days=10),
        store.path,
        tmp_path / "snapshots",
        tmp_path / "clips",
    )
    done = r.check(store, now=NOW)
    assert (done.clips, done.snapshots, done.events) == (5, 0, 0)
    assert [m["clip"].exists() for m in made] == [False] * 5 + [True] * 15
    assert all(m["snap"].exists() for m in made)
    assert sum(r.used().values()) <= cap
    # Cap 2: room for the store and about 3 snapshots -> every clip, then the oldest snapshots, no rows.
    r.spec = RetentionSpec(max_disk_gb=(r.used()["events"] + 350_000) / 1e9, keep_events_days=10)
    done = r.check(store, now=NOW)
    assert all(not m["clip"].exists() for m in made)
    kept = [m["snap"].exists() for m in made]
    assert kept == [False] * (20 - sum(kept)) + [True] * sum(kept) and 1 <= sum(kept) <= 4  # newest kept
    assert done.events == 0 and len(list(store.iterate(store_query()))) == 20
    # Cap 3: nothing fits -> every snapshot, then event rows, but never one of the last 10 days.
    r.spec = RetentionSpec(max_disk_gb=1000 / 1e9, keep_events_days=10)
    r.check(store, now=NOW)
    assert not any(m["snap"].exists() for m in made)
    left = {e["id"] for e in store.iterate(store_query())}
    recent = {m["id"] for m in made if m["started"] >= NOW - 10 * DAY}
    assert recent and left == recent  # the rows of the last keep_events_days stay, the older went
    clip_states = {r[0] for r in store.db.execute("SELECT state FROM clips")}
    assert clip_states == {"deleted"}
    report = r.report()
    assert report["deleted"]["clips"] == 20 and report["deleted"]["snapshots"] == 20
    assert report["events"] == len(left) and report["days"] > 0


def test_age_limits_per_kind(tmp_path):
    store, made = make_evidence(tmp_path)
    r = Retention(
        RetentionSpec(clips_days=10, snapshots_days=20, events_days=30),
        store.path,
        tmp_path / "snapshots",
        tmp_path / "clips",
    )
    r.check(store, now=NOW)
    for m in made:
        age = (NOW - m["started"]) / DAY
        assert m["clip"].exists() == (age <= 10)
        assert m["snap"].exists() == (age <= 20)
    ages = sorted((NOW - e["started"]) / DAY for e in store.iterate(store_query()))
    assert ages and max(ages) <= 30


def store_query():
    from anjeon.safety.store import Query

    return Query()


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem says it is full."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    assert shutil.disk_usage(folder).free < 64 * 1024
    return filler


def storage(system, port: int) -> dict:
    from anjeon.protocol import client
    from anjeon.safety.bus import STORAGE, STORAGE_QUERY

    reply, _ = client.History(f"tcp://127.0.0.1:{port}", ctx=system.ctx, timeout=10).request(
        STORAGE_QUERY, {}, STORAGE
    )
    return reply


def write_errors_metric(port: int) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("anjeon_safety_store_write_errors_total")
    ]
    assert values, "anjeon_safety_store_write_errors_total is not exported"
    return values[0]


def test_a_full_disk_never_stops_rules_or_alerts_and_storage_resumes(system, small_disk, bus_jpg):
    db = small_disk / "events.db"
    config = write_config(
        small_disk.parent / "site.yaml",
        "yard",
        pit_intrusion("min_duration: 0.3, end_after: 0.8"),
        db,
    )
    with open(config, "a") as f:
        f.write("  alerts:\n    - {type: log}\n  clips: {pre: 1, post: 1, fps: 2}\n")
    system.broker()
    metrics_port = free_base_port()
    safety, port = start_safety(system, "safety", config, extra=("--metrics-port", str(metrics_port)))
    wait_for(lambda: "history on" in safety.output(), 60, "the safety service to start")
    events = system.subscriber(b"evt/")
    time.sleep(1.0)
    stop = threading.Event()
    feeder = threading.Thread(
        target=scripted_camera,
        args=(system, "yard", open(bus_jpg, "rb").read(), stop, lambda s: s % 4.0 < 2.0),
        daemon=True,
    )  # 2 s in, 2 out
    feeder.start()
    try:
        wait_for(lambda: stored_events(db), 60, "a first stored event")
        filler = fill(small_disk)
        stored_when_full = {e["id"] for e in stored_events(db)}
        # While full: new events still reach the bus and the alert sink.
        seen: set[str] = set()

        def published() -> bool:
            frames = events.recv(1.0)
            if frames and frames[0].startswith(b"evt/"):
                msg = msgpack.unpackb(frames[1])
                if msg["transition"] == "start":
                    seen.add(msg["event"]["id"])
            return len(seen - stored_when_full) >= 2

        wait_for(published, 90, "two events published while the disk is full")
        wait_for(
            lambda: storage(system, port)["write_errors"] > 0, 60, "the write failure in the storage figures"
        )
        failure = storage(system, port)
        assert failure["last_error"], failure
        assert write_errors_metric(metrics_port) > 0  # what IT's monitoring sees
        assert safety.alive
        alerts_full = safety.output().count("ALERT start")
        # Space returns: storing resumes by itself.
        filler.unlink()
        wait_for(
            lambda: len({e["id"] for e in stored_events(db)} - stored_when_full) >= 1,
            90,
            "an event stored after space returned",
        )
    finally:
        stop.set()
        feeder.join(5)
    assert alerts_full >= 3 and safety.alive
    print(f"full disk: {failure['write_errors']} write error(s), last: {failure['last_error'][:120]}")
