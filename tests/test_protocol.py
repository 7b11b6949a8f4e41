"""Wire format v1: round trips, and every way a header can be wrong."""

import logging

import msgpack
import pytest

from anjeon.edge.sources import mask_url
from anjeon.protocol import wire
from anjeon.protocol.endpoints import CONTROL, FRAMES_IN, RESULTS_OUT, AddressError, BrokerAddress
from anjeon.protocol.freshness import IMPLAUSIBLE, NEWER, STALE, FreshnessGate, FreshnessRule, StreamFreshness
from anjeon.protocol.stats import DropCounter


def frame(**over):
    base = dict(
        camera="gate",
        run="r1",
        seq=7,
        t_capture=1000.5,
        width=640,
        height=480,
        size=1234,
        edge="e1",
        age=0.01,
        ts={"capture": 1000.5, "edge_send": 1000.52},
    )
    base.update(over)
    return wire.FrameHeader(**base)


def raw(**fields):
    h = {
        "v": 1,
        "kind": "frame",
        "camera": "gate",
        "run": "r1",
        "seq": 1,
        "t_capture": 1.0,
        "width": 2,
        "height": 2,
        "size": 3,
        "codec": "jpeg",
        "ts": {},
    }
    h.update(fields)
    return msgpack.packb({k: v for k, v in h.items() if v is not ...})


def test_frame_header_round_trip():
    h = frame()
    back = wire.FrameHeader.from_wire(h.to_wire())
    assert back == h


def test_result_round_trip_and_json_form():
    dets = [wire.Detection("person", 0.9, [1, 2, 30, 40], label="Fall")]
    r = wire.Result(frame=frame(grant="g1"), worker="w1", model="person", detections=dets)
    back = wire.Result.from_wire(r.to_wire())
    assert back.detections == [wire.Detection("person", 0.9, [1.0, 2.0, 30.0, 40.0], "Fall")]
    assert back.worker == "w1" and back.frame.seq == 7 and back.frame.grant == ""  # grants stay inside
    j = back.to_json(now=1001.0)
    assert j["latency_ms"] == 500.0
    assert j["detections"][0] == {
        "class": "person",
        "label": "Fall",
        "confidence": 0.9,
        "box": [1.0, 2.0, 30.0, 40.0],
    }
    assert {"camera", "seq", "t_capture", "ts", "latency_ms", "detections"} <= set(j)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\xc1\xc1 not msgpack", "malformed"),
        (msgpack.packb([1, 2, 3]), "malformed"),
        (msgpack.packb({"v": 2, "kind": "frame"}), "bad_version"),
        (msgpack.packb({"kind": "frame"}), "bad_version"),
        (msgpack.packb({"v": 1, "kind": "status"}), "bad_kind"),
        (b"\x80" + b"x" * (wire.MAX_HEADER_BYTES + 1), "oversized_header"),
        (raw(camera="a/b"), "bad_camera_id"),
        (raw(camera=""), "bad_camera_id"),
        (raw(camera="x" * 65), "bad_camera_id"),
        (raw(camera=5), "bad_camera_id"),
        (raw(codec="png"), "bad_codec"),
        (raw(seq="7"), "malformed"),
        (raw(seq=True), "malformed"),
        (raw(seq=-1), "malformed"),
        (raw(width=...), "malformed"),
        (raw(ts=[1, 2]), "malformed"),
    ],
)
def test_bad_headers_name_their_reason(data, reason):
    with pytest.raises(wire.ProtocolError) as info:
        wire.FrameHeader.from_wire(data)
    assert info.value.reason == reason


def test_camera_topics_are_terminated():
    assert wire.topic(wire.RESULT_PREFIX, "cam1") == b"res/cam1/"
    assert not wire.topic(wire.RESULT_PREFIX, "cam10").startswith(wire.topic(wire.RESULT_PREFIX, "cam1"))
    assert wire.camera_of_topic(b"res/cam1/") == "cam1"
    assert wire.camera_of_topic(b"res/cam1") is None
    assert wire.camera_of_topic(b"status/") is None


@pytest.mark.parametrize(
    "text, host, port",
    [
        ("tcp://10.0.0.5", "10.0.0.5", 5550),
        ("tcp://broker.site:6000", "broker.site", 6000),
        ("localhost:7000", "localhost", 7000),
        ("tcp://127.0.0.1:5550/", "127.0.0.1", 5550),
    ],
)
def test_broker_address_parse(text, host, port):
    a = BrokerAddress.parse(text)
    assert (a.host, a.base_port) == (host, port)
    assert a.endpoint(FRAMES_IN) == f"tcp://{host}:{port}"
    assert a.endpoint(RESULTS_OUT) == f"tcp://{host}:{port + 3}"
    assert a.endpoint(CONTROL) == f"tcp://{host}:{port + 4}"


@pytest.mark.parametrize("text", ["http://x", "tcp://", "tcp://host:port", "tcp://h:70000", "tcp://h:65535"])
def test_broker_address_rejects(text):
    with pytest.raises(AddressError):
        BrokerAddress.parse(text)


