"""Soak: the whole system on the sample video for a long time; does anything grow?

    .venv/bin/python -m benchmarks.soak --minutes 30 --out /tmp/soak          # the documented run
    .venv/bin/python -m benchmarks.soak --minutes 2 --model null --out /tmp/s  # what the test suite runs

One `anjeon up` (broker, one worker, the edge looping ../shared/samples/vtest.avi,
the safety service with intrusion and crowding rules, the web console), exactly
as a site runs it. Every --interval seconds it records, for every process `up`
started (found again each time, so a restarted child is noticed): resident
memory, open file descriptors and threads from /proc, and the results per
second delivered on the bus. It writes samples.json, a verdict per process, and
with --plot a PNG of it all.

The verdict (no_growth) compares the median of the last third of the samples
after warm-up with the median of the first third: a slope fitted to a few
noisy samples would call any allocator hiccup a leak, a median of thirds does
not, while a real leak still shows as a step between the thirds.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import zmq

from anjeon.protocol.endpoints import free_base_port

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "samples" / "vtest.avi"
WARMUP_SAMPLES = 3  # model load, first allocations, sockets connecting
RSS_SLACK_MB = 15.0  # growth between thirds tolerated: allocator noise on a busy machine
RSS_SLACK_FRACTION = 0.10
COUNT_SLACK = 3  # fds and threads may wobble by this much (a reconnect, a short-lived thread)

SITE = """\
broker:
  bind: 127.0.0.1
  base_port: {base}
workers:
  count: 1
  model: "{model}"
safety:
  store: {store}
  cameras:
    soak:
      zones:
        walkway: [[0.42, 0.32], [0.78, 0.32], [0.78, 0.66], [0.42, 0.66]]
      rules:
        - {{type: intrusion, zone: walkway, min_duration: 1.0, end_after: 3.0}}
        - {{type: crowding, zone: walkway, max_people: 5}}
  alerts:
    - {{type: log}}
"""


@dataclass
class Sample:
    t: float  # seconds since start
    fps: float  # results per second delivered on the bus since the previous sample
    procs: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> rss_mb, fds, threads, pid


def _children(parent: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return kids


def _name(pid: int) -> str:
    """`python -m anjeon worker ... --name worker-1` -> worker-1 (or the role)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().decode(errors="replace").split("\0")
    if "--name" in argv:
        return argv[argv.index("--name") + 1]
    return argv[argv.index("anjeon") + 1] if "anjeon" in argv else argv[0]


