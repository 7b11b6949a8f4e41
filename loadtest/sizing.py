"""Sizing: cameras x fps -> workers needed and broker CPU, from measured capacities (never guessed).

Two measured inputs: what one worker delivers (frames/s at the latency target),
and what the broker spends per frame (CPU seconds per frame it takes in and
hands out, from its own heartbeat). Both come from a run on some machine: the
benchmarks (docs/benchmarks.md) or `anjeon loadtest --ramp` on the machine the
site will use. Workers are planned at HEADROOM of their measured capacity so a
burst or a slow frame does not turn into a queue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HEADROOM = 0.8  # plan workers and the broker at 80 % of what they were measured to sustain
CAMERAS = (16, 64, 100, 500, 1000)
RATES = (2.0, 5.0, 10.0, 15.0)


@dataclass(frozen=True)
class Capacity:
    worker_fps: float | None  # frames/s one worker sustained (None: not measured, e.g. no GPU)
    broker_us_per_frame: float | None  # broker CPU per frame, microseconds
    label: str  # where the figures come from, e.g. "CPU worker, 2 threads, default model"


def workers_needed(frames_per_s: float, worker_fps: float | None) -> int | None:
    if not worker_fps:
        return None
    return max(1, math.ceil(frames_per_s / (worker_fps * HEADROOM)))


def broker_cores(frames_per_s: float, us_per_frame: float | None) -> float | None:
    """Cores of broker CPU (1.0 = one core busy); above HEADROOM of one core, shard the site."""
    if us_per_frame is None:
        return None
    return frames_per_s * us_per_frame / 1e6


def plan(
    capacities: list[Capacity], cameras: tuple[int, ...] = CAMERAS, rates: tuple[float, ...] = RATES
) -> list[dict[str, Any]]:
    rows = []
    broker = next((c.broker_us_per_frame for c in capacities if c.broker_us_per_frame is not None), None)
    for n in cameras:
        for fps in rates:
            total = n * fps
            cores = broker_cores(total, broker)
            rows.append(
                {
                    "cameras": n,
                    "fps": fps,
                    "frames_per_s": total,
                    "workers": {c.label: workers_needed(total, c.worker_fps) for c in capacities},
                    "broker_cores": None if cores is None else round(cores, 3),
                    "brokers": None if cores is None else max(1, math.ceil(cores / HEADROOM)),
                }
            )
    return rows


def render(rows: list[dict[str, Any]], capacities: list[Capacity]) -> list[str]:
    """A markdown-style table (used by docs/benchmarks.md and printed by `anjeon loadtest --ramp`)."""
    labels = [c.label for c in capacities]
    head = (
        "| cameras | fps each | frames/s | "
        + " | ".join(f"workers: {lbl}" for lbl in labels)
        + " | broker CPU (cores) | brokers |"
    )
    lines = [head, "| " + " | ".join(["---:"] * (5 + len(labels))) + " |"]
    for r in rows:
        workers = " | ".join(
            "unmeasured" if r["workers"][lbl] is None else str(r["workers"][lbl]) for lbl in labels
        )
        cores = "-" if r["broker_cores"] is None else f"{r['broker_cores']:.2f}"
        lines.append(
            f"| {r['cameras']} | {r['fps']:g} | {r['frames_per_s']:g} | {workers} | {cores} | "
            f"{r['brokers'] if r['brokers'] is not None else '-'} |"
        )
    return lines


def from_ramp(report: dict[str, Any]) -> Capacity | None:
    """This machine's capacity from a `loadtest --spawn --ramp` report: the last step that held the SLO."""
    ramp = report.get("ramp") or {}
    held = [s for s in ramp.get("steps", []) if s.get("holds")]
    if not held:
        return None
    best = held[-1]
    workers = max(1, int(report["config"].get("workers", 1)))
    cpu = best.get("broker_cpu")
    us = cpu * 1e4 / best["delivered_fps"] if cpu is not None and best["delivered_fps"] else None
    c = report["config"]
    return Capacity(
        best["delivered_fps"] / workers,
        None if us is None else round(us, 1),
        f"this machine ({c.get('model')}, batch {c.get('batch')})",
    )
