"""The client library (protocol/client.py): its decoding core, its sync and asyncio subscribers and its
publisher against a real broker process on loopback, the history client against a real ROUTER, and the
runnable examples of docs/python-api.md (so they cannot rot)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest
import zmq
import zmq.asyncio
from conftest import ROOT, free_base_port

from anjeon.protocol import client, messages, sockets, wire
from anjeon.protocol.stats import DropCounter

DOC = ROOT / "docs" / "python-api.md"


def jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


JPEG = jpeg()


def result(camera: str = "cam1", seq: int = 1, run: str = "r1", people: int = 1) -> wire.Result:
    t = time.time()
    frame = wire.FrameHeader(camera, run, seq, t, 64, 48, len(JPEG), ts={"capture": t})
    dets = [wire.Detection("person", 0.9, [1.0, 2.0, 30.0, 40.0]) for _ in range(people)]
    return wire.Result(frame, "w1", "test", dets)


def res_msg(r: wire.Result) -> list[bytes]:
    return [wire.topic(wire.RESULT_PREFIX, r.frame.camera), r.to_wire()]


def img_msg(r: wire.Result, prefix: str = wire.IMAGE_PREFIX) -> list[bytes]:
    return [wire.topic(prefix, r.frame.camera), r.to_wire(), JPEG]


EVENT = {
    "id": "ev-1",
    "camera": "cam1",
    "rule": "keep-out",
    "type": "intrusion",
    "zone": "pit",
    "started": 1000.0,
    "count": 2,
    "tracks": [3, 4],
}


# ---------------------------------------------------------------- the core, no sockets


def test_decoder_yields_typed_messages_of_every_stream():
    d = client.Decoder([client.RESULTS, client.PICTURES, client.RENDERS, client.EVENTS, client.TRACKS])
    r = result()
    got = d.decode(res_msg(r))
    assert isinstance(got, wire.Result) and got.frame.camera == "cam1" and got.detections[0].cls == "person"
    pic = d.decode(img_msg(r))
    assert isinstance(pic, client.Picture) and pic.jpeg == JPEG and not pic.rendered and pic.camera == "cam1"
    ann = d.decode(img_msg(r, wire.RENDER_PREFIX))
    assert isinstance(ann, client.Picture) and ann.rendered
    ev = d.decode(messages.encode_event("start", {**EVENT, "ack": {"by": "kim"}}))
    assert isinstance(ev, client.EventMessage) and ev.transition == "start"
    assert ev.event.type == "intrusion" and ev.event.tracks == (3, 4) and ev.event.ended is None
    assert ev.event.extra == {"ack": {"by": "kim"}}
    assert ev.event.to_dict()["zone"] == "pit" and ev.event.to_dict()["ack"] == {"by": "kim"}
    track = {"id": 7, "box": [1, 2, 3, 4], "zones": ["pit"], "rules": ["keep-out"], "confirmed": True}
    tr = d.decode(messages.encode_tracks("cam1", "r1", 5, 1000.0, [track]))
    assert isinstance(tr, client.Tracks) and tr.seq == 5
    assert tr.tracks == (client.Track(7, (1.0, 2.0, 3.0, 4.0), ("pit",), ("keep-out",), True),)
    assert tr.tracks[0].to_dict() == {**track, "box": [1.0, 2.0, 3.0, 4.0]}
    assert d.drops.snapshot() == {}


def test_decoder_counts_every_drop_by_reason():
    drops = DropCounter(client.log)
    d = client.Decoder([client.RESULTS, client.PICTURES, client.STATUS], drops=drops)
    r = result()
    assert d.decode([b"evt/cam1/", b"x"]) is None  # not subscribed to by this decoder
    assert d.decode([b"status/extra", b"x"]) is None  # status is one exact topic
    assert d.decode([b"res/cam1/", b"\xc1"]) is None  # not msgpack
    assert d.decode([b"res/cam1/", r.to_wire(), b"extra"]) is None  # wrong number of parts
    assert d.decode([b"img/cam1/", r.to_wire(), b"GIF89a"]) is None
    assert d.decode([b"res/cam1/", msgpack.packb({"v": 2, "kind": "result"})]) is None
    assert d.decode([]) is None
    assert drops.snapshot() == {"unknown_topic": 3, "malformed": 2, "not_jpeg": 1, "bad_version": 1}


def test_newest_only_applies_the_one_freshness_rule_per_stream_and_camera():
    d = client.Decoder([client.RESULTS, client.PICTURES], newest_only=True)
    r1, r2 = result(seq=1), result(seq=2)
    assert d.decode(res_msg(r2)) is not None
    assert d.decode(res_msg(r1)) is None  # older
    assert d.decode(res_msg(r2)) is None  # equal: a duplicate is never newer
    assert d.decode(img_msg(r1)) is not None  # pictures have their own reference
    assert d.decode(res_msg(result("cam2", seq=1))) is not None  # and so has every camera
    big = result(seq=2**62)
    assert d.decode(res_msg(big)) is None  # a forged jump
    assert d.drops.snapshot() == {"stale": 2, "implausible": 1}
    assert d.drops.by_camera() == {"cam1": {"stale": 2, "implausible": 1}}
    plain = client.Decoder([client.RESULTS])
    assert plain.decode(res_msg(r2)) is not None and plain.decode(res_msg(r2)) is not None


def test_publisher_never_blocks_and_a_closed_socket_is_a_clean_false():
    ctx = zmq.Context()
    pub = client.Publisher(f"tcp://127.0.0.1:{free_base_port()}", ctx=ctx)  # nobody there
    try:
        started = time.monotonic()
        assert all(pub.send([b"evt/cam1/", b"x" * 100_000], reason="event_backpressure") for _ in range(100))
        assert time.monotonic() - started < 5
        pub.socket.close(0)
        assert not pub.send([b"evt/cam1/", b"x"], reason="event_backpressure")
        assert pub.drops.snapshot() == {}  # ENOTSOCK: closed, a clean exit, not an error to count
    finally:
        pub.close()
        ctx.destroy(0)


def test_camera_topics_end_with_the_separator():
    assert client.RESULTS.topics(["cam1"]) == [b"res/cam1/"]
    assert client.RESULTS.topics([]) == [b"res/"]
    assert client.STATUS.topics(["cam1"]) == [b"status/"]
    with pytest.raises(wire.ProtocolError):
        client.RESULTS.topics(["bad/cam"])


def test_socket_errors_other_than_a_closed_socket_are_counted_once_per_kind(caplog):
    drops = DropCounter(client.log)
    assert sockets.count_error(drops, zmq.ZMQError(zmq.ETERM), "x")
    assert sockets.count_error(drops, zmq.ZMQError(zmq.ENOTSOCK), "x")
    assert drops.snapshot() == {}
    for _ in range(3):
        assert not sockets.count_error(drops, zmq.ZMQError(zmq.EHOSTUNREACH), "sending")
    assert drops.snapshot() == {"zmq_EHOSTUNREACH": 3}
    assert sum("zmq EHOSTUNREACH" in r.getMessage() for r in caplog.records) == 1


# ---------------------------------------------------------------- against a real broker


def publish_until(pub: client.Publisher, batch: list[list[bytes]], done, timeout: float, what: str) -> None:
    """Publish ``batch`` every 50 ms until ``done()``: a subscription reaches the publisher asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frames in batch:
            assert pub.send(frames)
        if done():
            return
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_sync_subscriber_takes_only_its_cameras_streams_and_typed_status(system):
    system.broker()
    pub = client.Publisher(system.broker_url, ctx=system.ctx)
    sub = client.Subscriber(
        system.broker_url, [client.RESULTS, client.EVENTS, client.STATUS], ["cam1"], ctx=system.ctx
    )
    got: list[client.Message] = []
    seq = iter(range(1, 10**6))

    def done() -> bool:
        got.extend(sub.drain(0.05, 100))
        kinds = {type(m) for m in got}
        return {wire.Result, client.EventMessage, client.Status} <= kinds

    try:
        publish_until(
            pub,
            [
                res_msg(result("cam1", next(seq))),
                res_msg(result("cam10", next(seq))),  # cam1's prefix without the separator would match
                img_msg(result("cam1", next(seq))),  # not subscribed
                messages.encode_event("start", EVENT),
                messages.encode_event("start", {**EVENT, "camera": "cam10"}),
            ],
            done,
            20,
            "a result, an event and a status",
        )
    finally:
        sub.close()
        pub.close()
    cams = {m.frame.camera for m in got if isinstance(m, wire.Result)}
    cams |= {m.event.camera for m in got if isinstance(m, client.EventMessage)}
    assert cams == {"cam1"}
    status = next(m for m in got if isinstance(m, client.Status))
    assert status.broker and status.uptime >= 0 and status.snapshot["broker"] == status.broker
    assert sub.drops.snapshot() == {}


