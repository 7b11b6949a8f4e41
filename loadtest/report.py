"""From what was sent and collected to the report: a dict (the JSON schema), a table, a plot.

The JSON schema ("anjeon.loadtest/1") is documented in docs/loadtest.md; keys
are only ever added, never renamed, within that schema version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .measure import STAGES, Collected, Row

SCHEMA = "anjeon.loadtest/1"


@dataclass
class SendSample:
    t: float  # monotonic
    offered: int
    sent: int
    dropped: int


def _pcts(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
        "max": round(float(a.max()), 1),
        "mean": round(float(a.mean()), 1),
    }


def _sample_at(samples: list[SendSample], t: float) -> SendSample:
    """Send counters at time t, interpolated between the once-a-second samples."""
    ts = [s.t for s in samples]

    def at(attr: str) -> int:
        return int(round(float(np.interp(t, ts, [getattr(s, attr) for s in samples]))))

    return SendSample(t, at("offered"), at("sent"), at("dropped"))


def _status_at(statuses: list[tuple[float, dict[str, Any]]], t: float) -> dict[str, Any]:
    before = [s for when, s in statuses if when <= t]
    return before[-1] if before else (statuses[0][1] if statuses else {})


def _camera_drops(status: dict[str, Any], cameras: set[str], stage: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for cam, info in status.get("cameras", {}).items():
        if cam in cameras:
            for reason, n in info.get("drops", {}).get(stage, {}).items():
                total[reason] = total.get(reason, 0) + int(n)
    return total


def _delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b.get(k, 0) - a.get(k, 0) for k in sorted(set(a) | set(b)) if b.get(k, 0) - a.get(k, 0)}


def _rss_by_name(status: dict[str, Any]) -> dict[str, float]:
    out = {"broker": status.get("process", {}).get("rss_mb")}
    for group in ("workers", "edges", "subscribers"):
        for p in status.get(group, {}).values():
            if p.get("online"):
                out[str(p.get("name"))] = p.get("process", {}).get("rss_mb")
    return {k: v for k, v in out.items() if v is not None}


def _rss_trend(first: dict[str, Any], last: dict[str, Any]) -> dict[str, list[float]]:
    """Resident memory of each process at the start and the end of the window: flat means no queue grows."""
    a, b = _rss_by_name(first), _rss_by_name(last)
    return {name: [a[name], b[name]] for name in b if name in a}


def camera_spread(rows: list[Row], cameras: set[str], duration: float) -> dict[str, Any]:
    """Delivered fps per camera: the slowest against the fastest (round robin must starve no one)."""
    counts = dict.fromkeys(cameras, 0)
    for r in rows:
        if r.camera in counts:
            counts[r.camera] += 1
    if not counts:
        return {"min": None, "median": None, "max": None, "slowest": None, "fastest": None, "unserved": 0}
    fps = {cam: n / duration for cam, n in counts.items()}
    slowest, fastest = min(fps, key=fps.__getitem__), max(fps, key=fps.__getitem__)
    return {
        "min": round(fps[slowest], 2),
        "median": round(float(np.median(list(fps.values()))), 2),
        "max": round(fps[fastest], 2),
        "slowest": slowest,
        "fastest": fastest,
        "ratio": round(fps[slowest] / fps[fastest], 3) if fps[fastest] else None,
        "unserved": sum(1 for n in counts.values() if n == 0),
    }


def summarize(
    data: Collected, samples: list[SendSample], t0: float, t1: float, cameras: set[str], stale_at_t0: int = 0
) -> dict[str, Any]:
    """Figures for the window [t0, t1] (monotonic)."""
    duration = max(t1 - t0, 1e-6)
    rows = [r for r in data.rows if t0 <= r.received <= t1]
    s0, s1 = _sample_at(samples, t0), _sample_at(samples, t1)
    st0, st1 = _status_at(data.statuses, t0), _status_at(data.statuses, t1)
    offered = s1.offered - s0.offered
    drops = {
        "edge": {"backpressure": s1.dropped - s0.dropped} if s1.dropped - s0.dropped else {},
        "broker": _delta(_camera_drops(st0, cameras, "broker"), _camera_drops(st1, cameras, "broker")),
        "worker": _delta(_camera_drops(st0, cameras, "worker"), _camera_drops(st1, cameras, "worker")),
        "subscriber": {"stale": data.stale - stale_at_t0} if data.stale - stale_at_t0 else {},
    }
    workers = []
    for proc, w in sorted(st1.get("workers", {}).items(), key=lambda kv: kv[1].get("name", "")):
        w0 = st0.get("workers", {}).get(proc, {})
        workers.append(
            {
                "name": w.get("name", proc),
                "online": w.get("online", False),
                "model": w.get("model"),
                "device": w.get("device"),
                "fps": round((w.get("processed", 0) - w0.get("processed", 0)) / duration, 2),
                "results": sum(1 for r in rows if r.worker == proc),
                "batch_mean": w.get("batch_mean"),
                "infer_ms": w.get("infer_ms"),
                "cpu": w.get("process", {}).get("cpu"),
                "rss_mb": w.get("process", {}).get("rss_mb"),
            }
        )
    processes = [{"name": "broker", "role": "broker", **st1.get("process", {})}]
    processes += [
        {"name": w["name"], "role": "worker", "cpu": w["cpu"], "rss_mb": w["rss_mb"]} for w in workers
    ]
    for group, role in (("edges", "edge"), ("subscribers", None)):
        for p in st1.get(group, {}).values():
            if p.get("online"):
                processes.append(
                    {"name": p.get("name"), "role": role or p.get("role"), **p.get("process", {})}
                )
    return {
        "rss_mb_start_end": _rss_trend(st0, st1),
        "duration_s": round(duration, 2),
        "offered_fps": round(offered / duration, 2),
        "sent_fps": round((s1.sent - s0.sent) / duration, 2),
        "delivered_fps": round(len(rows) / duration, 2),
        "drop_rate": round(1.0 - len(rows) / offered, 4) if offered else None,
        "drops": drops,
        "latency_ms": _pcts([r.latency_ms for r in rows]),
        "stages_ms": {name: _pcts([r.stages[name] for r in rows if name in r.stages]) for name in STAGES},
        "cameras_served": len({r.camera for r in rows}),
        "camera_fps": camera_spread(rows, cameras, duration),
        "workers": workers,
        "processes": processes,
    }


def timeline(data: Collected, samples: list[SendSample], t0: float, t1: float) -> list[dict[str, Any]]:
    """One point per second: offered and delivered fps, latency percentiles of that second."""
    points = []
    edges = np.arange(t0, t1 + 1e-9, 1.0)
    for a, b in zip(edges[:-1], edges[1:]):
        lat = [r.latency_ms for r in data.rows if a <= r.received < b]
        s0, s1 = _sample_at(samples, a), _sample_at(samples, b)
        p = _pcts(lat)
        points.append(
            {
                "t": round(float(a - t0), 1),
                "offered_fps": float(s1.offered - s0.offered),
                "delivered_fps": float(len(lat)),
                "p50": p["p50"],
                "p95": p["p95"],
                "p99": p["p99"],
            }
        )
    return points


def slope_ms_per_min(points: list[dict[str, Any]], key: str = "p99") -> float | None:
    """Least-squares trend of a latency percentile over the run: ~0 when fresh, large when queueing."""
    xs = [p["t"] for p in points if p.get(key) is not None]
    ys = [p[key] for p in points if p.get(key) is not None]
    if len(xs) < 3:
        return None
    return round(float(np.polyfit(xs, ys, 1)[0]) * 60.0, 1)


def _fmt(v: Any, unit: str = "") -> str:
    return "-" if v is None else f"{v:.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def render_table(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        f"anjeon loadtest: {report['config']['cameras']} cameras x {report['config']['fps']} fps at "
        f"{report['config']['resolution']}, {s['duration_s']:.0f} s measured",
        "",
        f"offered    {s['offered_fps']:>9.1f} fps   (sent {s['sent_fps']:.1f})",
        f"delivered  {s['delivered_fps']:>9.1f} fps   drop rate {100 * (s['drop_rate'] or 0):.1f} %, "
        f"cameras served {s['cameras_served']}",
    ]
    spread = s.get("camera_fps") or {}
    if spread.get("max"):
        lines.append(
            f"per camera {spread['min']:.2f} .. {spread['max']:.2f} fps (median {spread['median']:.2f}; "
            f"slowest {spread['slowest']}, fastest {spread['fastest']}, unserved {spread['unserved']})"
        )
    for stage, reasons in s["drops"].items():
        if reasons:
            lines.append(f"  dropped at {stage:<10} " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    lat = s["latency_ms"]
    lines += [
        "",
        f"{'latency ms':<16}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}",
        f"{'end to end':<16}{_fmt(lat['p50']):>8}{_fmt(lat['p95']):>8}{_fmt(lat['p99']):>8}{_fmt(lat['max']):>8}",
    ]
    enc = report.get("edge_encode_ms")
    if enc is not None:
        lines.append(f"{'  edge encode':<16}{enc:>8.1f}   (pool, measured once)")
    for stage, p in s["stages_ms"].items():
        lines.append(
            f"{'  ' + stage:<16}{_fmt(p['p50']):>8}{_fmt(p['p95']):>8}{_fmt(p['p99']):>8}{_fmt(p['max']):>8}"
        )
    lines += ["", f"{'worker':<24}{'fps':>8}{'batch':>7}{'infer ms':>10}{'cpu %':>8}{'rss MB':>8}"]
    for w in s["workers"]:
        lines.append(
            f"{str(w['name'])[:23]:<24}{w['fps']:>8.1f}{_fmt(w['batch_mean']):>7}{_fmt(w['infer_ms']):>10}"
            f"{_fmt(w['cpu']):>8}{_fmt(w['rss_mb']):>8}"
        )
    lines += ["", f"{'process':<24}{'role':<12}{'cpu %':>8}{'rss MB':>8}"]
    for p in s["processes"]:
        lines.append(
            f"{str(p.get('name'))[:23]:<24}{str(p.get('role')):<12}{_fmt(p.get('cpu')):>8}"
            f"{_fmt(p.get('rss_mb')):>8}"
        )
    if report.get("ramp"):
        lines += ["", "ramp (per step: offered -> delivered fps, p95 ms, holds SLO?)"]
        for step in report["ramp"]["steps"]:
            lines.append(
                f"  {step['offered_fps']:>8.1f} -> {step['delivered_fps']:>8.1f}  p95 "
                f"{_fmt(step['latency_ms']['p95']):>7}  {'yes' if step['holds'] else 'NO'}"
            )
        best = report["ramp"]["sustainable_fps"]
        lines.append(
            f"sustainable: {best} fps (SLO p95 <= {report['ramp']['slo_ms']} ms and >= 95 % delivered)"
            if best is not None
            else "sustainable: none (the first step already broke the SLO; lower --ramp-start)"
        )
        lines += sizing_lines(report)
    return "\n".join(lines)


def sizing_lines(report: dict[str, Any]) -> list[str]:
    """The sizing table (docs/benchmarks.md) for the machine this ramp ran on."""
    from .sizing import from_ramp, plan, render

    capacity = from_ramp(report)
    if capacity is None or not capacity.worker_fps:
        return []
    broker = (
        f"{capacity.broker_us_per_frame:.0f} us" if capacity.broker_us_per_frame is not None else "unknown"
    )
    return [
        "",
        f"sizing for this machine: one worker sustains {capacity.worker_fps:.1f} fps at the SLO; the broker "
        f"spent {broker} of CPU per frame; planned at 80 % of both",
        *render(plan([capacity]), [capacity]),
    ]


def plot(report: dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib") from None
    pts = report["timeline"]
    t = [p["t"] for p in pts]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for key in ("p50", "p95", "p99"):
        ax1.plot(t, [p[key] if p[key] is not None else float("nan") for p in pts], label=key)
    ax1.set_ylabel("end-to-end latency (ms)")
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    ax2.plot(t, [p["offered_fps"] for p in pts], label="offered")
    ax2.plot(t, [p["delivered_fps"] for p in pts], label="delivered")
    ax2.set_ylabel("frames / s")
    ax2.set_xlabel("seconds")
    ax2.legend(loc="upper left")
    ax2.grid(alpha=0.3)
    c = report["config"]
    fig.suptitle(f"anjeon loadtest: {c['cameras']} cameras x {c['fps']} fps, {c['resolution']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
