"""The JPEG size guard: sizes read from the header without decoding, and a decompression bomb refused everywhere."""

from __future__ import annotations

import random
import time
from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest
import zmq
from conftest import wait_for

from anjeon.protocol import imaging
from anjeon.protocol.wire import ProtocolError


def encode(width: int, height: int, **params: int) -> bytes:
    rng = np.random.default_rng(width * 7 + height)
    image = rng.integers(0, 255, (height, width, 3), np.uint8)
    flags = [v for kv in params.items() for v in (getattr(cv2, kv[0]), kv[1])]
    ok, buf = cv2.imencode(".jpg", image, flags)
    assert ok
    return buf.tobytes()


def bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A tiny real JPEG whose frame header is rewritten to claim width x height (the issue's 631-byte file)."""
    data = bytearray(encode(8, 8, IMWRITE_JPEG_QUALITY=50))
    i = 2
    while data[i + 1] not in imaging.SOF_MARKERS:
        i += 2 + (data[i + 2] << 8 | data[i + 3])
    data[i + 5 : i + 9] = bytes([height >> 8, height & 255, width >> 8, width & 255])
    return bytes(data)


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (640, 360), (1280, 720), (4000, 3000)])
def test_size_read_from_the_header(size):
    assert imaging.jpeg_size(encode(*size)) == size


def test_progressive_and_memoryview_and_restart_markers():
    data = encode(321, 123, IMWRITE_JPEG_PROGRESSIVE=1, IMWRITE_JPEG_RST_INTERVAL=4)
    assert imaging.jpeg_size(data) == (321, 123)
    assert imaging.jpeg_size(memoryview(data)) == (321, 123)
    assert imaging.jpeg_size(bytearray(data)) == (321, 123)


def test_a_frame_header_inside_an_app_segment_is_skipped():
    """An EXIF thumbnail carries its own SOF: only the top-level one counts."""
    real = encode(64, 48)
    fake_sof = b"\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03" + b"\x00" * 9
    app1 = b"\xff\xe1" + (2 + len(fake_sof)).to_bytes(2, "big") + fake_sof
    assert imaging.jpeg_size(real[:2] + app1 + real[2:]) == (64, 48)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"\xff\xd8",
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n" + b"x" * 100,
        b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 20,  # scan before any frame header
        b"\xff\xd8\xff\xe0\x00\x01",  # segment length below 2
        b"\xff\xd8\xff\xe0\xff\xff",  # segment running past the end
        b"\xff\xd8\x00\x00\x00\x00",
    ],
)  # no marker where one must be
def test_unreadable_headers_give_none(data):
    assert imaging.jpeg_size(data) is None
    with pytest.raises(ProtocolError) as err:
        imaging.decode_jpeg(data)
    assert err.value.reason == "corrupt_jpeg"


def test_zero_height_is_unreadable():
    assert imaging.jpeg_size(bomb(640, 0)) is None


def test_every_truncation_and_random_bytes_never_raise():
    """Bounded: every prefix of a real JPEG and 2,000 random mutations; jpeg_size returns, never raises."""
    data = encode(100, 80)
    for n in range(len(data)):
        size = imaging.jpeg_size(data[:n])
        assert size is None or size == (100, 80)
    rng = random.Random(12)
    for _ in range(2000):
        mutated = bytearray(data[:300])
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(2, len(mutated))] = rng.randrange(256)
        size = imaging.jpeg_size(bytes(mutated))
        assert size is None or (size[0] > 0 and size[1] > 0)


def test_bomb_is_refused_before_decoding():
    data = bomb()
    assert len(data) < 700 and imaging.jpeg_size(data) == (12000, 12000)
    with pytest.raises(ProtocolError) as err:
        imaging.decode_jpeg(data)
    assert err.value.reason == "oversized_image" and "12000x12000" in str(err.value)


def test_cap_from_argument_and_environment(monkeypatch):
    frame = encode(1280, 720)  # 0.92 MP
    assert imaging.decode_jpeg(frame).shape == (720, 1280, 3)
    with pytest.raises(ProtocolError):
        imaging.decode_jpeg(frame, imaging.max_pixels(0.5))
    monkeypatch.setenv(imaging.ENV_MAX_MEGAPIXELS, "0.5")
    assert imaging.max_pixels() == 500_000
    with pytest.raises(ProtocolError):
        imaging.decode_jpeg(frame)
    for bad in ("lots", "-3", "0", "nan"):  # a typo must not lift the guard
        monkeypatch.setenv(imaging.ENV_MAX_MEGAPIXELS, bad)
        assert imaging.max_pixels() == 40_000_000


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def frame_message(payload: bytes, camera: str, seq: int) -> list[bytes]:
    now = time.time()
    header = {
        "v": 1,
        "kind": "frame",
        "camera": camera,
        "run": "r1",
        "seq": seq,
        "t_capture": now,
        "width": 12000,
        "height": 12000,
        "size": len(payload),
        "codec": "jpeg",
        "ts": {"capture": now},
    }
    return [msgpack.packb(header), payload]


def test_worker_counts_the_bomb_and_keeps_serving(system):
    """Through a real broker and worker: dropped as oversized_image, no 432 MB allocation, good frames flow."""
    system.broker()
    worker = system.worker("w1", "null")
    sub = system.subscriber()
    sub.status_where(
        lambda s: any(w.get("online") for w in s.get("workers", {}).values()), 60, "worker online"
    )
    push = system.socket(zmq.PUSH, 0)
    data = bomb()
    for seq in range(1, 6):
        push.send_multipart(frame_message(data, "bomb", seq))
        # One at a time, so the broker's newest-frame slot does not supersede them before the worker sees them.
        sub.status_where(
            lambda s, n=seq: (
                s.get("cameras", {})
                .get("bomb", {})
                .get("drops", {})
                .get("worker", {})
                .get("oversized_image", 0)
                >= n
            ),
            30,
            f"{seq} bomb(s) counted by the worker",
        )
    good = encode(320, 240)
    seq = 0

    def result_arrives():
        nonlocal seq
        seq += 1
        push.send_multipart(frame_message(good, "good", seq))
        try:
            return sub.results(1, timeout=1.0, where=lambda r: r["camera"] == "good")
        except AssertionError:
            return None

    wait_for(result_arrives, 30, "a good frame served after the bombs")
    assert worker.alive, worker.output()
    # Decoding one bomb would have touched 12000 * 12000 * 3 bytes = 432 MB of this process's memory.
    assert peak_rss_mb(worker.popen.pid) < 300, worker.output()
    assert "Traceback" not in worker.output()
