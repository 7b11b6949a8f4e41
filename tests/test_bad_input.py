"""Bad input anywhere: counted, logged once, dropped; nothing crashes and good frames keep flowing."""

from __future__ import annotations

import os
import time

import msgpack
import zmq
from conftest import wait_for


def header(**over) -> dict:
    h = {
        "v": 1,
        "kind": "frame",
        "camera": "evil",
        "run": "r",
        "seq": 1,
        "t_capture": time.time(),
        "width": 8,
        "height": 8,
        "size": 0,
        "codec": "jpeg",
        "ts": {},
    }
    h.update(over)
    return h


def frame_msg(payload: bytes, **over) -> list[bytes]:
    return [msgpack.packb(header(size=len(payload), **over)), payload]


def test_malformed_messages_are_counted_and_dropped(system, bus_jpg):
    broker = system.broker("--max-frame-bytes", "400000")
    worker = system.worker("w1", "null")
    edge = system.edge("edge1", f"cam={bus_jpg}", "gone=/nonexistent/clip.mp4", fps=5)
    watcher = system.start("watch", "watch", "--broker", system.broker_url, "--json", "--name", "watcher")
    sub = system.subscriber()
    sub.results(2, timeout=60, where=lambda r: r["camera"] == "cam")

    push = system.socket(zmq.PUSH, 0)
    fake_jpeg = b"\xff\xd8" + os.urandom(2000)  # starts like a JPEG, decodes to nothing
    bad = [
        [b"\x00garbage", b"\xff\xd8"],  # header not msgpack
        [msgpack.packb(header())],  # one part only
        frame_msg(b"\xff\xd8xx", v=99),  # unknown version
        frame_msg(b"\xff\xd8xx", camera="a/b"),  # camera id that would break topics
        frame_msg(b"\xff\xd8" + b"x" * 500_000),  # over --max-frame-bytes
        [msgpack.packb(header(size=5)), b"\xff\xd8xxxxxxx"],  # size lies
        frame_msg(b"\x89PNG not a jpeg"),
        frame_msg(fake_jpeg, camera="corrupt"),  # passes the broker, fails to decode in the worker
    ]
    for msg in bad * 3:
        push.send_multipart(msg)
    control = system.socket(zmq.DEALER, 4)
    control.send(b"\x93not a heartbeat")
    control.send(msgpack.packb({"v": 1, "kind": "hb"}))  # no proc, role, info
    fake_worker = system.socket(zmq.DEALER, 1)
    fake_worker.send(msgpack.packb({"v": 1, "kind": "ready", "proc": "x", "credit": 0}))
    fake_worker.send(b"junk")
    # Garbage on the results bus reaches every subscriber: they must shrug it off.
    pub = system.socket(zmq.PUB, 2)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        pub.send_multipart([b"res/cam/", b"\xc1 not a result"])
        pub.send_multipart([b"res/cam/"])
        time.sleep(0.1)

    def counted(s):
        drops = s.get("drops", {})
        wanted = {"malformed", "bad_version", "bad_camera_id", "oversized", "size_mismatch", "not_jpeg"}
        worker_drops = s.get("cameras", {}).get("corrupt", {}).get("drops", {}).get("worker", {})
        watch = [p for p in s.get("subscribers", {}).values() if p["name"] == "watcher"]
        return (
            wanted <= set(drops)
            and worker_drops.get("corrupt_jpeg", 0) >= 1
            and watch
            and watch[0]["drops"].get("malformed", 0) >= 1
        )

    sub.status_where(counted, 20, "every kind of bad input counted")
    assert sub.status["drops"]["oversized"] == 3
    # The camera that cannot be opened is reported with a reason, the other one streams on.
    gone = sub.status["cameras"]["gone"]
    assert gone["state"] == "error" and "does not exist" in gone["error"]
    after = time.time()
    sub.results(3, timeout=30, where=lambda r: r["camera"] == "cam" and r["_received"] > after)
    for proc in (broker, worker, edge, watcher):
        assert proc.alive, proc.output()
    # Logged once per kind, not once per message.
    log = broker.output()
    assert log.count("dropping bad version") == 1 and log.count("dropping oversized") == 1
    assert "Traceback" not in log + worker.output() + watcher.output()
    wait_for(lambda: '"camera": "cam"' in watcher.output(), 10, "watch printing results")
