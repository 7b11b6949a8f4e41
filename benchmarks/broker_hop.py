"""What one broker hop costs: broker CPU per 720p frame against raw ZeroMQ, in the same run.

Three set-ups, each fed by the same senders (raw PUSH of one pre-encoded 720p
JPEG with a frame header, as fast as the socket takes them) for ``--seconds``:

- ``raw``: the senders PUSH straight to a PULL that counts (what ZeroMQ and
  msgpack-free reading cost);
- ``relay``: a PULL -> PUSH forwarder in Python, zero-copy (the least any
  Python hop can cost), to drain PULLs;
- ``broker``: ``anjeon broker`` with drain workers (benchmarks/drain_worker.py)
  taking frames on credit.

The process in the middle (the counter, the relay or the broker) is pinned to
CPU 0 with ``taskset`` and everything else to the other CPUs where the machine
has more than one, and its CPU time is read from /proc before and after, so
"CPU per frame" is the middle process's own user+system time divided by the
frames it passed on. ``--profile`` also runs the broker under cProfile and
prints where its time goes.

    python -m benchmarks.broker_hop --seconds 30 --rate 400 --profile --save

``--save`` writes docs/benchmarks/broker_hop.json, which benchmarks/write_docs.py renders (``render`` below)
into docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]

SENDER = r"""
import sys, time, zmq, msgpack, numpy as np, cv2
port, cams, seconds, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rng = np.random.default_rng(1)
img = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (0, 0), 3)
jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
push.setsockopt(zmq.SNDHWM, 50)
push.connect(f"tcp://127.0.0.1:{port}")
import uuid
proc = uuid.uuid4().hex[:12]
control = ctx.socket(zmq.DEALER)  # an edge's heartbeat claims its cameras (unclaimed ones are rate-limited)
control.setsockopt(zmq.LINGER, 0)
control.connect(f"tcp://127.0.0.1:{port + 4}")
beat = msgpack.packb({"v": 1, "kind": "hb", "proc": proc, "role": "edge", "name": "hop", "t": time.time(),
                      "info": {"cameras": {f"hop{c}": {"state": "streaming"} for c in range(cams)}}})
seq, n, start, next_beat = 0, 0, time.monotonic(), 0.0
end = start + seconds
while time.monotonic() < end:
    if time.monotonic() >= next_beat:
        try:
            control.send(beat, zmq.NOBLOCK)
        except zmq.Again:
            pass
        while control.poll(0):
            control.recv()
        next_beat = time.monotonic() + 1.0
    if rate > 0 and n >= rate * (time.monotonic() - start):  # paced: offered load, not a flood
        time.sleep(0.0005)
        continue
    seq += 1
    for c in range(cams):
        h = msgpack.packb({"v": 1, "kind": "frame", "camera": f"hop{c}", "run": "r1", "seq": seq,
                           "t_capture": time.time(), "width": 1280, "height": 720, "size": len(jpeg),
                           "codec": "jpeg", "edge": "hop", "age": 0.0, "ts": {"capture": time.time()}})
        push.send_multipart([h, jpeg], copy=False)
        n += 1
print(n, len(jpeg))
"""

COUNTER = r"""
import sys, time, zmq
port, seconds = int(sys.argv[1]), float(sys.argv[2])
ctx = zmq.Context()
pull = ctx.socket(zmq.PULL)
pull.setsockopt(zmq.RCVHWM, 50)
pull.bind(f"tcp://127.0.0.1:{port}")
n = 0
pull.recv_multipart(copy=False)
end = time.monotonic() + seconds
while time.monotonic() < end:
    if pull.poll(100):
        pull.recv_multipart(copy=False)
        n += 1