def test_sync_subscriber_adds_and_removes_cameras_and_iterates_until_stopped(system):
    system.broker()
    pub = client.Publisher(system.broker_url, ctx=system.ctx)
    sub = client.results(system.broker_url, ["cam1"], ctx=system.ctx)
    seen: list[str] = []
    try:
        sub.add_camera("cam2")
        publish_until(
            pub,
            [res_msg(result("cam2", len(seen) + 1))],
            lambda: any(r.frame.camera == "cam2" for r in sub.drain(0.05)),
            20,
            "a result of the added camera",
        )
        sub.remove_camera("cam2")
        sub.remove_camera("cam1")  # no camera left: nothing, not every camera
        assert sub.cameras == [] and not sub.all_cameras
        sub.add_camera("cam1")
        time.sleep(0.5)  # the (un)subscriptions travel to the publisher
        stopper = threading.Timer(1.5, sub.stop)
        stopper.start()
        for n in range(60):
            pub.send(res_msg(result("cam2", 1000 + n)))
            pub.send(res_msg(result("cam1", 1000 + n)))
            time.sleep(0.02)
        seen = [r.frame.camera for r in sub]  # ends when stop() is called
        stopper.join()
    finally:
        sub.close()
        pub.close()
    assert seen and set(seen) == {"cam1"}


