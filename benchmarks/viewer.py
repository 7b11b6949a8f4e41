"""The web console under load: page load, frame age at paint, and the viewer's CPU per camera.

    .venv/bin/python -m benchmarks.run_all viewer           # 4, 16 and 64 cameras, JSON + docs/benchmarks.md
    .venv/bin/python -m benchmarks.viewer --cameras 2 --seconds 5   # a quick look, JSON on stdout
    nice -n 10 .venv/bin/python -m benchmarks.viewer --cameras 64 --seconds 20

For each camera count: a private broker with `--model null` workers, synthetic
cameras at 10 fps (anjeon.loadtest, registered as an edge, so the console sees
them online), the real `anjeon viewer` process and Debian's headless Chromium
driven by Playwright, all on this machine and its one clock.

- page load: navigation start to the moment every tile of the first page has
  painted a frame, in a fresh browser context each time (cold cache),
  PAGE_LOADS times; the console shows PAGE_SIZE tiles a page (its default), so
  with 64 cameras 16 are on screen and 48 are in the camera list only (their
  pictures are not sent: "pictures/s to the browser" counts what was);
- frame age: paint time minus the frame's capture time, for every frame the
  page painted (app.js records them in window.__anjeonPaints when defined),
  paired by (camera, seq) with the same frame's latency at a plain subscriber
  (the pipeline's own latency), so the difference is what the console adds;
- CPU: utime+stime of the viewer process from /proc over the measured window,
  per camera; Chromium's and the whole machine's for context.

Frames are 640x360, not 720p: on a 2-core machine the null workers, the
broker, the load generator, the viewer and Chromium share two cores, and
160 frames/s of 720p decoding alone would take most of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from anjeon.loadtest.cameras import FramePool, SyntheticCameras, make_pool
from anjeon.loadtest.measure import Collector
from anjeon.protocol import client
from anjeon.protocol.endpoints import BrokerAddress
from anjeon.runtime.supervisor import ServiceSpec, Supervisor

from . import common

CAMERA_COUNTS = (4, 16, 64)
PAGE_SIZE = (
    16  # tiles on the console's first page (viewer/console/static/app.js default): the cameras painted
)
FPS = 10.0  # per camera, as in the goal
WIDTH, HEIGHT = 640, 360
WORKERS = 2  # null workers, 1 thread each: they pass 640 frames/s of 64 cameras at this size
WARMUP = 3.0  # seconds of streaming before measuring (the console's fps windows fill)
IDLE_SECONDS = 5.0  # viewer CPU with the cameras streaming and no browser connected
PAGE_LOADS = 5
CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]  # as tests/test_viewer.py
VIEWPORT = {"width": 1400, "height": 860}
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

# The page records its paints only when this is defined (viewer/console/static/app.js, onFrame).
PAINTS_HOOK = "window.__anjeonPaints = [];"
DRAIN = "() => window.__anjeonPaints.splice(0)"
ALL_PAINTED = "n => new Set(window.__anjeonPaints.map(p => p.camera)).size >= n"
LOAD_TIMES = """() => {
  const first = new Map();
  for (const p of window.__anjeonPaints) if (!first.has(p.camera)) first.set(p.camera, p.painted);
  const nav = performance.getEntriesByType("navigation")[0];
  return {all_tiles_ms: Math.max(...first.values()) * 1000 - performance.timeOrigin,
          dom_content_loaded_ms: nav.domContentLoadedEventEnd, load_event_ms: nav.loadEventEnd};
}"""


# ---- the processes ---------------------------------------------------------------------------------
class FrameLatencies(Collector):
    """The load test's subscriber, also keeping each result's latency by (camera, seq) to pair with paints."""

    def __init__(self, broker: BrokerAddress) -> None:
        super().__init__(broker)
        self.by_frame: dict[tuple[str, int], float] = {}

    def _handle(self, msg: client.Result | client.Status) -> None:
        before = len(self.data.rows)
        super()._handle(msg)
        if len(self.data.rows) > before and isinstance(msg, client.Result):  # a fresh result
            row = self.data.rows[-1]
            self.by_frame[(row.camera, msg.frame.seq)] = row.latency_ms


@dataclass
class Viewer:
    pid: int
    url: str

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def wait_online(self, cameras: list[str], painted: list[str], timeout: float = 60.0) -> set[str]:
        """Until every camera is online (by the broker's status) and the first page's are streaming (fps > 0:
        they must paint); after half the timeout, those of the first page that stream then will do (an
        overloaded pipeline may starve some). Returns the cameras streaming."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                listed = self.get("/api/cameras")
                online = {c["camera"] for c in listed if c["online"]}
                streaming = {c["camera"] for c in listed if c["fps"] > 0}
                late = time.monotonic() > deadline - timeout / 2
                if online >= set(cameras) and (
                    streaming >= set(painted) or late and streaming & set(painted)
                ):
                    return streaming & set(cameras)
            time.sleep(0.3)
        raise RuntimeError(
            f"the viewer did not show {len(cameras)} cameras online in {timeout:.0f} s; "
            f"see {common.LOG_DIR}/viewer.log"
        )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def viewer_process(address: BrokerAddress, acks: Path) -> Iterator[Viewer]:
    """The real `anjeon viewer` as its own process (its CPU is what we measure), logging to logs/bench/."""
    port = free_port()
    sup = Supervisor(
        [
            ServiceSpec(
                "viewer",
                [
                    "--log-level",
                    "warning",
                    "viewer",
                    "--broker",
                    str(address),
                    "--port",
                    str(port),
                    "--acks",
                    str(acks),
                ],
            )
        ],
        common.LOG_DIR,
    )
    sup.start()
    try:
        viewer = Viewer(sup.children[0].proc.pid, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:  # serving once its API answers
            try:
                viewer.get("/api/me")
                break
            except OSError:
                if time.monotonic() > deadline or sup.children[0].proc.poll() is not None:
                    raise RuntimeError(f"the viewer did not start; see {common.LOG_DIR}/viewer.log") from None
                time.sleep(0.3)
        yield viewer
    finally:
        sup.shutdown()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    import playwright.sync_api as pw  # the viewer extra

    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# ---- CPU from /proc --------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): fields[0] is field 3, `state`."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime + stime


def chromium_pids() -> list[int]:
    """Our Chromium processes: descendants of this process whose program is Chromium."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        with contextlib.suppress(OSError):
            if "chromium" in os.readlink(f"/proc/{pid}/exe"):
                found.append(pid)
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSample:
    at: float
    viewer: float
    chromium: dict[int, float]
    machine: tuple[int, int]


def cpu_sample(viewer_pid: int) -> CpuSample:
    browser = {}
    for pid in chromium_pids():
        with contextlib.suppress(OSError, IndexError, ValueError):
            browser[pid] = cpu_seconds(pid)
    return CpuSample(time.monotonic(), cpu_seconds(viewer_pid), browser, machine_ticks())


def cpu_between(a: CpuSample, b: CpuSample) -> dict[str, float]:
    """% of one core for the viewer and Chromium, % of all cores for the machine, between two samples."""
    wall = b.at - a.at
    browser = sum(t - a.chromium.get(pid, 0.0) for pid, t in b.chromium.items())  # exited ones are lost
    busy, total = (y - x for x, y in zip(a.machine, b.machine))
    return {
        "viewer": 100 * (b.viewer - a.viewer) / wall,
        "chromium": 100 * browser / wall,
        "machine": 100 * busy / max(1, total),
    }


# ---- the measurements ------------------------------------------------------------------------------
def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    return {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}


def load_pages(browser: Any, url: str, tiles: int) -> tuple[list[dict[str, float]], Any, list[str]]:
    """PAGE_LOADS cold loads of the grid; returns their timings and the last page, left open."""
    loads, errors, page = [], [], None
    for _ in range(PAGE_LOADS):
        if page is not None:
            page.context.close()
        ctx = browser.new_context(viewport=VIEWPORT, locale="en-US")
        ctx.add_init_script(PAINTS_HOOK)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/", wait_until="domcontentloaded", timeout=30_000)
        page.wait_for_function(ALL_PAINTED, arg=tiles, timeout=60_000, polling=20)
        loads.append({k: round(v, 1) for k, v in page.evaluate(LOAD_TIMES).items()})
    return loads, page, errors


def watch_paints(page: Any, seconds: float) -> list[dict[str, Any]]:
    """Every paint of the open page for ``seconds`` (drained once a second so the page holds little)."""
    page.evaluate(DRAIN)
    paints: list[dict[str, Any]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        page.wait_for_timeout(min(1000, max(1, 1000 * (end - time.monotonic()))))
        paints += page.evaluate(DRAIN)
    return paints


def frame_ages(paints: list[dict[str, Any]], latencies: FrameLatencies) -> dict[str, Any]:
    ages, pipeline, excess = [], [], []
    for p in paints:
        age = (p["painted"] - p["t_capture"]) * 1000
        ages.append(age)
        lat = latencies.by_frame.get((p["camera"], int(p["seq"])))
        if lat is not None:
            pipeline.append(lat)
            excess.append(age - lat)
    return {
        "frame_age_ms": percentiles(ages),
        "pipeline_latency_ms": percentiles(pipeline),
        "console_adds_ms": percentiles(excess),
        "paired": len(excess),
        "painted": len(ages),
    }


def measure(
    browser: Any, cameras: int, seconds: float, pool: FramePool, tmp: Path, fps: float = FPS
) -> dict[str, Any]:
    with (
        common.anjeon_system(WORKERS, "null", threads=1) as address,
        viewer_process(address, tmp / f"acks-{cameras}.jsonl") as viewer,
    ):
        latencies = FrameLatencies(address).start()
        cams = SyntheticCameras(address, cameras, fps, pool, prefix="cam").start()
        try:
            streaming = viewer.wait_online(cams.camera_ids, cams.camera_ids[:PAGE_SIZE])
            time.sleep(WARMUP)
            a = cpu_sample(viewer.pid)
            time.sleep(IDLE_SECONDS)
            idle = cpu_between(a, cpu_sample(viewer.pid))
            loads, page, errors = load_pages(
                browser, viewer.url, len(streaming & set(cams.camera_ids[:PAGE_SIZE]))
            )
            sent0, a = viewer.get("/api/status")["viewer"], cpu_sample(viewer.pid)
            paints = watch_paints(page, seconds)
            b, sent1 = cpu_sample(viewer.pid), viewer.get("/api/status")["viewer"]
            page.context.close()
        finally:
            cams.stop()
            latencies.stop()
    wall = b.at - a.at
    cpu = cpu_between(a, b)
    delivered = sum(1 for r in latencies.data.rows if a.at <= r.received <= b.at)
    on_screen = min(cameras, PAGE_SIZE)
    return {
        "cameras": cameras,
        "fps": fps,
        "on_screen": on_screen,
        "streaming_at_start": len(streaming),
        "streaming_cameras": len({r.camera for r in latencies.data.rows if a.at <= r.received <= b.at}),
        "seconds": round(wall, 1),
        "page_load_ms": loads,
        "page_load_ms_median": statistics.median(x["all_tiles_ms"] for x in loads),
        "page_errors": errors,
        "delivered_fps_per_camera": round(delivered / wall / cameras, 2),
        "painted_fps_per_camera": round(len(paints) / wall / on_screen, 2),
        "pictures_to_browser_per_s": round((sent1["frames_sent"] - sent0["frames_sent"]) / wall, 1),
        "cameras_painted": len({p["camera"] for p in paints}),
        "viewer_skipped_per_s": round((sent1["superseded"] - sent0["superseded"]) / wall, 1),
        **frame_ages(paints, latencies),
        "viewer_cpu_pct": round(cpu["viewer"], 1),
        "viewer_cpu_pct_per_camera": round(cpu["viewer"] / cameras, 2),
        "viewer_cpu_pct_per_camera_no_browser": round(idle["viewer"] / cameras, 2),
        "chromium_cpu_pct": round(cpu["chromium"], 1),
        "machine_busy_pct": round(cpu["machine"], 1),
    }


def run(seconds: float, counts: tuple[int, ...] = CAMERA_COUNTS, fps: float = FPS) -> dict[str, Any]:
    import tempfile

    pool = make_pool(WIDTH, HEIGHT)
    with chromium() as browser, tempfile.TemporaryDirectory() as tmp:
        rows = [measure(browser, n, seconds, pool, Path(tmp), fps) for n in counts]
    return {
        "seconds": seconds,
        "fps_per_camera": fps,
        "resolution": f"{WIDTH}x{HEIGHT}",
        "jpeg_kb": round(sum(map(len, pool.jpegs)) / len(pool.jpegs) / 1024, 1),
        "workers": WORKERS,
        "page_loads": PAGE_LOADS,
        "goals": {"page_load_ms": 1000, "console_adds_ms": 100, "viewer_cpu_pct_per_camera": 4.0},
        "rows": rows,
    }


@click.command()
@click.option("--cameras", "counts", type=int, multiple=True, default=CAMERA_COUNTS, show_default=True)
@click.option(
    "--seconds", type=float, default=10.0, show_default=True, help="Measured window per camera count."
)
@click.option("--fps", type=float, default=FPS, show_default=True, help="Frames per second per camera.")
def main(counts: tuple[int, ...], seconds: float, fps: float) -> None:
    """Measure without saving: JSON on stdout (`python -m benchmarks.run_all viewer` saves and writes docs)."""
    click.echo(json.dumps(run(seconds, counts, fps), indent=2))


if __name__ == "__main__":
    main()
