"""The console's bus handling without a network: raw multipart messages through the protocol's decoder
(protocol/client.py, as the console's subscriber does) into Bus.handle and ConsoleState.

Fast checks of what tests/test_viewer_hostile.py shows end to end: every message is typed before the
console looks at it, a bad one is counted by reason and changes nothing, caps hold, the freshness rule
is the protocol's.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from anjeon.protocol import client, messages, wire
from anjeon.protocol.endpoints import BrokerAddress
from anjeon.viewer.console.bus import STREAMS, Bus
from anjeon.viewer.console.live import Hub
from anjeon.viewer.console.state import ConsoleState, Limits


def jpeg(w: int = 64, h: int = 48) -> bytes:
    return cv2.imencode(".jpg", np.full((h, w, 3), 90, np.uint8))[1].tobytes()


def picture(camera: str, seq: int, run: str = "r1", t: float | None = None, **extra) -> list[bytes]:
    data = jpeg()
    header = {
        "v": wire.VERSION,
        "kind": wire.RESULT,
        "camera": camera,
        "run": run,
        "seq": seq,
        "t_capture": time.time() if t is None else t,
        "width": 64,
        "height": 48,
        "size": len(data),
        "codec": "jpeg",
        "worker": "w",
        "model": "null",
        "detections": [{"class": "person", "label": "person", "confidence": 0.9, "box": [1, 2, 30, 40]}],
        **extra,
    }
    return [wire.topic(wire.IMAGE_PREFIX, camera), wire.pack(header), data]


def event(eid: str, camera: str = "gate", state: str = "open", **fields) -> dict:
    t = time.time()
    return {
        "id": eid,
        "camera": camera,
        "rule": "r",
        "type": "intrusion",
        "state": state,
        "started": t,
        **fields,
    }


@pytest.fixture
def console():
    state = ConsoleState(limits=Limits(cameras=3, alarms=4))
    bus = Bus(BrokerAddress.parse("tcp://127.0.0.1:1"), state, Hub(state), "tcp://127.0.0.1:2")
    decoder = client.Decoder(STREAMS, drops=state.drops)

    def feed(*msgs: list[bytes]) -> None:
        bus.handle([m for m in (decoder.decode(f) for f in msgs) if m is not None])

    yield state, feed
    bus.close()


def test_pictures_are_kept_typed_newest_only(console):
    state, feed = console
    feed(picture("gate", 1), picture("gate", 2), picture("gate", 1))  # the last one is stale
    frame = state.feeds["gate"].frame
    assert frame is not None and frame.picture.frame.seq == 2 and frame.people == 1
    assert frame.meta["detections"][0]["box"] == [1.0, 2.0, 30.0, 40.0]
    assert state.drops["stale"] == 1
    feed(picture("gate", 2**62))  # a forged sequence jump: the protocol's rule calls it implausible
    assert state.drops["implausible"] == 1 and state.feeds["gate"].frame.picture.frame.seq == 2
    feed(picture("gate", 3))
    assert state.feeds["gate"].frame.picture.frame.seq == 3


def test_bad_messages_are_counted_by_reason_and_change_nothing(console):
    state, feed = console
    bad_jpeg = picture("gate", 1)
    bad_jpeg[2] = b"not a jpeg"
    feed(
        bad_jpeg,
        picture("gate", 1, worker=7),  # a type-confused field
        [b"img/gate/", b"\x81\xa1v\x01"],  # a part missing
        messages.encode_event("start", event("e1", camera="<b>x</b>")),  # not a camera id
        messages.encode_event("start", event("e2", peak="many")),
        [b"status/", wire.pack({"v": 1, "kind": "status", "broker": "b", "cameras": {"../x": {}}})],
    )
    drops = state.drops.snapshot()
    assert drops.get("not_jpeg") == 1 and drops.get("malformed", 0) >= 3 and drops.get("bad_camera_id") == 2
    assert not state.feeds and not state.alarms and not state.status


def test_events_status_and_tracks_land_typed_within_their_caps(console):
    state, feed = console
    feed(picture("gate", 1))
    feed(*[messages.encode_event("start", event(f"e{i}")) for i in range(6)])
    assert len(state.alarms) == 4 and state.drops["cap_alarms"] == 2
    assert state.snapshots["e5"] == state.feeds["gate"].frame.jpeg  # the frame held when it started
    shown = state.alarm_list()[0]
    assert shown["id"] == "e5" and shown["camera"] == "gate" and shown["ack"] is None
    cams = {f"cam{i}": {"online": True, "state": "streaming", "last_frame_s": 0.1} for i in range(5)}
    feed([b"status/", wire.pack({"v": 1, "kind": "status", "broker": "b1", "uptime": 3.0, "cameras": cams})])
    assert sorted(state.status["cameras"]) == ["cam0", "cam1", "cam2"] and state.drops["cap_cameras"] == 2
    assert state.broker is not None and state.broker.broker == "b1" and state.broker_online()
    tracks = [{"id": 7, "box": [1.04, 2, 3, 4], "zones": ["z"], "rules": ["r"], "confirmed": True}]
    feed(messages.encode_tracks("gate", "r1", 1, time.time(), tracks))
    meta = state.frame_meta("gate")
    assert meta is not None and meta["tracks"] == [
        {"id": 7, "box": [1.0, 2, 3, 4], "zones": ["z"], "rules": ["r"], "confirmed": True}
    ]