print(n)
"""

RELAY = r"""
import sys, time, zmq
port_in, port_out, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ctx = zmq.Context()
pull = ctx.socket(zmq.PULL); pull.setsockopt(zmq.RCVHWM, 50); pull.bind(f"tcp://127.0.0.1:{port_in}")
push = ctx.socket(zmq.PUSH); push.setsockopt(zmq.SNDHWM, 50); push.bind(f"tcp://127.0.0.1:{port_out}")
n = 0
pull.recv_multipart(copy=False)
end = time.monotonic() + seconds
while time.monotonic() < end:
    if pull.poll(100):
        push.send_multipart(pull.recv_multipart(copy=False), copy=False)
        n += 1
print(n)
"""

PROFILED_BROKER = r"""
import cProfile, io, pstats, sys, threading
from anjeon.broker.server import Broker, BrokerConfig
# The senders' heartbeats claim their cameras; no limit on unclaimed ones, so a late heartbeat costs no frames.
broker = Broker(BrokerConfig(bind="127.0.0.1", base_port=int(sys.argv[1]), unclaimed_fps=1e9))
broker.bind()
stop = threading.Event()
threading.Timer(float(sys.argv[2]), stop.set).start()
prof = cProfile.Profile()
prof.runcall(broker.serve, stop)
out = io.StringIO()
pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(24)
print(out.getvalue())
"""


PHASED_BROKER = r"""
import json, os, sys, threading, time
from pathlib import Path
from anjeon.broker import server
from anjeon.broker.server import Broker, BrokerConfig
# The broker's own thread CPU per handler (its thread's clock around each call, ~1 µs a reading here), and the
# whole process's from /proc (the libzmq I/O thread included): where a frame's CPU goes over real TCP.
clock, spent, calls = time.thread_time, {}, {}
def timed(name, fn):
    spent[name], calls[name] = 0.0, 0
    def run(*args):
        t = clock()
        try:
            return fn(*args)
        finally:
            spent[name] += clock() - t
            calls[name] += 1
    return run
real_poll = server.zmq.zmq_poll
class Phased(Broker):
    pass
for name in ("_on_frames", "_dispatch", "_on_workers", "_on_results", "_on_subscriptions", "_on_control",
             "_publish_status", "_sweep"):
    setattr(Phased, name, timed(name, getattr(Broker, name)))