def test_async_subscriber_same_core_newest_only(system):
    system.broker()
    pub = client.Publisher(system.broker_url, ctx=system.ctx)
    actx = zmq.asyncio.Context()

    async def main() -> tuple[list[client.Message], dict[str, int]]:
        got: list[client.Message] = []
        async with client.AsyncSubscriber(
            system.broker_url, [client.PICTURES, client.TRACKS], newest_only=True, ctx=actx
        ) as sub:
            deadline = time.monotonic() + 20
            newest = result("cam1", seq=5)
            track = {"id": 1, "box": [0, 0, 1, 1]}
            while time.monotonic() < deadline:
                pub.send(img_msg(newest))
                pub.send(img_msg(result("cam1", seq=4)))  # older: dropped once the newer one was taken
                pub.send(messages.encode_tracks("cam1", "r1", 5, 1.0, [track]))
                got.extend(await sub.drain(0.05, 100))
                if sub.drops["stale"] >= 2 and any(isinstance(m, client.Tracks) for m in got):
                    break
            first = await sub.recv(timeout=0.01)  # None or one more message: never raises on a timeout
            assert first is None or isinstance(first, (client.Picture, client.Tracks))
            return got, sub.drops.snapshot()

    try:
        got, drops = asyncio.run(main())
    finally:
        pub.close()
        actx.destroy(0)
    pictures = [m for m in got if isinstance(m, client.Picture)]
    assert [p.frame.seq for p in pictures] == [5]  # the newest only, once
    assert pictures[0].jpeg == JPEG
    assert drops["stale"] >= 2 and set(drops) == {"stale"}


# ---------------------------------------------------------------- history against a real ROUTER


