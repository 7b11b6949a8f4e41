"""The status carries every camera, worker and edge however many there are (it stopped at ~300 cameras
under the 64 KiB header limit): a real broker with 1,000 synthetic cameras, and the snapshot of 2,500."""

from __future__ import annotations

import time

import msgpack
import zmq

from anjeon.broker.server import Broker, BrokerConfig
from anjeon.protocol import messages, wire

JPEG = b"\xff\xd8" + b"\x00" * 200


def edge_info(cameras: list[str]) -> dict:
    return {
        "run": "r1",
        "cameras": {
            c: {
                "state": "streaming",
                "error": "",
                "source": f"rtsp://10.0.0.1/{c}",
                "capture_fps": 2.0,
                "sent_fps": 2.0,
                "sent": 10,
                "captured": 10,
                "reconnects": 0,
                "bytes_per_s": 400,
                "drops": {},
            }
            for c in cameras
        },
    }


def test_a_real_broker_reports_1000_cameras_in_one_status(system):
    system.broker()
    cams = [f"syn{i:04d}" for i in range(1000)]
    control = system.socket(zmq.DEALER, 4)
    push = system.socket(zmq.PUSH, 0)
    push.setsockopt(zmq.SNDHWM, 10_000)
    sub = system.socket(zmq.SUB, 3)
    sub.setsockopt(zmq.SUBSCRIBE, wire.STATUS_TOPIC)
    beat = msgpack.packb(
        {
            "v": 1,
            "kind": "hb",
            "proc": "edge1",
            "role": "edge",
            "name": "synthetic",
            "t": time.time(),
            "info": edge_info(cams),
        }
    )
    assert len(beat) > wire.MAX_HEADER_BYTES  # this heartbeat alone was over the old limit
    deadline = time.monotonic() + 60
    status, size = None, 0
    seq = 0
    while time.monotonic() < deadline:
        control.send(beat)
        seq += 1
        for cam in cams:
            push.send_multipart(
                [
                    msgpack.packb(
                        {
                            "v": 1,
                            "kind": "frame",
                            "camera": cam,
                            "run": "r1",
                            "seq": seq,
                            "t_capture": time.time(),
                            "width": 8,
                            "height": 8,
                            "size": len(JPEG),
                            "codec": "jpeg",
                            "ts": {},
                        }
                    ),
                    JPEG,
                ]
            )
        if sub.poll(1000):
            raw = sub.recv_multipart()[1]
            status = messages.decode_status(raw)  # every field checked, at the status's own size limit
            size = len(raw)
            if (
                len(status["cameras"]) == 1000
                and all(c["online"] for c in status["cameras"].values())
                and all(c["frames_in"] > 0 for c in status["cameras"].values())
            ):
                break
    assert status is not None and len(status["cameras"]) == 1000, status and len(status["cameras"])
    assert all(c["online"] and c["state"] == "streaming" for c in status["cameras"].values())
    assert status["edges"]["edge1"]["cameras"] == cams
    assert size > wire.MAX_HEADER_BYTES  # it would have been dropped by every subscriber before
    print(f"status of 1000 cameras: {size} bytes")


def test_the_snapshot_of_2500_cameras_and_200_workers_fits_and_decodes():
    broker = Broker(BrokerConfig(bind="127.0.0.1"))
    cams = [f"cam{i:04d}" for i in range(2500)]
    broker.state.registry.beat(
        "edge1", "edge", "edge", messages.EDGE_INFO.check(edge_info(cams), "info"), b"e"
    )
    for i in range(200):
        info = messages.WORKER_INFO.check(
            {"model": "m", "batch": 8, "camera_drops": {c: {"too_old": 1} for c in cams[:20]}}, "info"
        )
        broker.state.registry.beat(f"w{i}", "worker", f"worker-{i}", info, b"w%d" % i)
    for cam in cams:
        broker.state.cameras.admit(cam, time.monotonic())
    raw = wire.pack(broker.snapshot())
    status = messages.decode_status(raw)
    assert len(status["cameras"]) == 2500 and len(status["workers"]) == 200
    assert len(raw) < messages.MAX_STATUS_BYTES / 10  # far below the limit
