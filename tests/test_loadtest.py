"""`anjeon loadtest` runs and writes a well-formed report (a tiny load; the real figures are benchmarks)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from conftest import ROOT

REQUIRED = {
    "schema",
    "config",
    "edge_encode_ms",
    "summary",
    "timeline",
}
SUMMARY = {
    "duration_s",
    "offered_fps",
    "sent_fps",
    "delivered_fps",
    "drop_rate",
    "drops",
    "latency_ms",
    "stages_ms",
    "workers",
    "processes",
    "cameras_served",
    "p99_slope_ms_per_min",
}


def test_loadtest_spawn_writes_json_and_plot(tmp_path):
    out, png = tmp_path / "lt.json", tmp_path / "lt.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "anjeon",
            "loadtest",
            "--spawn",
            "--workers",
            "2",
            "--detector",
            "null",
            "--cameras",
            "3",
            "--fps",
            "5",
            "--resolution",
            "640x360",
            "--duration",
            "4",
            "--json",
            str(out),
            "--plot",
            str(png),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert REQUIRED <= set(report) and report["schema"] == "anjeon.loadtest/1"
    s = report["summary"]
    assert SUMMARY <= set(s)
    assert 10 <= s["offered_fps"] <= 20  # 3 cameras x 5 fps
    assert s["delivered_fps"] > 0 and s["cameras_served"] == 3
    spread = s["camera_fps"]
    assert spread["unserved"] == 0 and 0 < spread["min"] <= spread["median"] <= spread["max"]
    assert {spread["slowest"], spread["fastest"]} <= {"load00", "load01", "load02"}
    assert set(s["stages_ms"]) == {
        "transport_in",
        "broker_wait",
        "transport_out",
        "decode",
        "inference",
        "publish",
    }
    assert 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]
    assert {w["name"] for w in s["workers"]} == {"worker-1", "worker-2"}
    assert {p["role"] for p in s["processes"]} >= {"broker", "worker", "edge"}
    assert all(p["rss_mb"] > 0 for p in s["processes"])
    assert len(report["timeline"]) >= 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "delivered" in done.stdout and "latency ms" in done.stdout


def test_loadtest_ramp_reports_steps(tmp_path):
    out = tmp_path / "ramp.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "anjeon",
            "loadtest",
            "--spawn",
            "--detector",
            "null",
            "--cameras",
            "2",
            "--resolution",
            "320x240",
            "--ramp",
            "--ramp-start",
            "2",
            "--step-seconds",
            "2",
            "--slo-ms",
            "1000",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ramp = json.loads(out.read_text())["ramp"]
    assert ramp["steps"] and ramp["steps"][0]["offered_fps"] > 0
    # Each step offers more than the one before.
    offered = [s["offered_fps"] for s in ramp["steps"]]
    assert offered == sorted(offered)
    assert ramp["sustainable_fps"] is None or ramp["sustainable_fps"] > 0
    report = json.loads(out.read_text())
    if ramp["sustainable_fps"]:  # the same sizing answer as docs/benchmarks.md, for this machine
        sizing = report["sizing"]
        assert sizing["worker_fps"] > 0 and sizing["rows"]
        row = next(r for r in sizing["rows"] if r["cameras"] == 100 and r["fps"] == 10)
        (workers,) = row["workers"].values()
        assert workers == math.ceil(1000 / (0.8 * sizing["worker_fps"]))
        assert "sizing for this machine" in done.stdout and "| 100 | 10 | 1000 |" in done.stdout


def test_loadtest_bad_resolution():
    done = subprocess.run(
        [sys.executable, "-m", "anjeon", "loadtest", "--resolution", "big"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "should be WIDTHxHEIGHT" in done.stderr


def test_benchmark_command_runs_and_writes_its_report(tmp_path):
    """The transport benchmark on a tiny load: it runs, its JSON is well-formed, the report is generated."""
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_all", "transport", "--seconds", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    data = json.loads((out / "transport.json").read_text())
    for key in ("raw_pushpull_fps", "raw_pushpull_decode_fps", "broker_drain_fps", "anjeon_null_fps", "hop"):
        assert key in data
    assert data["raw_pushpull_fps"] > 0 and data["broker_drain_fps"] > 0 and data["anjeon_null_fps"] > 0
    assert set(data["hop"]) == {"transport_in", "broker_wait", "transport_out"}
    report = (tmp_path / "benchmarks.md").read_text()
    assert "## 4. Transport ceiling" in report and "machine" in data


def test_sizing_from_measured_capacities():
    from anjeon.loadtest.sizing import Capacity, plan, render

    cpu, gpu = Capacity(2.5, 800.0, "cpu"), Capacity(None, None, "gpu")
    rows = plan([cpu, gpu], cameras=(16, 500), rates=(10.0,))
    small, big = rows
    assert small["frames_per_s"] == 160 and small["workers"] == {"cpu": 80, "gpu": None}  # 160 / (0.8 * 2.5)
    assert small["broker_cores"] == 0.128 and small["brokers"] == 1
    assert big["broker_cores"] == 4.0 and big["brokers"] == 5  # shards at 80 % of a core each
    table = render(rows, [cpu, gpu])
    assert (
        table[0].startswith("| cameras |") and "| 500 | 10 | 5000 | 2500 | unmeasured | 4.00 | 5 |" in table
    )
