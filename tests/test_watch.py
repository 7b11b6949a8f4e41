"""`anjeon watch`'s table: what an operator reads, from a live system and from a status snapshot."""

from __future__ import annotations

import subprocess
import sys
import time

from anjeon.protocol.endpoints import BrokerAddress
from anjeon.viewer.table import render_table
from anjeon.viewer.watch import CameraView
from conftest import ROOT


def test_table_shows_cameras_workers_and_drops():
    status = {
        "uptime": 42.0,
        "cameras": {"gate": {"state": "streaming", "fps_in": 10.0, "error": "",
                             "drops": {"edge": {}, "broker": {"superseded": 12}, "worker": {"too_old": 3}}},
                    "crane": {"state": "reconnecting", "fps_in": 0.0, "error": "lost rtsp://u:***@cam/1",
                              "drops": {}}},
        "workers": {"p1": {"name": "gpu-1", "online": True, "model": "person", "device": "cuda:0", "fps": 30.0,
                           "batch_mean": 3.5, "infer_ms": 12.0, "credit": 2, "capacity": 4, "drops": {"too_old": 3}}},
        "drops": {"malformed": 2},
    }
    view = CameraView()
    view.latencies.extend([100.0, 200.0, 300.0])
    view.classes.update({"person": 3, "Helmet": 1})
    view.last_seen = time.monotonic()
    text = render_table(BrokerAddress("10.0.0.5"), status, {"gate": view}, {"gate": {"stale": 1}}, True)
    gate = next(line for line in text.splitlines() if line.startswith("gate"))
    assert "streaming" in gate and "10.0" in gate and " 200 " in gate  # p50 of 100/200/300
    assert " 3  " in gate and "Helmet 1" in gate  # people and other classes
    assert "e0 b12 w3 s1" in gate and "superseded 12" in gate
    assert "reconnecting" in text and "lost rtsp://u:***@cam/1" in text
    worker = next(line for line in text.splitlines() if line.startswith("gpu-1"))
    assert "online" in worker and "cuda:0" in worker and "2/4" in worker and "too_old 3" in worker
    assert "malformed 2" in text and "connected" in text


def test_watch_prints_the_live_table(system, bus_jpg):
    system.broker()
    system.worker("w1", "null")
    system.edge("edge1", f"gate={bus_jpg}", fps=5)
    sub = system.subscriber()
    sub.results(3, timeout=60)
    done = subprocess.run([sys.executable, "-m", "anjeon", "watch", "--broker", system.broker_url, "--duration", "4"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    last = done.stdout.split("anjeon watch")[-1]  # the newest table
    gate = next(line for line in last.splitlines() if line.startswith("gate"))
    assert "streaming" in gate
    assert any(line.startswith("w1") and "online" in line and "null" in line for line in last.splitlines())