@pytest.mark.parametrize(
    "url, masked",
    [
        ("rtsp://admin:s3cret@10.0.0.7:554/stream", "rtsp://admin:***@10.0.0.7:554/stream"),
        ("camera rtsp://u:p@h/x failed", "camera rtsp://u:***@h/x failed"),
        ("rtsp://10.0.0.7/stream", "rtsp://10.0.0.7/stream"),
        ("http://user@host/mjpg", "http://***@host/mjpg"),  # a lone user info may be a token: all hidden
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_drop_counter_logs_once_per_reason(caplog):
    drops = DropCounter(logging.getLogger("t"))
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            drops.drop("too_old", "detail", camera="a")
        drops.drop("corrupt_jpeg", camera="b")
    assert drops.snapshot() == {"too_old": 5, "corrupt_jpeg": 1}
    assert drops.by_camera() == {"a": {"too_old": 5}, "b": {"corrupt_jpeg": 1}}
    assert len(caplog.records) == 2


def test_freshness_gate_drops_the_past():
    gate = FreshnessGate()
    t = 1000.0  # receiver's clock; results arrive 0.1 s apart in these tests

    def admit(camera="gate", run="r1", seq=1, t_capture=1000.0, at=None):
        nonlocal t
        t = t + 0.1 if at is None else at
        return gate.admit(camera, run, seq, t_capture, now=t)

    assert admit(seq=5, t_capture=1000.5) == NEWER
    assert admit(seq=4, t_capture=1000.4) == STALE  # late result of an older frame
    assert admit(seq=5, t_capture=1000.5) == STALE  # duplicate
    assert admit(seq=6, t_capture=1000.6) == NEWER
    assert admit(camera="other", seq=1) == NEWER  # cameras are independent
    assert admit(run="r2", seq=1, t_capture=1000.8) == NEWER  # the edge restarted
    assert admit(run="r1", seq=99, t_capture=1000.7) == STALE  # straggler of the old run


def test_forged_sequence_jump_is_ignored():
    s = StreamFreshness(clock=lambda: 0.0)
    assert s.admit("r", 10, 100.0, now=0.0) == NEWER
    assert s.admit("r", 2**62, 100.1, now=0.1) == IMPLAUSIBLE  # 2**62 frames in 0.1 s
    assert s.last.seq == 10  # the reference did not move
    for i in range(1, 30):  # the real camera goes on at 10 fps
        assert s.admit("r", 10 + i, 100.0 + i / 10, now=i / 10) == NEWER
    # Dropped frames are a plausible jump: 20 frames skipped in 2 s of capture time.
    assert s.admit("r", 60, 104.9, now=5.0) == NEWER


def test_capture_time_from_the_future_is_ignored():
    s = StreamFreshness()
    assert s.admit("r", 1, 100.0, now=0.0) == NEWER
    # Same run or another, a capture time far beyond the receiver's elapsed time is forged.
    assert s.admit("r", 2, 1e12, now=0.1) == IMPLAUSIBLE
    assert s.admit("x", 1, 200.0, now=0.2) == IMPLAUSIBLE
    assert s.admit("r", 2, float("nan"), now=0.3) == IMPLAUSIBLE
    assert s.admit("r", 2, float("inf"), now=0.3) == IMPLAUSIBLE
    assert s.admit("r", 2, 100.1, now=0.4) == NEWER


def test_a_run_that_stops_sending_times_out():
    rule = FreshnessRule(timeout=3.0)
    s = StreamFreshness(rule)
    assert s.admit("old", 500, 100.0, now=0.0) == NEWER
    # The edge restarted with a clock 60 s behind: its new run looks older at first ...
    assert s.admit("new", 1, 40.0, now=1.0) == STALE
    # ... and takes over once the old run has been silent for the timeout.
    assert s.admit("new", 2, 40.1, now=3.5) == NEWER
    assert s.admit("old", 501, 100.1, now=3.6) != NEWER  # the old run cannot take the camera back


def test_a_forged_first_reference_blocks_for_at_most_the_timeout():
    s = StreamFreshness(FreshnessRule(timeout=3.0))
    assert s.admit("r", 2**62, 100.0, now=0.0) == NEWER  # nothing to compare the first message with
    assert s.admit("r", 5, 100.5, now=0.5) == STALE
    assert s.admit("r", 6, 103.1, now=3.1) == NEWER  # later capture time wins after the timeout
    assert s.admit("r", 7, 103.2, now=3.2) == NEWER
    # A straggler older on both counts stays stale even after a silence.
    assert s.admit("r", 3, 99.0, now=10.0) == STALE


def test_a_late_reference_does_not_freeze_the_camera():
    # A worker stalled: its result for capture time 100.0 arrives at 10.0 (10 s late) and becomes the
    # reference; fresh results (0.1 s late) then look 10 s "in the future" next to it.
    s = StreamFreshness(FreshnessRule(timeout=3.0, max_lead=5.0))
    assert s.admit("r", 10, 100.0, now=10.0) == NEWER
    assert s.admit("r", 100, 109.0, now=9.2 + 1.0) == IMPLAUSIBLE  # 9 s of capture time in 0.2 s
    # Once nothing was accepted for the timeout, the stream recovers and keeps going.
    assert s.admit("r", 140, 113.0, now=13.1) == NEWER
    assert s.admit("r", 141, 113.1, now=13.2) == NEWER


def test_freshness_gate_is_bounded():
    gate = FreshnessGate(max_cameras=100)
    for i in range(20_000):
        gate.admit(f"fake{i}", "r", 1, 100.0, now=i * 1e-3)
    assert len(gate) == 100 and gate.evicted == 19_900
    assert gate.last("fake19999") is not None and gate.last("fake0") is None


def test_the_field_tables_in_docs_are_the_decoders_own():
    from pathlib import Path

    from anjeon.protocol import messages

    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    section = doc.split("<!-- field tables begin -->\n")[1].split("<!-- field tables end -->")[0]
    assert section.strip() == messages.doc_tables().strip(), "run: python -m anjeon.protocol.messages"
