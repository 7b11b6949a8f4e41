"""Hundreds of cameras through one broker, with the console and the safety service listening.

    .venv/bin/python -m benchmarks.scale                       # 500 cameras x 2 fps, 160x120, 30 s
    .venv/bin/python -m benchmarks.scale --cameras 50 --seconds 5   # a smoke run

A private broker, --workers `--model null` workers (decode only: the broker and the
subscribers are what is measured), the web console (`anjeon viewer`, no browser
connected) and the safety service with one intrusion zone per camera, all on this
machine; `anjeon loadtest`'s synthetic cameras offer the load. Reports delivered
fps, the spread across cameras, latency, and CPU and memory of broker, viewer and
safety (from their heartbeats), into docs/benchmarks/scale.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click

from anjeon.loadtest.runner import LoadTestConfig, Run, spawned_system, wait_for_status, wait_for_workers
from anjeon.protocol.endpoints import BrokerAddress, free_base_port

from .common import LOG_DIR, QuietProgress

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks"


def say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def safety_config(cameras: list[str], folder: Path) -> Path:
    """A site config with an intrusion zone on the lower half of every camera (JSON is YAML)."""
    zone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
    config = {
        "safety": {
            "store": str(folder / "events.db"),
            "snapshots": str(folder / "snapshots"),
            "cameras": {
                cam: {
                    "zones": {"ground": zone},
                    "rules": [{"type": "intrusion", "zone": "ground", "min_duration": 2}],
                }
                for cam in cameras
            },
        }
    }
    path = folder / "site.yaml"
    path.write_text(json.dumps(config))
    return path


def start(args: list[str], name: str) -> subprocess.Popen:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"scale-{name}.log", "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "anjeon", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )


def role_figures(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """CPU (% of one core) and RSS of the broker, the console, the safety service, workers and load generator."""
    out: dict[str, dict[str, Any]] = {}
    for p in summary["processes"]:
        role = str(p.get("role"))
        key = {"broker": "broker", "viewer": "viewer", "safety": "safety", "edge": "load generator"}.get(
            role, role
        )
        if key == "worker":
            key = f"worker {p.get('name')}"
        out[key] = {"cpu": p.get("cpu"), "rss_mb": p.get("rss_mb")}
    for name, (a, _b) in summary.get("rss_mb_start_end", {}).items():
        for key, fig in out.items():
            if key == name or key.endswith(name):
                fig["rss_mb_start"] = a
    return out


def wait_for_names(address: BrokerAddress, names: set[str], timeout: float) -> bool:
    """Until the broker's status lists these subscribers online (the console and safety start slowly)."""
    return wait_for_status(
        address,
        lambda s: names <= {p.get("name") for p in s.get("subscribers", {}).values() if p.get("online")},
        timeout,
        threading.Event(),
    )


def run(cameras: int, fps: float, seconds: float, workers: int, width: int, height: int) -> dict[str, Any]:
    address = BrokerAddress("127.0.0.1", free_base_port())
    cfg = LoadTestConfig(
        broker=address,
        cameras=cameras,
        fps=fps,
        width=width,
        height=height,
        duration=seconds,
        spawn=True,
        workers=workers,
        model="null",
        threads=1,
        batch="auto",
    )
    ids = [f"load{i:02d}" for i in range(cameras)]
    _, shutdown = spawned_system(cfg, LOG_DIR, cores=os.cpu_count() or 1)
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            site = safety_config(ids, Path(tmp))
            procs.append(
                start(
                    ["safety", "--broker", str(address), "--config", str(site), "--name", "safety"], "safety"
                )
            )
            procs.append(
                start(
                    [
                        "viewer",
                        "--broker",
                        str(address),
                        "--port",
                        str(free_base_port()),
                        "--bind",
                        "127.0.0.1",
                        "--name",
                        "viewer",
                        "--acks",
                        str(Path(tmp) / "acks.jsonl"),
                    ],
                    "viewer",
                )
            )
            if not wait_for_workers(address, workers, 240, threading.Event()):
                raise RuntimeError(f"workers did not come up; see {LOG_DIR}")
            if not wait_for_names(address, {"viewer", "safety"}, 240):
                raise RuntimeError(f"viewer or safety did not come up; see {LOG_DIR}/scale-*.log")
            report = Run(cfg, threading.Event(), QuietProgress()).execute()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            shutdown()
    s = report["summary"]
    return {
        "cameras": cameras,
        "fps_per_camera": fps,
        "resolution": f"{width}x{height}",
        "seconds": seconds,
        "workers": workers,
        "offered_fps": s["offered_fps"],
        "delivered_fps": s["delivered_fps"],
        "drop_rate": s["drop_rate"],
        "drops": s["drops"],
        "latency_ms": s["latency_ms"],
        "stages_ms": {k: v["p50"] for k, v in s["stages_ms"].items()},
        "worker_batch_mean": [w["batch_mean"] for w in s["workers"]],
        "camera_fps": s["camera_fps"],
        "cameras_served": s["cameras_served"],
        "processes": role_figures(s),
        "jpeg_kb": report.get("jpeg_kb"),
    }


@click.command()
@click.option("--cameras", default=500, type=click.IntRange(1, 512))
@click.option("--fps", default=2.0, type=float, help="Frames per second per camera.")
@click.option("--seconds", default=30.0, type=float)
@click.option("--workers", default=2, type=int, help="--model null workers.")
@click.option("--resolution", default="160x120")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=OUT)
def main(cameras: int, fps: float, seconds: float, workers: int, resolution: str, out: Path) -> None:
    """Run the many-cameras benchmark and write OUT/scale.json."""
    from .run_all import machine

    width, height = (int(v) for v in resolution.split("x"))
    result = run(cameras, fps, seconds, workers, width, height)
    result["machine"], result["date"] = machine(), time.strftime("%Y-%m-%d %H:%M")
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    c = result["camera_fps"]
    say(
        f"{cameras} cameras x {fps} fps: delivered {result['delivered_fps']} of {result['offered_fps']} fps, per "
        f"camera {c['min']}..{c['max']} fps, p99 {result['latency_ms']['p99']} ms; {result['processes']}"
    )


if __name__ == "__main__":
    main()
