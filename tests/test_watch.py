"""`anjeon watch`'s table: what an operator reads, from a live system and from a status snapshot."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import ROOT

from anjeon.protocol.endpoints import BrokerAddress
from anjeon.protocol.stats import RateMeter
from anjeon.viewer.watch import CameraView, render_table


def test_table_shows_cameras_workers_and_drops():
    status = {
        "uptime": 42.0,
        "cameras": {
            "gate": {
                "state": "streaming",
                "fps_in": 10.0,
                "error": "",
                "drops": {"edge": {}, "broker": {"superseded": 12}, "worker": {"too_old": 3}},
            },
            "crane": {
                "state": "reconnecting",
                "fps_in": 0.0,
                "error": "lost rtsp://u:***@cam/1",
                "drops": {},
            },
        },
        "workers": {
            "p1": {
                "name": "gpu-1",
                "online": True,
                "model": "person",
                "device": "cuda:0",
                "fps": 30.0,
                "batch_mean": 3.5,
                "infer_ms": 12.0,
                "credit": 2,
                "capacity": 4,
                "drops": {"too_old": 3},
            }
        },
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
    done = subprocess.run(
        [sys.executable, "-m", "anjeon", "watch", "--broker", system.broker_url, "--duration", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.split("anjeon watch")[-1]  # the newest table
    gate = next(line for line in last.splitlines() if line.startswith("gate"))
    assert "streaming" in gate
    assert any(line.startswith("w1") and "online" in line and "null" in line for line in last.splitlines())


class FixedRate(RateMeter):
    """A rate that does not depend on when the table is drawn (RateMeter samples the clock)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def sample(self, now: float | None = None) -> float:
        return self.rate


def many_cameras(n: int) -> tuple[dict, dict]:
    """A status and views for n cameras: cam007 is slow, cam013 is offline, cam021 drops at the edge."""
    cams, views = {}, {}
    for i in range(n):
        cam = f"cam{i:03d}"
        cams[cam] = {
            "state": "offline" if i == 13 else "streaming",
            "fps_in": 2.0,
            "error": "",
            "drops": {"edge": {"backpressure": 4} if i == 21 else {}, "broker": {}, "worker": {}},
        }
        v = CameraView()
        v.results = FixedRate(0.5 if i == 7 else 0.0 if i == 13 else 2.0)
        v.latencies.extend([50.0 + i, 60.0 + i] if i != 13 else [])
        v.last_seen = time.monotonic()
        views[cam] = v
    return {"uptime": 5.0, "cameras": cams, "workers": {}}, views


def camera_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("cam")]


def test_table_with_hundreds_of_cameras_has_a_summary_sorting_and_filters():
    from anjeon.viewer.watch import TableOptions

    status, views = many_cameras(300)
    address = BrokerAddress("127.0.0.1")
    text = render_table(address, status, views, {}, True)  # the defaults: by name, every camera
    summary = text.splitlines()[1]
    assert summary.startswith("300 cameras (streaming 299, offline 1)") and "in 600.0 fps" in summary
    assert "per camera out min" in summary and "p99" in summary and "drops 4" in summary
    assert len(camera_lines(text)) == 300 and camera_lines(text)[0].startswith("cam000")

    limited = render_table(address, status, views, {}, True, TableOptions(limit=40))
    assert len(camera_lines(limited)) == 40 and "260 more not shown (--limit 40)" in limited
    assert limited.splitlines()[1].startswith("300 cameras")  # the summary is of the whole site, not the rows

    slowest = camera_lines(render_table(address, status, views, {}, True, TableOptions(sort="fps", limit=3)))
    assert slowest[0].startswith("cam013") and slowest[1].startswith(
        "cam007"
    )  # no results, then the starved one
    worst_latency = camera_lines(render_table(address, status, views, {}, True, TableOptions(sort="latency")))
    assert worst_latency[0].startswith("cam299")
    problems_first = camera_lines(render_table(address, status, views, {}, True, TableOptions(sort="state")))
    assert problems_first[0].startswith("cam013")

    problems = render_table(address, status, views, {}, True, TableOptions(problems=True))
    assert {line.split()[0] for line in camera_lines(problems)} == {"cam013", "cam021"}
    assert "298 filtered out" in problems
    matched = render_table(address, status, views, {}, True, TableOptions(match="cam01?"))
    assert [line.split()[0] for line in camera_lines(matched)] == [f"cam01{i}" for i in range(10)]


def test_watch_command_takes_table_options(system, bus_jpg):
    system.broker()
    system.worker("w1", "null")
    system.edge("edge1", f"gate-1={bus_jpg}", f"gate-2={bus_jpg}", f"yard={bus_jpg}", fps=5)
    sub = system.subscriber()
    sub.results(6, timeout=60)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "anjeon",
            "watch",
            "--broker",
            system.broker_url,
            "--duration",
            "4",
            "--match",
            "gate-*",
            "--sort",
            "fps",
            "--limit",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.split("anjeon watch")[-1]
    rows = [line for line in last.splitlines() if line.startswith(("gate", "yard"))]
    assert len(rows) == 1 and rows[0].startswith("gate-")
    assert "3 cameras" in last and "1 more not shown" in last and "1 filtered out" in last
