"""Run anjeon's benchmarks side by side and write docs/benchmarks.md.

    .venv/bin/python -m benchmarks.run_all            # everything (~28 min on a 2-core machine)
    .venv/bin/python -m benchmarks.run_all freshness  # one of: freshness overhead scaling transport memory viewer
                                                      # batching scale peer (peer: Roboflow's InferencePipeline)

Results go to docs/benchmarks/*.json and *.png; docs/benchmarks.md is
regenerated from every JSON present. Figures are ratios measured in one run
on one machine; the machine is recorded with them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from . import common
from .baselines import KINDS, run_baseline

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, no GPU"


LOAD_BEFORE: dict[str, float] = {}  # 1-minute load average just before each benchmark: was the machine quiet?


def save(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data["machine"], data["date"] = machine(), time.strftime("%Y-%m-%d %H:%M")
    if name in LOAD_BEFORE:
        data["load_before"] = LOAD_BEFORE[name]
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


def say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def latency_profile(records: list[tuple[float, float]], start: float) -> dict:
    """p50/p99 overall and p99 per 5 s bucket (by completion time), plus its slope."""
    if not records:
        return {"completed": 0, "p50": None, "p99": None, "slope_ms_per_min": None, "timeline": []}
    lat = np.array([(done - cap) * 1000 for cap, done in records])
    done = np.array([d - start for _, d in records])
    buckets = []
    for a in np.arange(0, done.max() + 1e-9, 5.0):
        sel = lat[(done >= a) & (done < a + 5)]
        if len(sel):
            buckets.append({"t": float(a), "p99": float(np.percentile(sel, 99))})
    slope = (
        float(np.polyfit([b["t"] for b in buckets], [b["p99"] for b in buckets], 1)[0]) * 60
        if len(buckets) >= 3
        else None
    )
    return {
        "completed": int(len(lat)),
        "p50": round(float(np.percentile(lat, 50)), 1),
        "p99": round(float(np.percentile(lat, 99)), 1),
        "slope_ms_per_min": None if slope is None else round(slope, 1),
        "timeline": buckets,
    }


def anjeon_profile(report: dict) -> dict:
    s = report["summary"]
    pts = [{"t": p["t"], "p99": p["p99"]} for p in report["timeline"] if p["p99"] is not None]
    return {
        "completed": int(s["delivered_fps"] * s["duration_s"]),
        "p50": s["latency_ms"]["p50"],
        "p99": s["latency_ms"]["p99"],
        "slope_ms_per_min": s["p99_slope_ms_per_min"],
        "timeline": pts,
        "delivered_fps": s["delivered_fps"],
        "drops": s["drops"],
    }


def bench_freshness(seconds: float) -> None:
    pool = common.make_pool(1280, 720)
    st = common.service_time("person", 2, pool)
    say(f"freshness: one worker's service time {st * 1000:.0f} ms (capacity {1 / st:.1f} fps)")
    results = {"service_ms": round(st * 1000, 1), "seconds": seconds, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for factor in (1, 2, 4):
            rate = factor / st
            with common.anjeon_system(1, "person", threads=2) as address:
                report = common.load_run(address, cameras=4, fps=rate / 4, seconds=seconds)
            results["runs"].append(
                {
                    "system": "anjeon",
                    "factor": factor,
                    "offered_fps": round(rate, 2),
                    **anjeon_profile(report),
                }
            )
            say(f"  {factor}x anjeon p99 {results['runs'][-1]['p99']} ms")
            for kind in KINDS:
                records = run_baseline(kind, pool.jpegs, rate, seconds, 2, Path(tmp))
                start = min(c for c, _ in records) if records else 0.0
                results["runs"].append(
                    {
                        "system": kind,
                        "factor": factor,
                        "offered_fps": round(rate, 2),
                        **latency_profile(records, start),
                    }
                )
                say(f"  {factor}x {kind} p99 {results['runs'][-1]['p99']} ms")
    save("freshness", results)
    plot_freshness(results)


def plot_freshness(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=False)
    for ax, factor in zip(axes, (1, 2, 4)):
        for run in results["runs"]:
            if run["factor"] == factor and run["timeline"]:
                ax.plot(
                    [p["t"] for p in run["timeline"]],
                    [p["p99"] / 1000 for p in run["timeline"]],
                    label=run["system"],
                    linewidth=2.5 if run["system"] == "anjeon" else 1.2,
                )
        ax.set_title(f"offered {factor}x one worker's capacity")
        ax.set_xlabel("seconds into the run")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("p99 end-to-end latency (s, log)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(OUT / "freshness.png", dpi=90)
    plt.close(fig)


def bench_overhead(seconds: float) -> None:
    pool = common.make_pool(1280, 720)
    st = common.service_time("person", 2, pool, seconds=seconds)
    with common.anjeon_system(1, "person", threads=2) as address:
        report = common.load_run(address, cameras=2, fps=1.0 / st, seconds=seconds)  # 2x capacity
    bare, piped = 1.0 / st, report["summary"]["delivered_fps"]
    save(
        "overhead",
        {
            "bare_fps": round(bare, 2),
            "pipeline_fps": piped,
            "ratio": round(piped / bare, 3),
            "seconds": seconds,
            "stages_ms": report["summary"]["stages_ms"],
        },
    )
    say(f"overhead: bare {bare:.2f} fps, pipeline {piped:.2f} fps ({100 * piped / bare:.0f} %)")


def bench_scaling(seconds: float) -> None:
    rows = []
    for model, cams, fps in (("null", 8, 100.0), ("person", 4, 10.0)):
        base = None
        for n in (1, 2, 4):
            with common.anjeon_system(n, model, threads=1) as address:
                s = common.load_run(address, cameras=cams, fps=fps, seconds=seconds)["summary"]
            base = base or s["delivered_fps"]
            rows.append(
                {
                    "model": model,
                    "workers": n,
                    "offered_fps": s["offered_fps"],
                    "delivered_fps": s["delivered_fps"],
                    "ratio": round(s["delivered_fps"] / base, 2),
                    "p99_ms": s["latency_ms"]["p99"],
                }
            )
            say(f"scaling: {model} x{n}: {s['delivered_fps']} fps")
    save("scaling", {"seconds": seconds, "rows": rows})


def _raw_pushpull(seconds: float, decode: bool) -> float:
    """Frames/s of 720p JPEGs between two processes over raw PUSH/PULL (the ceiling here)."""
    code = f"""
