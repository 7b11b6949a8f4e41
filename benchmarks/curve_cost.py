"""What CURVE costs on the bus: messages/s and CPU of PUSH -> PULL over loopback, plaintext vs CURVE.

One process per side (as edge and broker would be), N messages of SIZE bytes (a 720p JPEG is
~200 KB, a header ~300 B). Prints one JSON line per case; docs/security.md quotes the result.

    nice -n 10 .venv/bin/python benchmarks/curve_cost.py --count 2000 --size 200000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import time

import zmq


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _receiver(port: int, count: int, server: tuple[bytes, bytes] | None, out: mp.Queue) -> None:
    ctx = zmq.Context()
    auth = None
    sock = ctx.socket(zmq.PULL)
    if server is not None:
        from zmq.auth.thread import ThreadAuthenticator

        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)  # cost of crypto, not of lookups
        sock.curve_publickey, sock.curve_secretkey = server
        sock.curve_server = True
    sock.bind(f"tcp://127.0.0.1:{port}")
    out.put("ready")
    sock.recv()
    t0, c0 = time.perf_counter(), _cpu()
    for _ in range(count - 1):
        sock.recv(copy=False)
    out.put((time.perf_counter() - t0, _cpu() - c0))
    sock.close(0)
    if auth is not None:
        auth.stop()
    ctx.term()


def run(count: int, size: int, curve: bool) -> dict:
    port = 20000 + os.getpid() % 20000
    server = zmq.curve_keypair() if curve else None
    out: mp.Queue = mp.Queue()
    proc = mp.Process(target=_receiver, args=(port, count, server, out))
    proc.start()
    assert out.get(timeout=30) == "ready"
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.sndhwm = 100
    if server is not None:
        push.curve_publickey, push.curve_secretkey = zmq.curve_keypair()
        push.curve_serverkey = server[0]
    push.connect(f"tcp://127.0.0.1:{port}")
    payload = os.urandom(size)
    c0 = _cpu()
    for _ in range(count):
        push.send(payload, copy=False)
    seconds, receiver_cpu = out.get(timeout=600)
    sender_cpu = _cpu() - c0
    proc.join(30)
    push.close(0)
    ctx.term()
    return {
        "curve": curve,
        "size": size,
        "count": count,
        "msgs_per_s": round((count - 1) / seconds),
        "mb_per_s": round((count - 1) * size / seconds / 1e6, 1),
        "receiver_cpu_us_per_msg": round(receiver_cpu / (count - 1) * 1e6, 1),
        "sender_cpu_us_per_msg": round(sender_cpu / count * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, action="append", help="message size in bytes (repeatable)")
    args = parser.parse_args()
    for size in args.size or [300, 200_000]:
        for curve in (False, True):
            print(json.dumps(run(args.count, size, curve)), flush=True)


if __name__ == "__main__":
    main()
