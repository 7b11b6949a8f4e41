"""A worker that does no work: takes frames on credit and publishes empty results at once.

Written against docs/protocol.md only (it does not use anjeon's worker code),
so it measures what the broker and the transport cost by themselves, and
shows that the protocol document is enough to write a client.

    python -m benchmarks.drain_worker tcp://127.0.0.1:5550 [CREDIT]
"""

from __future__ import annotations

import sys
import time
import uuid

import msgpack
import zmq


def main(broker: str, credit: int = 8) -> None:
    host, _, port = broker.removeprefix("tcp://").partition(":")
    base = int(port or 5550)
    proc = uuid.uuid4().hex[:12]
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://{host}:{base + 1}")
    pub = ctx.socket(zmq.PUB)
    pub.connect(f"tcp://{host}:{base + 2}")
    control = ctx.socket(zmq.DEALER)
    control.connect(f"tcp://{host}:{base + 4}")
    ready = msgpack.packb({"v": 1, "kind": "ready", "proc": proc, "credit": credit})
    dealer.send(ready)
    next_beat = 0.0
    while True:
        now = time.monotonic()
        if now >= next_beat:  # heartbeat, and re-announce in case the broker forgot us
            control.send(
                msgpack.packb(
                    {
                        "v": 1,
                        "kind": "hb",
                        "proc": proc,
                        "role": "worker",
                        "name": "drain",
                        "info": {"model": "drain"},
                    }
                )
            )
            while control.poll(0):
                control.recv()
            next_beat = now + 1.0
        if not dealer.poll(200):
            dealer.send(ready)
            continue
        parts = dealer.recv_multipart(copy=False)
        header = msgpack.unpackb(parts[0].bytes)
        if header.get("kind") != "frame" or len(parts) != 3:
            dealer.send(ready)
            continue
        trailer = msgpack.unpackb(parts[2].bytes)  # what the broker adds: grant, age, its two timestamps
        grant = trailer["grant"]
        header.update(
            kind="result", worker=proc, model="drain", rendered=False, detections=[], age=trailer["age"]
        )
        header["ts"].update(broker_in=trailer["broker_in"], broker_out=trailer["broker_out"])
        t = time.time()
        header["ts"].update(worker_in=t, decoded=t, inferred=t, published=t)
        pub.send_multipart([f"res/{header['camera']}/".encode(), msgpack.packb(header)])
        dealer.send(msgpack.packb({"v": 1, "kind": "credit", "proc": proc, "grant": grant, "n": 1}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8)
