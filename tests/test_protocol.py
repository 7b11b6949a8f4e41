"""Wire format v1: round trips, and every way a header can be wrong."""

import logging

import msgpack
import pytest

from anjeon.edge.sources import mask_url
from anjeon.protocol import wire
from anjeon.protocol.endpoints import AddressError, BrokerAddress, CONTROL, FRAMES_IN, RESULTS_OUT
from anjeon.protocol.stats import DropCounter
from anjeon.viewer.freshness import FreshnessGate


def frame(**over):
    base = dict(camera="gate", run="r1", seq=7, t_capture=1000.5, width=640, height=480, size=1234,
                edge="e1", age=0.01, ts={"capture": 1000.5, "edge_send": 1000.52})
    base.update(over)
    return wire.FrameHeader(**base)


def raw(**fields):
    h = {"v": 1, "kind": "frame", "camera": "gate", "run": "r1", "seq": 1, "t_capture": 1.0, "width": 2,
         "height": 2, "size": 3, "codec": "jpeg", "ts": {}}
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
    assert j["detections"][0] == {"class": "person", "label": "Fall", "confidence": 0.9, "box": [1.0, 2.0, 30.0, 40.0]}
    assert {"camera", "seq", "t_capture", "ts", "latency_ms", "detections"} <= set(j)


@pytest.mark.parametrize("data, reason", [
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
])
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


@pytest.mark.parametrize("text, host, port", [
    ("tcp://10.0.0.5", "10.0.0.5", 5550),
    ("tcp://broker.site:6000", "broker.site", 6000),
    ("localhost:7000", "localhost", 7000),
    ("tcp://127.0.0.1:5550/", "127.0.0.1", 5550),
])
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


@pytest.mark.parametrize("url, masked", [
    ("rtsp://admin:s3cret@10.0.0.7:554/stream", "rtsp://admin:***@10.0.0.7:554/stream"),
    ("camera rtsp://u:p@h/x failed", "camera rtsp://u:***@h/x failed"),
    ("rtsp://10.0.0.7/stream", "rtsp://10.0.0.7/stream"),
    ("http://user@host/mjpg", "http://user:***@host/mjpg"),
])
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
    assert gate.admit(frame(seq=5))
    assert not gate.admit(frame(seq=4))  # late result of an older frame
    assert not gate.admit(frame(seq=5))  # duplicate
    assert gate.admit(frame(seq=6))
    assert gate.admit(frame(camera="other", seq=1))  # cameras are independent
    assert gate.admit(frame(run="r2", seq=1, t_capture=2000.0))  # the edge restarted
    assert not gate.admit(frame(run="r1", seq=99, t_capture=1500.0))  # straggler of the old run
