"""anjeon against Roboflow's InferencePipeline, side by side in one run (`make bench` runs it as `peer`).

    python3 -m venv .cache/peer-venv && .cache/peer-venv/bin/pip install inference-cpu   # once: its own venv
    .venv/bin/python -m benchmarks.run_all peer --seconds 60

Same work for both: 4 cameras reading the sample video live from a real RTSP server (GStreamer's, looped,
10 fps; tests/rtsp_server.py), capture time stamped when a frame is read, the default model through
ultralytics on 2 torch threads, results counted and timed over the same window length after the same
warm-up, one system after the other on this machine. A live stream, not the file: the peer's file source
reads a file as fast as it decodes (DROP_OLDEST drops the rest), so the 80-second sample ended within seconds
and its sink went silent; cameras are streams for both systems anyway. The peer runs
`InferencePipeline.init_with_custom_logic` with DROP_OLDEST / EAGER (it hands the model one batch with the
newest frame of each camera); anjeon runs broker + one worker + one edge, at its default batch and at 1.
The peer needs its own venv because it brings other OpenCV wheels; torch and ultralytics are borrowed from
anjeon's venv at the end of its sys.path (benchmarks/peer_pipeline.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from rtsp_helpers import RtspServer  # noqa: E402  (the tests' real RTSP server, under the system python3)

PEER_PYTHON = ROOT / ".cache" / "peer-venv" / "bin" / "python"
SAMPLE = ROOT.parent / "shared" / "samples" / "vtest.avi"
CAMERAS, FPS, THREADS, WARMUP = 4, 10.0, 2, 15.0
BATCHES = (1, 2, 4)  # anjeon at fixed batch sizes, after its default


def pcts(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50": None, "p99": None}
    a = np.asarray(latencies)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1)}


def peer_missing() -> str | None:
    if not PEER_PYTHON.exists():
        return (
            f"{PEER_PYTHON} does not exist: python3 -m venv .cache/peer-venv && "
            ".cache/peer-venv/bin/pip install inference-cpu"
        )
    # Not from the checkout's root: its inference/ folder (anjeon's worker) would shadow the package.
    done = subprocess.run(
        [str(PEER_PYTHON), "-c", "from inference import InferencePipeline"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd="/",
    )
    if done.returncode != 0:
        return f"the peer venv cannot import inference: {done.stderr.strip().splitlines()[-1:]}"
    return None


def run_peer(seconds: float, weights: str, url: str) -> dict[str, Any]:
    site = sysconfig.get_paths()["purelib"]  # anjeon's venv: torch and ultralytics
    done = subprocess.run(
        [
            str(PEER_PYTHON),
            str(ROOT / "benchmarks" / "peer_pipeline.py"),
            "--video",
            url,
            "--cameras",
            str(CAMERAS),
            "--fps",
            str(FPS),
            "--seconds",
            str(seconds),
            "--warmup",
            str(WARMUP),
            "--weights",
            weights,
            "--threads",
            str(THREADS),
            "--site-packages",
            site,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + WARMUP + 600,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the peer failed: {done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    lat = data["latencies_ms"]
    if data.get("unstamped") and not data.get("stamped"):
        raise RuntimeError(
            "the peer's source sent no 'frame captured' updates: no capture time to measure from"
        )
    return {
        "system": "InferencePipeline",
        "results_per_s": round(len(lat) / data["seconds"], 2),
        **pcts(lat),
        "batch": round(data["batches_mean"], 2),
        "unstamped": data.get("unstamped", 0),
    }


def run_anjeon(seconds: float, url: str, batch: int | str = "auto") -> dict[str, Any]:
    import zmq

    from anjeon.loadtest.measure import Collector

    with common.anjeon_system(1, "person", threads=THREADS, batch=batch) as address:
        cams = [a for i in range(CAMERAS) for a in ("--camera", f"cam{i}={url}")]
        edge = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "anjeon",
                "--log-level",
                "warning",
                "edge",
                "--broker",
                str(address),
                "--fps",
                str(FPS),
                *cams,
            ],
            cwd=ROOT,
        )
        ctx = zmq.Context()
        collector = Collector(address, ctx).start()
        try:
            time.sleep(WARMUP)
            t0 = time.monotonic()
            threading.Event().wait(seconds)
            t1 = time.monotonic()
            rows = [r for r in collector.data.rows if t0 <= r.received <= t1]
            status = collector.latest_status()
        finally:
            collector.stop()
            ctx.destroy(linger=0)
            edge.terminate()
            edge.wait(10)
    means = [w.get("batch_mean") for w in status.get("workers", {}).values() if w.get("online")]
    return {
        "system": f"anjeon --batch {batch}",
        "results_per_s": round(len(rows) / (t1 - t0), 2),
        **pcts([r.latency_ms for r in rows]),
        "batch": means[0] if means else None,
    }


def run(seconds: float) -> dict[str, Any]:
    setup = (
        f"{CAMERAS} cameras of the sample (768x576) streamed live at {FPS:g} fps by a real RTSP server "
        "(GStreamer, looped; the peer's file source reads a file as fast as it decodes), the default model on "
        f"{THREADS} torch threads, {WARMUP:.0f} s warm-up then {seconds:.0f} s measured, anjeon (default "
        "batch, then the other batch sizes of 1, 2 and 4) first and the peer right after on the same machine (`benchmarks/peer_inference.py`). Latency: result "
        "received minus the time the frame was read from the source, on this machine's one clock."
    )
    missing = peer_missing()
    if missing:
        return {"error": missing, "setup": setup}
    from anjeon.inference.models import resolve_model

    weights = resolve_model("person").weights
    logs = ROOT / common.LOG_DIR
    logs.mkdir(parents=True, exist_ok=True)
    server = RtspServer(logs, SAMPLE, name="rtsp-peer").start()
    try:
        url = server.url()
        ours = run_anjeon(seconds, url)  # the default: the goal is judged on it
        # Fixed batch sizes beside it: what batching buys and costs here (the default is one of them).
        from anjeon.inference.batching import default_batch

        others = [run_anjeon(seconds, url, b) for b in BATCHES if b != default_batch("cpu")]
        theirs = run_peer(seconds, weights, url)
    finally:
        server.kill()
    goal = None
    if ours["p99"] is not None and theirs["p99"] is not None:
        goal = {
            "more_results": ours["results_per_s"] > theirs["results_per_s"],
            "half_p99": ours["p99"] <= 0.5 * theirs["p99"],
        }
    return {"setup": setup, "seconds": seconds, "runs": [ours, *others, theirs], "goal": goal}


if __name__ == "__main__":
    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0), indent=2))