server.zmq.zmq_poll = timed("zmq_poll (the loop's wait)", real_poll)
broker = Phased(BrokerConfig(bind="127.0.0.1", base_port=int(sys.argv[1])))
broker.bind()
stop = threading.Event()
seconds = float(sys.argv[2])
def measure():
    time.sleep(float(sys.argv[3]))  # warm-up: frames flowing
    def proc_cpu():
        f = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    first = {k: (spent[k], calls[k]) for k in spent}
    snap0 = broker.snapshot()
    c0, t0 = proc_cpu(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = proc_cpu(), time.monotonic()
    snap1 = broker.snapshot()
    per = {k: (spent[k] - first[k][0], calls[k] - first[k][1]) for k in spent}
    def total(snap, key):
        return sum(c[key] for c in snap["cameras"].values())
    def sent(snap):
        return sum(w["dispatched"] for w in snap["workers"].values())
    print(json.dumps({"seconds": t1 - t0, "process_cpu_s": c1 - c0, "frames_in": total(snap1, "frames_in") - total(snap0, "frames_in"),
                      "dispatched": sent(snap1) - sent(snap0), "results": total(snap1, "results_out") - total(snap0, "results_out"),
                      "thread_cpu_s": {k: round(v[0], 4) for k, v in per.items()}, "calls": {k: v[1] for k, v in per.items()}}))
    stop.set()
threading.Thread(target=measure, daemon=True).start()
broker.serve(stop)
"""

_ALL_CPUS = sorted(os.sched_getaffinity(0))  # before main() moves this process off the middle CPU


def _cpus() -> list[int]:
    return _ALL_CPUS


def _pinned(cmd: list[str], cpus: list[int]) -> list[str]:
    """Run ``cmd`` on ``cpus`` with taskset when there is a choice of CPUs."""
    if len(_cpus()) < 2 or not cpus:
        return cmd
    return ["taskset", "-c", ",".join(map(str, cpus)), *cmd]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    from anjeon.protocol.endpoints import free_base_port

    return free_base_port()


def _py(code: str, *args) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


def _middle_and_rest() -> tuple[list[int], list[int]]:
    cpus = _cpus()
    return cpus[:1], cpus[1:] or cpus


def _finish(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _figures(setup: str, frames: int, seconds: float, cpu: float | None) -> dict:
    fps = frames / seconds
    return {
        "setup": setup,
        "frames": frames,
        "fps": round(fps, 1),
        "cpu_us_per_frame": round(cpu / frames * 1e6, 1) if cpu is not None and frames else None,
    }


def _status(sub, timeout: float = 20.0) -> dict:
    from anjeon.protocol import messages

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sub.poll(200):
            frames = sub.recv_multipart()
            if frames[0] == b"status/":
                return messages.decode_status(frames[1])
    raise RuntimeError("no status from the broker")


def _flowing(sub, timeout: float = 120.0) -> dict:
    """The first status after frames started flowing (senders take seconds to start on a busy machine)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        status = _status(sub)
        total = sum(c["frames_in"] for c in status["cameras"].values())
        if last > 0 and total > last:
            return status
        last = total
    raise RuntimeError("no frames reached the broker")


def run_broker(seconds: float, senders: int, drains: int, cams: int, rate: float) -> dict:
    import zmq

    mid, rest = _middle_and_rest()
    base = _free_port()
    broker = subprocess.Popen(
        _pinned(
            [
                sys.executable,
                "-m",
                "anjeon",
                "--log-level",
                "warning",
                "broker",
                "--bind",
                "127.0.0.1",
                "--base-port",
                str(base),
                # The senders' heartbeats claim their cameras; this only keeps a late heartbeat from
                # costing frames (the flag's ceiling).
                "--unclaimed-fps",
                "100000",
            ],
            mid,
        )
    )
    workers = [
        subprocess.Popen(
            _pinned([sys.executable, "-m", "benchmarks.drain_worker", f"tcp://127.0.0.1:{base}", "8"], rest),
            cwd=ROOT,
        )
        for _ in range(drains)
    ]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{base + 3}")
    sub.setsockopt(zmq.SUBSCRIBE, b"status/")
    sub.setsockopt(zmq.SUBSCRIBE, b"res/")  # as the safety service does: the broker forwards every result
    send: list[subprocess.Popen] = []
    try:
        time.sleep(2.0)
        send = [
            subprocess.Popen(
                _pinned(_py(SENDER, base, cams, seconds + 120, rate), rest), stdout=subprocess.DEVNULL
            )
            for _ in range(senders)
        ]
        first = _flowing(sub)
        cpu0, t0 = _cpu_seconds(broker.pid), time.monotonic()
        results = 0
        while time.monotonic() < t0 + seconds:
            if sub.poll(100):
                results += sub.recv_multipart(copy=False)[0].bytes.startswith(b"res/")
        last = _status(sub)  # the counts as published, then the CPU at once: both windows start and end alike
        cpu1, t1 = _cpu_seconds(broker.pid), time.monotonic()
        dispatched = sum(w["dispatched"] for w in last["workers"].values()) - sum(
            w["dispatched"] for w in first["workers"].values()
        )
        frames_in = sum(c["frames_in"] for c in last["cameras"].values()) - sum(
            c["frames_in"] for c in first["cameras"].values()
        )
        cpu = cpu1 - cpu0
        return {
            "setup": "anjeon broker",
            "seconds": round(t1 - t0, 1),
            "frames_in": frames_in,
            "frames_out": dispatched,
            "fps_in": round(frames_in / (t1 - t0), 1),
            "fps_out": round(dispatched / (t1 - t0), 1),
            "results_fps": round(results / (t1 - t0), 1),
            "cpu_s": round(cpu, 2),
            "cpu_pct": round(100 * cpu / (t1 - t0), 1),
            "cpu_us_per_frame_in": round(cpu / frames_in * 1e6, 1) if frames_in else None,
            "cpu_us_per_frame_out": round(cpu / dispatched * 1e6, 1) if dispatched else None,
            "superseded": sum(c["drops"]["broker"].get("superseded", 0) for c in last["cameras"].values()),
        }
    finally:
        for p in send:
            p.kill()
        for p in [broker, *workers]:
            p.terminate()
        _finish([*send, broker, *workers])
        ctx.destroy(linger=0)


def run_relay_counted(seconds: float, senders: int, rate: float) -> dict:
    """The Python relay with one counting sink; CPU per frame from the relay's own count."""
    mid, rest = _middle_and_rest()
    port_in, port_out = _free_port(), _free_port()
    relay = subprocess.Popen(
        _pinned(_py(RELAY, port_in, port_out, seconds), mid), stdout=subprocess.PIPE, text=True
    )
    sink = subprocess.Popen(
        _pinned(_py(COUNTER.replace("pull.bind", "pull.connect"), port_out, seconds + 10), rest),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    send = [
        subprocess.Popen(
            _pinned(_py(SENDER, port_in, 1, seconds + 3, rate), rest), stdout=subprocess.PIPE, text=True
        )
        for _ in range(senders)
    ]
    relay_cpu = _watch_cpu(relay)
    out, _ = relay.communicate(timeout=seconds + 60)
    sink.kill()
    _finish(send)
    return _figures("Python PULL->PUSH relay (zero-copy)", int(out.split()[0]), seconds, relay_cpu)


def _watch_cpu(proc: subprocess.Popen) -> float | None:
    """CPU seconds of ``proc`` up to just before it exits (polled from /proc)."""
    last = None
    while proc.poll() is None:
        try:
            last = _cpu_seconds(proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    return last


def run_raw_counted(seconds: float, senders: int, rate: float) -> dict:
    mid, rest = _middle_and_rest()
    port = _free_port()
    counter = subprocess.Popen(_pinned(_py(COUNTER, port, seconds), mid), stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    send = [
        subprocess.Popen(
            _pinned(_py(SENDER, port, 1, seconds + 3, rate), rest), stdout=subprocess.PIPE, text=True
        )
        for _ in range(senders)
    ]
    cpu = _watch_cpu(counter)
    out, _ = counter.communicate(timeout=seconds + 60)
    _finish(send)
    return _figures("raw PUSH/PULL (counting PULL)", int(out.split()[0]), seconds, cpu)


def hot_path(frames: int = 20_000, cameras: int = 4, burst: int = 1) -> dict:
    """The broker's own work per frame, in this process: everything it does for one frame, part by part.

    Real Broker code on real sockets (inproc, so no TCP copies), timed with the
    thread's CPU clock around the broker's calls only: the figure the 60 µs
    goal is about, without the kernel's and libzmq's I/O threads. Per frame:

    - accept: take [header, jpeg] off frames-in (``_on_frames``: receive, decode and check, slot it);
    - dispatch: pick a worker, build the trailer, send [id, header, jpeg, trailer] (``_dispatch``);
    - credit: take the worker's credit for it (``_on_workers``; one credit per frame, as a batch-1 worker
      sends; a batch of n sends one for n);
    - result: forward the worker's ``res/CAM/`` result to a subscriber (``_on_results``);
    - poll: one turn of the broker's poller over its five sockets (paid per loop turn: once per message
      when they come one at a time, shared by many when the broker is busy), reported beside the total.

    ``burst`` frames arrive together (one per camera) and go through each step together: 1 is a broker
    with time to spare (every message alone, each drain of a socket ends after one), more is a busy
    broker, whose sockets hold several messages each turn (what it sees near its limit).
    The cameras are claimed by an edge's heartbeat, as on a site.
    """
    import msgpack
    import zmq

    from anjeon.broker.server import Broker, BrokerConfig
    from anjeon.protocol import security
    from anjeon.protocol.endpoints import CONTROL, FRAMES_IN, FRAMES_OUT, RESULTS_IN, RESULTS_OUT

    ctx = zmq.Context()
    broker = Broker(BrokerConfig(bind="127.0.0.1"), ctx=ctx)
    names = {FRAMES_IN: zmq.PULL, FRAMES_OUT: zmq.ROUTER, RESULTS_IN: zmq.XSUB, RESULTS_OUT: zmq.XPUB}
    socks = {name: ctx.socket(kind) for name, kind in names.items()}
    socks[CONTROL] = ctx.socket(zmq.ROUTER)
    socks[FRAMES_OUT].setsockopt(zmq.ROUTER_MANDATORY, 1)
    for name, sock in socks.items():
        sock.bind(f"inproc://hop-{name}")
    broker._socks = socks
    broker.guard = security.guard(ctx, "127.0.0.1", "the hot-path benchmark")  # plaintext: no keys here
    cameras = max(cameras, burst)  # a burst has one frame per camera (none replaces another)
    frames -= frames % burst
    cams = [f"hop{c}" for c in range(cameras)]
    broker.state.registry.beat(
        "hopedge", "edge", "hop", {"cameras": {c: {"state": "streaming"} for c in cams}}
    )
    broker.state.cameras.report(broker.state.registry.by_role("edge"))

    push = ctx.socket(zmq.PUSH)
    push.connect(f"inproc://hop-{FRAMES_IN}")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"inproc://hop-{FRAMES_OUT}")
    pub = ctx.socket(zmq.PUB)
    pub.connect(f"inproc://hop-{RESULTS_IN}")
    sub = ctx.socket(zmq.SUB)
    sub.connect(f"inproc://hop-{RESULTS_OUT}")
    sub.setsockopt(zmq.SUBSCRIBE, b"res/")
    poller = zmq.Poller()
    for sock in socks.values():
        poller.register(sock, zmq.POLLIN)
    for _ in range(200):  # the subscription reaches the worker's PUB through the broker (bounded wait)
        broker._on_subscriptions(socks[RESULTS_OUT])
        pub.send_multipart([b"res/hop0/", b"warm-up"])
        broker._on_results(socks[RESULTS_IN])
        if sub.poll(10):
            while sub.poll(0):
                sub.recv_multipart()
            break
    else:
        raise RuntimeError("the subscription did not reach the publisher")
    proc = "hopworker"
    dealer.send(msgpack.packb({"v": 1, "kind": "ready", "proc": proc, "credit": max(8, burst)}))
    broker._on_workers(socks[FRAMES_OUT])
    jpeg = zmq.Frame(b"\xff\xd8" + bytes(200_000))
    cpu = dict.fromkeys(("accept", "dispatch", "credit", "result"), 0.0)
    polled = 0.0
    dispatched = results = 0
    clock = time.thread_time
    for i in range(0, frames, burst):
        headers = [
            {
                "v": 1,
                "kind": "frame",
                "camera": cams[(i + j) % cameras],
                "run": "r1",
                "seq": i + j,
                "t_capture": time.time(),
                "width": 1280,
                "height": 720,
                "size": len(jpeg.bytes),
                "codec": "jpeg",
                "edge": "hopedge",
                "age": 0.0,
                "ts": {"capture": time.time()},
            }
            for j in range(burst)
        ]
        for header in headers:
            push.send_multipart([msgpack.packb(header), jpeg], copy=False)
        t0 = clock()
        poller.poll(0)
        t1 = clock()
        broker._on_frames(socks[FRAMES_IN])
        t2 = clock()
        broker._dispatch()
        t3 = clock()
        polled += t1 - t0
        cpu["accept"] += t2 - t1
        cpu["dispatch"] += t3 - t2
        for header in headers:  # what a worker does, not timed
            got = dealer.recv_multipart(copy=False)
            dispatched += 1
            grant = msgpack.unpackb(got[2].bytes)["grant"]
            dealer.send(msgpack.packb({"v": 1, "kind": "credit", "proc": proc, "grant": grant, "n": 1}))
            header.update(kind="result", worker=proc, model="drain", rendered=False, detections=[])
            pub.send_multipart([f"res/{header['camera']}/".encode(), msgpack.packb(header)])
        t4 = clock()
        broker._on_workers(socks[FRAMES_OUT])
        t5 = clock()
        broker._on_results(socks[RESULTS_IN])
        t6 = clock()
        cpu["credit"] += t5 - t4
        cpu["result"] += t6 - t5
        while sub.poll(0):
            sub.recv_multipart(copy=False)
            results += 1
    ctx.destroy(linger=0)
    if dispatched != frames or results != frames:
        raise RuntimeError(f"{frames} frames: {dispatched} dispatched, {results} results forwarded")
    per = {k: round(v / frames * 1e6, 1) for k, v in cpu.items()}
    return {
        "frames": frames,
        "burst": burst,
        "dispatched": dispatched,
        "results": results,
        "us_per_frame": per,
        "total_us_per_frame": round(sum(per.values()), 1),
        "poll_us_per_turn": round(polled / (frames // burst) * 1e6, 1),
    }


def _broker_under_load(
    script: str,
    script_args: tuple[float, ...],
    seconds: float,
    senders: int,
    drains: int,
    rate: float,
    send_seconds: float,
) -> str:
    """A broker script on the middle CPU, drain workers, senders and a results subscriber on the rest (the
    broker forwards results, as on a site); returns what the script printed."""
    import zmq

    mid, rest = _middle_and_rest()
    base = _free_port()
    broker = subprocess.Popen(
        _pinned(_py(script, base, *script_args), mid), stdout=subprocess.PIPE, text=True
    )
    workers = [
        subprocess.Popen(
            _pinned([sys.executable, "-m", "benchmarks.drain_worker", f"tcp://127.0.0.1:{base}", "8"], rest),
            cwd=ROOT,
        )
        for _ in range(drains)
    ]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{base + 3}")
    sub.setsockopt(zmq.SUBSCRIBE, b"res/")
    time.sleep(1.5)
    send = [
        subprocess.Popen(
            _pinned(_py(SENDER, base, 4, send_seconds, rate), rest), stdout=subprocess.DEVNULL, text=True
        )
        for _ in range(senders)
    ]
    try:
        deadline = time.monotonic() + seconds + 60
        while broker.poll() is None and time.monotonic() < deadline:
            while sub.poll(100):
                sub.recv_multipart(copy=False)
        out, _ = broker.communicate(timeout=30)
    finally:
        for p in [*send, *workers, broker]:
            p.kill()
        _finish([*send, *workers, broker])
        ctx.destroy(linger=0)
    return out


def profile_broker(seconds: float, senders: int, drains: int, rate: float) -> str:
    return _broker_under_load(PROFILED_BROKER, (seconds + 4,), seconds + 4, senders, drains, rate, seconds)


def phases(seconds: float, senders: int, drains: int, rate: float) -> dict:
    """The real broker over TCP, its own thread's CPU split by handler, against its process's CPU."""
    out = _broker_under_load(PHASED_BROKER, (seconds, 8.0), seconds, senders, drains, rate, seconds + 30)
    d = json.loads(out.strip().splitlines()[-1])
    n = d["dispatched"] or 1
    d["us_per_frame_dispatched"] = {k: round(v / n * 1e6, 1) for k, v in d["thread_cpu_s"].items()}
    d["process_us_per_frame_dispatched"] = round(d["process_cpu_s"] / n * 1e6, 1)
    d["thread_us_per_frame_dispatched"] = round(sum(d["thread_cpu_s"].values()) / n * 1e6, 1)
    d["fps_in"], d["fps_out"] = (
        round(d["frames_in"] / d["seconds"], 1),
        round(d["dispatched"] / d["seconds"], 1),
    )
    return d


@click.command()
@click.option("--seconds", default=20.0, help="Measured seconds per set-up.")
@click.option("--senders", default=2, help="Sending processes.")
@click.option("--drains", default=2, help="Drain workers behind the broker.")
@click.option("--cameras", default=4, help="Camera ids per sender (the broker keeps one pending frame each).")
@click.option(
    "--rate", default=1000.0, help="Frames/s each sender offers (0: as fast as the socket takes them)."
)
@click.option("--hot-path-frames", default=20_000, help="Frames for the in-process hot-path figure.")
@click.option(
    "--profile/--no-profile", default=False, help="Also profile the broker (cProfile, top functions)."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--save/--no-save", default=False, help="Write docs/benchmarks/broker_hop.json (for docs/benchmarks.md)."
)
def main(
    seconds: float,
    senders: int,
    drains: int,
    cameras: int,
    rate: float,
    hot_path_frames: int,
    profile: bool,
    json_path: Path | None,
    save: bool,
) -> None:
    """Broker CPU per 720p frame against raw PUSH/PULL and a Python relay, in one run."""
    hot = {burst: hot_path(hot_path_frames, burst=burst) for burst in (1, 8)}
    if len(_ALL_CPUS) > 1:  # this process reads sockets too (statuses, results): off the middle CPU
        os.sched_setaffinity(0, _ALL_CPUS[1:])
    results = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": round(os.getloadavg()[0], 2),
        "hot_path": hot[1],
        "hot_path_burst": hot[8],
        "cpus": _cpus(),
        "seconds": seconds,
        "senders": senders,
        "drains": drains,
        "rate_per_sender": rate,
        "raw": run_raw_counted(seconds, senders, rate),
        "relay": run_relay_counted(seconds, senders, rate),
        "broker": run_broker(seconds, senders, drains, cameras, rate),
        "phases": phases(seconds, senders, drains, rate),
    }
    results["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=2))
    if profile:
        results["profile"] = profile_broker(seconds, senders, drains, rate)
        results["profile_top"] = _profile_top(results["profile"])
        print(results["profile"])
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    if save:
        from .run_all import save as save_result

        save_result("broker_hop", results)


def _profile_top(text: str, n: int = 12) -> list[dict]:
    """The top rows of pstats' print_stats output, as the docs' table wants them."""
    rows = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[1].replace(".", "", 1).isdigit() and "(" in parts[5]:
            where = parts[5].replace(str(ROOT) + "/", "")
            where = where.split("site-packages/")[-1]
            rows.append(
                {
                    "function": where,
                    "calls": parts[0],
                    "tottime_s": float(parts[1]),
                    "cumtime_s": float(parts[3]),
                }
            )
    return rows[:n]


def _hot_line(hot: dict, what: str) -> str:
    per = hot["us_per_frame"]
    # Runs saved before the result and the poll were measured lack them.
    return (
        f"| {what} | {hot['total_us_per_frame']} | {per['accept']} | {per['dispatch']} | {per['credit']} | "
        f"{per.get('result', '-')} | {hot.get('poll_us_per_turn', '-')} |"
    )


def render(d: dict) -> list[str]:
    """The docs/benchmarks.md subsection for a saved run (called by benchmarks/write_docs.py)."""
    raw, relay, b = d["raw"], d["relay"], d["broker"]
    lines = [
        "### 4b. Broker CPU per 720p frame (benchmarks/broker_hop.py)",
        "",
        f"One run ({d['date']} UTC on {d.get('machine', 'the machine named below')}, load average "
        f"{d.get('load_before', '?')} before and {d.get('load_after', '?')} after): `python -m benchmarks.broker_hop --seconds {d['seconds']:.0f} --rate {d['rate_per_sender']:.0f}"
        f"{' --profile' if d.get('profile_top') else ''}`.",
        "",
        f"**The broker's own work per frame** (real Broker code on inproc sockets, {d['hot_path']['frames']} "
        "frames, the thread's CPU clock around the broker's calls only, so no TCP copies and no libzmq I/O "
        "thread; cameras claimed by an edge heartbeat, one credit per frame as a batch-1 worker sends):",
        "",
        "| frames arriving | µs per frame | accept | dispatch | credit | result | + poll per loop turn |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        _hot_line(d["hot_path"], "one at a time (an idle broker: each message alone)"),
    ]
    if d.get("hot_path_burst"):
        burst = d["hot_path_burst"]
        lines.append(_hot_line(burst, f"{burst['burst']} together (a busy broker: its sockets hold several)"))
    lines += [
        "",
        "accept: take [header, jpeg] off frames-in, decode and check the header, slot it; dispatch: pick a "
        "worker, build the trailer, send [id, header, jpeg, trailer]; credit: take and check the worker's "
        "credit; result: forward the worker's `res/CAM/` result to a subscriber. The poll is one zmq_poll "
        "over the five sockets, paid once per loop turn (per message when they come one by one, shared "
        "when busy).",
        "",
        f"**End to end over TCP**, {d['senders']} senders offering {d['rate_per_sender']:.0f} frames/s each of "
        f"one 720p JPEG, {d['seconds']:.0f} s per set-up, the middle process pinned to CPU {d['cpus'][0]} with "
        "taskset and everything else on the other CPUs. CPU is the middle process's user+system time (its "
        "libzmq I/O thread included) divided by the frames it passed on.",
        "",
        "| set-up | frames/s | CPU µs per frame |",
        "| --- | ---: | ---: |",
        f"| raw PUSH/PULL (a PULL that only counts) | {raw['fps']} | {raw['cpu_us_per_frame']} |",
        f"| Python PULL→PUSH relay, zero-copy (the least a Python hop costs) | {relay['fps']} | "
        f"{relay['cpu_us_per_frame']} |",
        f"| anjeon broker → {d['drains']} drain workers, frames in / dispatched / results forwarded | "
        f"{b['fps_in']} / {b['fps_out']} / {b.get('results_fps', '-')} | {b['cpu_us_per_frame_out']} per frame "
        f"dispatched ({b['cpu_pct']} % of its core) |",
        "",
    ]
    if d.get("phases"):
        ph = d["phases"]
        per = ph["us_per_frame_dispatched"]
        shown = ", ".join(f"{k.lstrip('_')} {v}" for k, v in per.items() if v >= 0.5)
        lines += [
            f"**Where the broker's CPU goes over TCP** (the same set-up, the broker's own thread timed per handler; "
            f"{ph['fps_in']} frames/s in, {ph['fps_out']} dispatched): the process "
            f"{ph['process_us_per_frame_dispatched']} µs per frame dispatched = its Python thread "
            f"{ph['thread_us_per_frame_dispatched']} ({shown}) + libzmq's I/O thread "
            f"{round(ph['process_us_per_frame_dispatched'] - ph['thread_us_per_frame_dispatched'], 1)} "
            "(the 200 KB in and out through the kernel).",
            "",
        ]
    if d.get("note"):
        lines += [d["note"], ""]
    if d.get("profile_top"):
        lines += [
            "Where an in-process broker's time went under the same senders (cProfile, wall clock, internal "
            "time, top entries). pyzmq's socket calls are C, so they count in their callers (`_messages` holds "
            "the receives, `_dispatch` and `_forward` the sends), and `serve`'s own time includes the waits in "
            "zmq_poll:",
            "",
            "| function | calls | internal s | cumulative s |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| `{p['function']}` | {p['calls']} | {p['tottime_s']} | {p['cumtime_s']} |"
            for p in d["profile_top"][:12]
        ]
        lines += [""]
    lines += d.get("conclusion", [])
    return lines


if __name__ == "__main__":
    main()
