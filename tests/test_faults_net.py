"""Faults on a real network: an edge in its own network namespace loses its link for 30 s.

The broker and a null worker run on the host; the edge runs in a namespace
joined to the host by a veth pair, and the test takes the host end of the link
down (packets lost both ways, TCP connections left half-open, as on a real cut).
"""

from __future__ import annotations

import time

import msgpack
import zmq

from conftest import free_base_port, wait_for
from netns import Netns, NsProcess
from prometheus_server import free_port, samples

CUT_SECONDS = 30.0  # the outage
RESUME_WITHIN = 5.0  # results must be back this soon after the link returns


def _edge_drops(ns: Netns, port: int) -> float:
    text = ns.curl(f"http://127.0.0.1:{port}/metrics")
    return sum(v for k, v in samples(text, "anjeon_frames_dropped_total").items() if 'stage="edge"' in k)


def _connected(ns: Netns, port: int) -> float | None:
    got = samples(ns.curl(f"http://127.0.0.1:{port}/metrics"), "anjeon_broker_connected")
    return next(iter(got.values()), None)


def test_edge_link_cut_for_30_s_drops_and_counts_at_the_edge_nothing_stale_after(system, tmp_path, bus_jpg):
    ns = Netns("e")
    try:
        base = free_base_port()
        url = f"tcp://{ns.host_ip}:{base}"
        system.start("broker", "broker", "--bind", ns.host_ip, "--base-port", str(base))
        system.start("w1", "worker", "--broker", url, "--model", "null", "--name", "w1")
        metrics_port = free_port()
        edge = NsProcess(ns, "edge", ["edge", "--broker", url, "--camera", f"c1={bus_jpg}", "--fps", "10",
                                      "--name", "edge-ns", "--metrics-port", str(metrics_port)], tmp_path)
        system.procs.append(edge)
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(f"tcp://{ns.host_ip}:{base + 3}")
        sub.setsockopt(zmq.SUBSCRIBE, b"res/c1/")

        def results(seconds: float) -> list[dict]:
            out, deadline = [], time.monotonic() + seconds
            while time.monotonic() < deadline:
                if sub.poll(100):
                    r = msgpack.unpackb(sub.recv_multipart()[1])
                    r["_at"] = time.time()
                    out.append(r)
            return out

        wait_for(lambda: len(results(1.0)) >= 3, 90, "results from the edge in the namespace")
        before = wait_for(lambda: (_edge_drops(ns, metrics_port),), 30, "the edge's metrics")[0]
        ns.cut()
        cut_at = time.time()
        during = results(CUT_SECONDS)  # the outage itself: nothing to wait for but time
        assert _connected(ns, metrics_port) == 0, "the edge still thinks it has the broker"
        dropped = _edge_drops(ns, metrics_port) - before
        ns.restore()
        restored = time.time()
        # Frames sent just before the cut may still arrive in its first second; nothing after that.
        assert not [r for r in during if r["_at"] > cut_at + 2.0], "results during the outage"
        assert dropped >= 50, f"only {dropped:.0f} frames counted as dropped at the edge in a {CUT_SECONDS:.0f} s cut"

        after = wait_for(lambda: results(0.5), 60, "results after the link came back")
        first = min(r["_at"] for r in after)
        print(f"edge cut {CUT_SECONDS:.0f} s: {dropped:.0f} frames dropped and counted at the edge; "
              f"results back {first - restored:.2f} s after the link")
        assert first - restored < RESUME_WITHIN, f"results resumed {first - restored:.1f} s after the link"
        after += results(3.0)
        stale = [r for r in after if r["t_capture"] < restored - 1.0]
        assert not stale, f"{len(stale)} frame(s) captured during the outage were delivered after it"
    finally:
        ns.close()