class FakeHistory:
    """A real ROUTER on loopback answering like the safety service (docs/protocol.md, "The history socket")."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.queries: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        pages = {
            "": {"events": [EVENT, {"id": "broken"}], "next": "c2", "total": 3},
            "c2": {"events": [{**EVENT, "id": "ev-0"}, {**EVENT, "id": "ev-00"}], "next": None, "total": 3},
        }
        while not self._stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, raw = self.sock.recv_multipart()
            q = msgpack.unpackb(raw)
            self.queries.append(q)
            if q["kind"] == "events_query" and q.get("cursor", "") in pages:
                answer = {"v": 1, "kind": "events", **pages[q.get("cursor", "")]}
            elif q["kind"] == "ack":
                answer = {"v": 1, "kind": "acked", "event": {**EVENT, "ack": {"by": q["by"]}}}
            else:
                answer = {"v": 1, "kind": "error", "error": "no such cursor"}
            self.sock.send_multipart([ident, msgpack.packb(answer)])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close(0)


def test_history_pages_ack_and_errors_sync_and_async():
    ctx = zmq.Context()
    fake = FakeHistory(ctx)
    try:
        h = client.History(fake.endpoint, ctx=ctx, timeout=3)
        page = h.page({"limit": 2, "camera": None})
        assert (
            [e.id for e in page.events] == ["ev-1"] and page.next == "c2" and page.total == 3 and page.paged
        )
        assert h.drops.snapshot() == {"malformed": 1}  # the broken event alone
        assert "camera" not in fake.queries[-1]  # None values are left out
        assert [e.id for e in h.events({})] == ["ev-1", "ev-0", "ev-00"]
        acked = h.ack("ev-1", "kim", note="seen")
        assert acked.extra["ack"] == {"by": "kim"} and fake.queries[-1]["note"] == "seen"
        with pytest.raises(client.HistoryError, match="no such cursor"):
            h.page({"cursor": "zz"})
        with pytest.raises(TimeoutError):
            client.History("tcp://127.0.0.1:1", ctx=ctx, timeout=0.2).page({})

        async def main() -> list[str]:
            actx = zmq.asyncio.Context()
            try:
                ah = client.AsyncHistory(fake.endpoint, ctx=actx, timeout=3)
                ids = [e.id async for e in ah.events({})]
                assert (await ah.ack("ev-1", "lee")).extra["ack"] == {"by": "lee"}
                return ids
            finally:
                actx.destroy(0)

        assert asyncio.run(main()) == ["ev-1", "ev-0", "ev-00"]
    finally:
        fake.close()
        ctx.destroy(0)
    assert client.history_endpoint("tcp://10.0.0.5:6000") == "tcp://10.0.0.5:6005"
    assert client.history_endpoint("tcp://10.0.0.5", "tcp://h:1") == "tcp://h:1"


# ---------------------------------------------------------------- the examples of docs/python-api.md


def doc_example(name: str) -> str:
    """The code block of docs/python-api.md that follows the line naming ``name``."""
    text = DOC.read_text()
    match = re.search(rf"`{re.escape(name)}`[^\n]*\n+```python\n(.*?)```", text, re.S)
    assert match, f"docs/python-api.md has no python block after `{name}`"
    return match.group(1)


def run_example(tmp_path: Path, name: str, broker: str) -> subprocess.Popen:
    script = tmp_path / name
    script.write_text(doc_example(name))
    return subprocess.Popen(
        [sys.executable, str(script), broker],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def lines_until(proc: subprocess.Popen, pub: client.Publisher, batch, want: int, timeout: float) -> list[str]:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(lines) < want and proc.poll() is None:
        for frames in batch():
            pub.send(frames)
        time.sleep(0.1)
    proc.kill()
    proc.wait(5)
    reader.join(5)
    return lines


def test_example_print_every_intrusion(system, tmp_path):
    system.broker()
    pub = client.Publisher(system.broker_url, ctx=system.ctx)
    proc = run_example(tmp_path, "intrusions.py", system.broker_url)
    n = iter(range(10**6))

    def batch() -> list[list[bytes]]:
        i = next(n)
        return [
            messages.encode_event("start", {**EVENT, "id": f"ev-{i}"}),
            messages.encode_event("update", {**EVENT, "id": f"ev-{i}"}),  # not a new intrusion
            messages.encode_event("start", {**EVENT, "id": f"fall-{i}", "type": "fall"}),
        ]

    try:
        lines = lines_until(proc, pub, batch, 2, 30)
    finally:
        pub.close()
    assert len(lines) >= 2, lines
    assert all(
        re.fullmatch(r"\S+ cam1: intrusion in zone pit \(rule keep-out, 2 people\)\n", ln) for ln in lines
    ), lines


def test_example_save_every_frame_with_a_person(system, tmp_path):
    system.broker()
    pub = client.Publisher(system.broker_url, ctx=system.ctx)
    proc = run_example(tmp_path, "people.py", system.broker_url)
    n = iter(range(1, 10**6))

    def batch() -> list[list[bytes]]:
        i = next(n)
        return [img_msg(result("cam1", 2 * i, people=1)), img_msg(result("cam1", 2 * i + 1, people=0))]

    try:
        lines = lines_until(proc, pub, batch, 3, 30)
    finally:
        pub.close()
    saved = sorted((tmp_path / "people").glob("*.jpg"))
    assert len(saved) >= 3 and len(lines) >= 3, lines
    assert all(int(p.stem.rsplit("-", 1)[1]) % 2 == 0 for p in saved)  # only the frames with a person
    assert saved[0].read_bytes() == JPEG