import time, zmq, msgpack, cv2, numpy as np, sys
from anjeon.loadtest.cameras import make_pool
pool = make_pool(1280, 720)
ctx = zmq.Context()
if sys.argv[1] == 'recv':
    pull = ctx.socket(zmq.PULL); pull.bind('tcp://127.0.0.1:' + sys.argv[2])
    n = 0; start = None
    while True:
        if not pull.poll(3000 if start else 120000): break  # a busy machine starts the sender late
        h, j = pull.recv_multipart(copy=False)
        if start is None: start = time.perf_counter()
        if {decode}: cv2.imdecode(np.frombuffer(j.buffer, np.uint8), 1)
        n += 1
        if time.perf_counter() - start > {seconds}: break
    print(n / (time.perf_counter() - start))
else:
    push = ctx.socket(zmq.PUSH); push.connect('tcp://127.0.0.1:' + sys.argv[2])
    end = time.perf_counter() + {seconds} + 5; k = 0
    while time.perf_counter() < end:
        j = pool.jpegs[k % len(pool.jpegs)]
        push.send_multipart([msgpack.packb({{'camera': 'c', 'seq': k, 't_capture': time.time()}}), j], copy=False); k += 1
"""
    from anjeon.protocol.endpoints import free_base_port

    port = str(free_base_port())
    recv = subprocess.Popen([sys.executable, "-c", code, "recv", port], stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    send = subprocess.Popen([sys.executable, "-c", code, "send", port])
    out, _ = recv.communicate(timeout=seconds + 60)
    send.kill()
    return round(float(out.strip()), 1)


SENDER = """
import sys, time, zmq
from anjeon.loadtest.cameras import SyntheticCameras, make_pool
from anjeon.protocol.endpoints import BrokerAddress
cams = SyntheticCameras(BrokerAddress.parse(sys.argv[1]), 4, float(sys.argv[2]), make_pool(1280, 720),
                        prefix=sys.argv[3]).start()