def measure(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    with open(f"/proc/{pid}/status") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    return {
        "pid": pid,
        "rss_mb": round(rss, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": threads,
    }


def sample_processes(parent: int) -> dict[str, dict[str, float]]:
    out = {}
    for pid in _children(parent):
        try:
            out[_name(pid)] = measure(pid)
        except (OSError, StopIteration, ValueError):
            continue  # exited between listing and reading
    return out


def verdict(samples: list[Sample]) -> dict[str, dict]:
    """Per process: medians of the first and last third after warm-up, and whether anything grew."""
    steady = samples[WARMUP_SAMPLES:]
    third = max(1, len(steady) // 3)
    out = {}
    for name in sorted({n for s in steady for n in s.procs}):
        series = {
            key: [s.procs[name][key] for s in steady if name in s.procs]
            for key in ("rss_mb", "fds", "threads")
        }
        pids = {s.procs[name]["pid"] for s in steady if name in s.procs}
        row: dict = {"samples": len(series["rss_mb"]), "restarts": len(pids) - 1}
        for key, values in series.items():
            first, last = statistics.median(values[:third]), statistics.median(values[-third:])
            row[key] = {"first": first, "last": last, "max": max(values)}
        rss = row["rss_mb"]
        row["no_growth"] = bool(
            len(pids) == 1
            and rss["last"] - rss["first"] <= RSS_SLACK_MB + RSS_SLACK_FRACTION * rss["first"]
            and row["fds"]["last"] - row["fds"]["first"] <= COUNT_SLACK
            and row["threads"]["last"] - row["threads"]["first"] <= COUNT_SLACK
        )
        out[name] = row
    return out


def plot(samples: list[Sample], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_mem, ax_fps) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    minutes = [s.t / 60 for s in samples]
    for name in sorted({n for s in samples for n in s.procs}):
        ax_mem.plot(
            [s.t / 60 for s in samples if name in s.procs],
            [s.procs[name]["rss_mb"] for s in samples if name in s.procs],
            label=name,
        )
    ax_mem.set_ylabel("resident memory (MB)")
    ax_mem.legend(loc="upper left", fontsize=8, ncol=3)
    ax_mem.grid(alpha=0.3)
    ax_fps.plot(minutes, [s.fps for s in samples], color="black")
    ax_fps.set_ylabel("results/s")
    ax_fps.set_xlabel("minutes")
    ax_fps.grid(alpha=0.3)
    fig.suptitle("anjeon up on the looped sample: memory per process and delivered results")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def run(minutes: float, model: str, fps: float, interval: float, out: Path, source: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="anjeon-soak-"))
    base = free_base_port()
    site = work / "site.yaml"
    site.write_text(SITE.format(base=base, model=model, store=work / "events.db"))
    viewer_port, metrics_port = free_base_port(), free_base_port()
    argv = [
        sys.executable,
        "-m",
        "anjeon",
        "up",
        "--config",
        str(site),
        "--camera",
        f"soak={source}",
        "--loop",
        "--fps",
        str(fps),
        "--viewer-port",
        str(viewer_port),
        "--metrics-port",
        str(metrics_port),
    ]
    log = open(out / "up.log", "wb")
    # Offline, and ultralytics' settings under the repo's cache rather than ~/.config (DESIGN.md pitfalls).
    env = dict(
        os.environ,
        YOLO_OFFLINE="1",
        YOLO_CONFIG_DIR=os.environ.get("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics")),
    )
    up = subprocess.Popen(
        argv,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{base + 3}")
    sub.setsockopt(zmq.SUBSCRIBE, b"res/soak/")
    samples: list[Sample] = []
    started = time.monotonic()
    stopping: list[int] = []
    # Ctrl-C or SIGTERM ends the run early, but `up` is still stopped and the samples so far are reported.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    try:
        while time.monotonic() - started < minutes * 60 and up.poll() is None and not stopping:
            count, window_end = 0, time.monotonic() + interval
            while (left := window_end - time.monotonic()) > 0 and not stopping:
                if sub.poll(left * 1000):
                    sub.recv_multipart()
                    count += 1
            samples.append(
                Sample(
                    t=round(time.monotonic() - started, 1),
                    fps=round(count / interval, 2),
                    procs=sample_processes(up.pid),
                )
            )
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()
        ctx.destroy(linger=0)
    steady_fps = [s.fps for s in samples[WARMUP_SAMPLES:]]
    from .run_all import machine

    report = {
        "minutes": minutes,
        "stopped_early": bool(stopping),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "load_average": round(os.getloadavg()[0], 1),
        "model": model,
        "fps_offered": fps,
        "interval_s": interval,
        "source": source,
        "samples": [asdict(s) for s in samples],
        "verdict": verdict(samples),
        "fps": {
            "median": statistics.median(steady_fps) if steady_fps else 0.0,
            "min": min(steady_fps, default=0.0),
        },
        "up_exit": up.returncode,
    }
    (out / "samples.json").write_text(json.dumps(report, indent=1))
    return report


def render(d: dict) -> list[str]:
    """The docs/benchmarks.md subsection for a saved run (benchmarks/write_docs.py calls it for soak.json)."""
    lines = [
        "## 12. Soak (benchmarks/soak.py)",
        "",
        f"`anjeon up` for {len(d['samples']) * d['interval_s'] / 60:.0f} minutes on the looped sample (one "
        f"camera at {d['fps_offered']:.0f} fps, one `{d['model']}` worker, the safety service with intrusion and "
        f"crowding rules, the web console), sampled every {d['interval_s']:.0f} s from /proc. First and last "
        f"are the medians of the first and last third of the samples after a {WARMUP_SAMPLES * d['interval_s']:.0f} s "
        "warm-up; a process grows "
        f"when the last exceeds the first by more than {RSS_SLACK_MB:.0f} MB + {RSS_SLACK_FRACTION:.0%} (memory) "
        f"or {COUNT_SLACK} (files, threads), or when it was restarted. Load average of the machine at the end: "
        f"{d.get('load_average', '-')} on {os.cpu_count()} cores (other sessions' tests ran meanwhile).",
        "",
        "| process | RSS first → last MB (max) | open fds | threads | restarts | grows? |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in d["verdict"].items():
        lines.append(
            f"| {name} | {r['rss_mb']['first']:.1f} → {r['rss_mb']['last']:.1f} ({r['rss_mb']['max']:.1f}) | "
            f"{r['fds']['first']:.0f} → {r['fds']['last']:.0f} | {r['threads']['first']:.0f} → "
            f"{r['threads']['last']:.0f} | {r['restarts']} | {'no' if r['no_growth'] else '**yes**'} |"
        )
    lines += [
        "",
        f"Delivered results: median {d['fps']['median']:.2f}/s, lowest {d['interval_s']:.0f} s window "
        f"{d['fps']['min']:.2f}/s.",
        "",
        "![memory per process and delivered results over the soak](benchmarks/soak.png)",
        "",
    ]
    return lines


@click.command()
@click.option("--minutes", default=30.0, type=click.FloatRange(0.5), help="How long to run.")
@click.option("--model", default="person", help="Worker model (null for a cheap run without detections).")
@click.option("--fps", default=5.0, type=click.FloatRange(0.1, 30), help="Frames per second the edge sends.")
@click.option("--interval", default=10.0, type=click.FloatRange(1), help="Seconds between samples.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("soak-out"),
    help="Where samples.json, up.log (and soak.png) go.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw memory and delivered fps over time into this PNG (needs matplotlib).",
)
def main(minutes: float, model: str, fps: float, interval: float, out: Path, plot_path: Path | None) -> None:
    source = str(SAMPLE) if SAMPLE.exists() else "synthetic"
    report = run(minutes, model, fps, interval, out, source)
    if plot_path is not None:
        plot([Sample(**s) for s in report["samples"]], plot_path)
    for name, row in report["verdict"].items():
        click.echo(
            f"{name:14} rss {row['rss_mb']['first']:6.1f} -> {row['rss_mb']['last']:6.1f} MB  "
            f"fds {row['fds']['first']:.0f} -> {row['fds']['last']:.0f}  threads {row['threads']['first']:.0f}"
            f" -> {row['threads']['last']:.0f}  restarts {row['restarts']}  "
            f"{'ok' if row['no_growth'] else 'GROWS'}"
        )
    click.echo(f"delivered: median {report['fps']['median']:.2f} results/s, min {report['fps']['min']:.2f}")
    sys.exit(0 if report["verdict"] and all(r["no_growth"] for r in report["verdict"].values()) else 1)


if __name__ == "__main__":
    main()
