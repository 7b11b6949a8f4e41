"""The systems anjeon is compared with, each running the same model on each frame in order.

- seed: the project's seed design, a TCP server reading length-prefixed pickled
  JPEGs and running the model on each in turn;
- imagezmq: imagezmq's REQ/REP ImageSender -> ImageHub (its documented pattern:
  the hub replies "OK" on receipt, then processes);
- pushpull: a plain ZeroMQ PUSH -> PULL pipeline with default high-water marks.

In each, a camera produces frames at a fixed rate; what the transport cannot
take at once waits in line in the sender, as frames do in a camera reader
that never drops. The server records (capture time, done time) per frame.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import pickle
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np
import zmq

KINDS = ("seed", "imagezmq", "pushpull")


# -- servers (run in a child process) ------------------------------------------------------------
def _seed_frames(port: int, stop) -> Any:
    srv = socket.create_server(("127.0.0.1", port))
    srv.settimeout(0.2)
    conn = None
    while conn is None and not stop.is_set():
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            pass
    if conn is None:
        return
    conn.settimeout(0.2)
    buf = b""
    while not stop.is_set():
        try:
            chunk = conn.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 4:
            (size,) = struct.unpack(">I", buf[:4])
            if len(buf) < 4 + size:
                break
            msg = pickle.loads(buf[4 : 4 + size])
            buf = buf[4 + size :]
            yield msg["t_capture"], msg["jpeg"]


def _imagezmq_frames(port: int, stop) -> Any:
    import imagezmq

    hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{port}")
    while not stop.is_set():
        if hub.zmq_socket.poll(200):
            name, jpg = hub.recv_jpg()
            hub.send_reply(b"OK")
            yield float(name), bytes(jpg)


def _pushpull_frames(port: int, stop) -> Any:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"tcp://127.0.0.1:{port}")
    while not stop.is_set():
        if pull.poll(200):
            header, jpeg = pull.recv_multipart()
            yield msgpack.unpackb(header)["t_capture"], jpeg


def server_main(kind: str, port: int, out: str, threads: int, ready, stop) -> None:
    from anjeon.inference.models import load_detector

    detector = load_detector("person", "cpu", threads)
    source = {"seed": _seed_frames, "imagezmq": _imagezmq_frames, "pushpull": _pushpull_frames}[kind]
    records = []
    ready.set()
    for t_capture, jpeg in source(port, stop):
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        detector.predict([image])
        records.append((t_capture, time.time()))
    Path(out).write_text(json.dumps(records))


# -- clients (run in the benchmark process) -----------------------------------------------------------
def _seed_sender(port: int) -> Callable[[float, bytes], None]:
    sock = socket.create_connection(("127.0.0.1", port))

    def send(t_capture: float, jpeg: bytes) -> None:
        payload = pickle.dumps({"t_capture": t_capture, "jpeg": jpeg})
        sock.sendall(struct.pack(">I", len(payload)) + payload)

    return send


def _imagezmq_sender(port: int) -> Callable[[float, bytes], None]:
    import imagezmq

    sender = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{port}")
    return lambda t_capture, jpeg: sender.send_jpg(repr(t_capture), jpeg)


def _pushpull_sender(port: int) -> Callable[[float, bytes], None]:
    push = zmq.Context.instance().socket(zmq.PUSH)  # default SNDHWM (1000)
    push.connect(f"tcp://127.0.0.1:{port}")
    return lambda t_capture, jpeg: push.send_multipart([msgpack.packb({"t_capture": t_capture}), jpeg])


SENDERS = {"seed": _seed_sender, "imagezmq": _imagezmq_sender, "pushpull": _pushpull_sender}


def run_baseline(
    kind: str, jpegs: list[bytes], rate: float, seconds: float, threads: int, workdir: Path
) -> list[tuple[float, float]]:
    """Offer ``rate`` frames/s for ``seconds``; return (capture, done) per completed frame."""
    from anjeon.protocol.endpoints import free_base_port

    port = free_base_port()
    out = workdir / f"{kind}-{rate:.1f}.json"
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    server = ctx.Process(target=server_main, args=(kind, port, str(out), threads, ready, stop), daemon=True)
    server.start()
    ready.wait(240)
    time.sleep(0.5)
    send = SENDERS[kind](port)
    line: deque[tuple[float, bytes]] = deque()  # the camera's backlog
    done = threading.Event()

    def sender() -> None:
        while not done.is_set():
            if line:
                t, jpeg = line.popleft()
                try:
                    send(t, jpeg)
                except (OSError, zmq.ZMQError):
                    return  # the server stopped at the end of the run
            else:
                time.sleep(0.001)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < seconds:
        due = start + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        line.append((time.time(), jpegs[k % len(jpegs)]))
        k += 1
    stop.set()
    done.set()
    server.join(30)
    if server.is_alive():
        server.kill()
    return [tuple(r) for r in json.loads(out.read_text())] if out.exists() else []