time.sleep(float(sys.argv[4]))
cams.stop()
print(cams.counts.sent)
"""


def _results_out(address, seconds: float) -> tuple[float, dict]:
    """Results/s leaving the broker over ``seconds``, from its own status counters."""
    import zmq

    from anjeon.protocol import messages, wire
    from anjeon.protocol.endpoints import RESULTS_OUT

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(address.endpoint(RESULTS_OUT))
    sub.setsockopt(zmq.SUBSCRIBE, wire.STATUS_TOPIC)
    sub.setsockopt(zmq.SUBSCRIBE, wire.RESULT_PREFIX.encode())  # results flow only to subscribers

    def snapshot(after: float, flowing: bool = False) -> tuple[float, dict]:
        """The first status snapshot after `after` (with `flowing`: once results leave the broker at all)."""
        deadline = time.monotonic() + 180  # a busy machine starts the load generators late
        while time.monotonic() < deadline:
            if not sub.poll(1000):
                continue
            frames = sub.recv_multipart()
            if frames[0] == wire.STATUS_TOPIC and time.monotonic() >= after:
                status = messages.decode_status(frames[1])
                if not flowing or sum(c["results_out"] for c in status["cameras"].values()):
                    return time.monotonic(), status
        raise RuntimeError("no results left the broker within 180 s")

    try:
        t0, first = snapshot(time.monotonic(), flowing=True)
        t1, last = snapshot(t0 + seconds)
        count = sum(c["results_out"] for c in last["cameras"].values()) - sum(
            c["results_out"] for c in first["cameras"].values()
        )
        return count / (t1 - t0), last
    finally:
        ctx.destroy(linger=0)


def _broker_ceiling(seconds: float, drains: int = 2, senders: int = 2) -> dict:
    """Frames/s through a broker to workers that do nothing (benchmarks/drain_worker.py)."""
    from anjeon.protocol.endpoints import BrokerAddress, free_base_port

    address = BrokerAddress("127.0.0.1", free_base_port())
    procs = [
        subprocess.Popen(
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
                str(address.base_port),
            ]
        )
    ]
    procs += [
        subprocess.Popen([sys.executable, "-m", "benchmarks.drain_worker", str(address)], cwd=ROOT)
        for _ in range(drains)
    ]
    try:
        time.sleep(2)
        procs += [
            subprocess.Popen(
                [sys.executable, "-c", SENDER, str(address), "5000", f"s{i}x", str(seconds + 8)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(senders)
        ]
        time.sleep(4)
        fps, status = _results_out(address, seconds)
        return {
            "delivered_fps": round(fps, 1),
            "broker_cpu": status.get("process", {}).get("cpu"),
            "senders": senders,
            "drains": drains,
        }
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def bench_transport(seconds: float) -> None:
    raw = _raw_pushpull(seconds, decode=False)
    raw_decode = _raw_pushpull(seconds, decode=True)
    say(f"transport: raw PUSH/PULL {raw} fps, with decode {raw_decode} fps")
    ceiling = _broker_ceiling(seconds)
    say(f"transport: through the broker to drain workers {ceiling['delivered_fps']} fps")
    with common.anjeon_system(2, "null", threads=1) as address:
        s = common.load_run(address, cameras=8, fps=400.0, seconds=seconds)["summary"]
    with common.anjeon_system(1, "null", threads=1) as address:
        hop = common.load_run(address, cameras=1, fps=20.0, seconds=seconds)["summary"]
    stages = hop["stages_ms"]
    save(
        "transport",
        {
            "seconds": seconds,
            "raw_pushpull_fps": raw,
            "raw_pushpull_decode_fps": raw_decode,
            "broker_drain_fps": ceiling["delivered_fps"],
            "broker_cpu": ceiling["broker_cpu"],
            "ratio_broker_to_raw": round(ceiling["delivered_fps"] / raw, 3),
            "anjeon_null_fps": s["delivered_fps"],
            "anjeon_offered_fps": s["offered_fps"],
            "ratio_to_raw_decode": round(s["delivered_fps"] / raw_decode, 3),
            "hop": {k: stages[k] for k in ("transport_in", "broker_wait", "transport_out")},
            "hop_latency_ms": hop["latency_ms"],
        },
    )
    say(f"transport: anjeon null {s['delivered_fps']} fps")


def bench_memory(seconds: float) -> None:
    pool = common.make_pool(1280, 720)
    st = common.service_time("person", 2, pool, seconds=5)
    with common.anjeon_system(1, "person", threads=2) as address:
        watch = subprocess.Popen(
            [sys.executable, "-m", "anjeon", "watch", "--broker", str(address), "--json", "--name", "watch"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)
            s = common.load_run(address, cameras=4, fps=1.0 / st, seconds=seconds)["summary"]  # 4x capacity
        finally:
            watch.terminate()
            watch.wait(10)
    save(
        "memory",
        {
            "seconds": seconds,
            "offered_fps": s["offered_fps"],
            "delivered_fps": s["delivered_fps"],
            "rss_mb_start_end": s["rss_mb_start_end"],
        },
    )
    say(f"memory: {s['rss_mb_start_end']}")


def bench_viewer(seconds: float) -> None:
    from .viewer import run  # needs the viewer extra (Playwright) and Debian's /usr/bin/chromium

    results = run(seconds)
    save("viewer", results)
    for r in results["rows"]:
        say(
            f"viewer: {r['cameras']} cameras: page load {r['page_load_ms_median']:.0f} ms, frame age p50 "
            f"{r['frame_age_ms']['p50']} ms (pipeline {r['pipeline_latency_ms']['p50']} ms), viewer CPU "
            f"{r['viewer_cpu_pct_per_camera']} % of a core per camera"
        )


def bench_batching(seconds: float) -> None:
    """ms per frame of the default model at batch 1/2/4/8 on this CPU: the measurement behind --batch auto."""
    from anjeon.inference.batching import DEFAULT_BATCH

    from .gpu import model_fps

    rows = []
    for n in (1, 2):
        for r in model_fps("person", "cpu", 2, [1, 2, 4, 8], seconds, 768, 576):
            rows.append({"pass": n, **r})
    cheapest = min(rows, key=lambda r: r["ms_per_frame"])["batch"]
    save(
        "batching",
        {
            "threads": 2,
            "resolution": "768x576",
            "seconds": seconds,
            "passes": 2,
            "rows": rows,
            "cheapest": cheapest,
            "chosen": DEFAULT_BATCH["cpu"],
        },
    )
    say(f"batching: cheapest per frame at batch {cheapest}; the CPU default is {DEFAULT_BATCH['cpu']}")


def bench_scale(seconds: float) -> None:
    from .scale import run

    data = run(500, 2.0, seconds, 2, 160, 120)
    save("scale", data)
    say(f"scale: 500 cameras, delivered {data['delivered_fps']} fps, p99 {data['latency_ms']['p99']} ms")


def bench_peer(seconds: float) -> None:
    from .peer_inference import run

    save("peer", run(seconds))


BENCHES = {
    "freshness": bench_freshness,
    "overhead": bench_overhead,
    "scaling": bench_scaling,
    "transport": bench_transport,
    "memory": bench_memory,
    "viewer": bench_viewer,
    "batching": bench_batching,
    "scale": bench_scale,
    "peer": bench_peer,
}
DEFAULT_SECONDS = {
    "freshness": 60,
    "overhead": 30,
    "scaling": 20,
    "transport": 10,
    "memory": 60,
    "viewer": 25,
    "batching": 10,
    "scale": 30,
    "peer": 60,
}


@click.command()
@click.argument("names", nargs=-1, type=click.Choice(sorted(BENCHES)))
@click.option("--seconds", type=float, help="Override every benchmark's run length.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=OUT,
    help="Folder for the JSON and PNG results; the report is written next to it as benchmarks.md.",
)
def main(names: tuple[str, ...], seconds: float | None, out: Path) -> None:
    """Run the named benchmarks (default: all), then regenerate docs/benchmarks.md."""
    global OUT
    OUT = out
    for name in names or tuple(BENCHES):
        say(f"running {name}")
        LOAD_BEFORE[name] = round(os.getloadavg()[0], 2)
        BENCHES[name](seconds or DEFAULT_SECONDS[name])
    from .write_docs import write

    write(OUT, OUT.parent / "benchmarks.md")
    say(f"wrote {OUT.parent / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
