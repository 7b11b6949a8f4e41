"""The terminal table of `anjeon watch`: a pure function from what was seen to text."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from anjeon.protocol.endpoints import BrokerAddress


def _pct(values: Collection[float], q: float) -> str:
    return f"{np.percentile(np.fromiter(values, float), q):.0f}" if values else "-"


def _drops(parts: Mapping[str, Mapping[str, int]]) -> str:
    """'broker 12 (superseded 12), worker 3 (too_old 3)' -> compact 'e0 b12 w3 s0' plus the top reason."""
    totals = {stage: sum(reasons.values()) for stage, reasons in parts.items()}
    text = " ".join(
        f"{stage[0]}{totals.get(stage, 0)}" for stage in ("edge", "broker", "worker", "subscriber")
    )
    reasons = {f"{r}": n for stage in parts.values() for r, n in stage.items() if n}
    if reasons:
        top = max(reasons, key=lambda r: reasons[r])
        text += f"  ({top} {reasons[top]})"
    return text


def _classes(counts: Mapping[str, int]) -> tuple[str, str]:
    people = str(counts.get("person", 0))
    other = ", ".join(f"{c} {n}" for c, n in sorted(counts.items()) if c != "person") or "-"
    return people, other


SORT_KEYS = ("name", "state", "fps", "latency", "drops")
PROBLEM_STATES = {"streaming"}  # any other state is a problem to show with --problems


@dataclass(frozen=True)
class TableOptions:
    """What an operator with hundreds of cameras asks of the table: order, a filter, a bounded length."""

    sort: str = "name"  # one of SORT_KEYS; fps and latency put the worst first
    match: str = ""  # shell pattern on camera names ('gate-*'), empty: all
    problems: bool = False  # only cameras that are not streaming, have drops, or show no results
    limit: int = 0  # rows of cameras at most (0: all); the rest is counted on one line


@dataclass
class CameraRow:
    cam: str
    state: str
    fps_in: float
    fps_out: float
    latencies: list[float]
    drops: dict[str, dict[str, int]]
    error: str
    classes: Mapping[str, int]

    @property
    def drop_total(self) -> int:
        return sum(sum(r.values()) for r in self.drops.values())

    @property
    def p95(self) -> float:
        return float(np.percentile(self.latencies, 95)) if self.latencies else -1.0

    def is_problem(self) -> bool:
        return (
            self.state not in PROBLEM_STATES
            or bool(self.error)
            or self.fps_out == 0.0
            or sum(self.drops.get("edge", {}).values()) + sum(self.drops.get("worker", {}).values()) > 0
        )


def _rows(
    status: dict[str, Any], views: Mapping[str, Any], watch_drops: Mapping[str, Mapping[str, int]]
) -> list[CameraRow]:
    cams = status.get("cameras", {}) if status else {}
    rows = []
    for cam in set(cams) | set(views):
        c = cams.get(cam, {})
        v = views.get(cam)
        drops = dict(c.get("drops", {})) if c else {}
        drops["subscriber"] = dict(watch_drops.get(cam, {}))
        rows.append(
            CameraRow(
                cam,
                c.get("state", "unknown") if c else "no status",
                float(c.get("fps_in", 0.0)),
                v.results.sample() if v else 0.0,
                list(v.latencies) if v else [],
                drops,
                str(c.get("error", "") or ""),
                v.classes if v and time.monotonic() - v.last_seen < 5 else {},
            )
        )
    return rows


def _ordered(rows: list[CameraRow], options: TableOptions) -> list[CameraRow]:
    rows = [r for r in rows if not options.match or fnmatch.fnmatchcase(r.cam, options.match)]
    if options.problems:
        rows = [r for r in rows if r.is_problem()]
    keys = {
        "name": lambda r: r.cam,
        "state": lambda r: (r.state == "streaming", r.cam),  # problems first
        "fps": lambda r: (r.fps_out, r.cam),  # slowest first: starvation shows at the top
        "latency": lambda r: (-r.p95, r.cam),  # slowest first
        "drops": lambda r: (-r.drop_total, r.cam),
    }
    return sorted(rows, key=keys[options.sort])


def summary_line(rows: list[CameraRow]) -> str:
    """One line for the whole site: counts by state, total fps in and out, the spread, latency over all."""
    states: dict[str, int] = {}
    for r in rows:
        states[r.state] = states.get(r.state, 0) + 1
    by_state = ", ".join(f"{k} {n}" for k, n in sorted(states.items(), key=lambda kv: (-kv[1], kv[0])))
    fps = [r.fps_out for r in rows if r.state == "streaming"]
    lat = [x for r in rows for x in r.latencies]
    spread = f"per camera out min {min(fps):.1f} / max {max(fps):.1f}" if fps else "per camera out -"
    return (
        f"{len(rows)} cameras ({by_state or 'none'})  in {sum(r.fps_in for r in rows):.1f} fps  "
        f"out {sum(r.fps_out for r in rows):.1f} fps  {spread}  latency p50 {_pct(lat, 50)} / "
        f"p95 {_pct(lat, 95)} / p99 {_pct(lat, 99)} ms  drops {sum(r.drop_total for r in rows)}"
    )


def render_table(
    broker: BrokerAddress,
    status: dict[str, Any],
    views: Mapping[str, Any],
    watch_drops: Mapping[str, Mapping[str, int]],
    broker_online: bool,
    options: TableOptions = TableOptions(),
) -> str:
    lines = []
    up = f"up {status.get('uptime', 0):.0f} s" if status else "no status yet"
    conn = "connected" if broker_online else "NOT CONNECTED"
    lines.append(f"anjeon watch  broker {broker} ({conn}, {up})  {time.strftime('%Y-%m-%d %H:%M:%S')}")
    everything = _rows(status, views, watch_drops)
    lines.append(summary_line(everything))
    lines.append("")
    header = (
        f"{'CAMERA':<14}{'STATE':<13}{'IN fps':>7}{'OUT fps':>8}{'LAT p50':>9}{'p95 ms':>8}"
        f"{'PEOPLE':>8}  {'OTHER':<16}DROPS e/b/w/s"
    )
    lines.append(header)
    cams = status.get("cameras", {}) if status else {}
    shown = _ordered(everything, options)
    hidden = len(shown) - options.limit if options.limit and len(shown) > options.limit else 0
    for row in shown[: options.limit or None]:
        people, other = _classes(row.classes)
        lat = row.latencies
        lines.append(
            f"{row.cam[:13]:<14}{row.state[:12]:<13}{row.fps_in:>7.1f}"
            f"{row.fps_out:>8.1f}{_pct(lat, 50):>9}{_pct(lat, 95):>8}"
            f"{people:>8}  {other[:15]:<16}{_drops(row.drops)}"
        )
        if row.error:
            lines.append(f"{'':<14}! {row.error}")
    filtered = len(everything) - len(shown)
    notes = [f"{hidden} more not shown (--limit {options.limit})"] if hidden else []
    notes += [f"{filtered} filtered out (--match/--problems)"] if filtered else []
    if notes:
        lines.append("  ... " + ", ".join(notes))
    if not cams and not views:
        lines.append("  (no cameras yet)")
    lines.append("")
    lines.append(
        f"{'WORKER':<30}{'STATE':<9}{'MODEL':<10}{'DEVICE':<8}{'fps':>6}{'batch':>7}{'infer ms':>10}"
        f"{'credit':>8}  DROPS"
    )
    workers = status.get("workers", {}) if status else {}
    for proc, w in sorted(workers.items(), key=lambda kv: kv[1].get("name", "")):
        drops = ", ".join(f"{r} {n}" for r, n in sorted(w.get("drops", {}).items())) or "-"
        lines.append(
            f"{w.get('name', proc)[:29]:<30}{'online' if w.get('online') else 'OFFLINE':<9}"
            f"{str(w.get('model', '?'))[:9]:<10}{str(w.get('device', '?'))[:7]:<8}{w.get('fps', 0.0):>6.1f}"
            f"{w.get('batch_mean', 0.0):>7.1f}{w.get('infer_ms', 0.0):>10.0f}"
            f"{str(w.get('credit', 0)) + '/' + str(w.get('capacity', 0)):>8}  {drops}"
        )
    if not workers:
        lines.append("  (no workers: start one with `anjeon worker --broker ...`)")
    broker_drops = status.get("drops", {}) if status else {}
    if broker_drops:
        lines.append("")
        lines.append(
            "rejected at the broker: " + ", ".join(f"{r} {n}" for r, n in sorted(broker_drops.items()))
        )
    lines.append("")
    lines.append(
        "drops: e=edge (broker unreachable/backpressure) b=broker (superseded by a newer frame, expired) "
        "w=worker (too old, corrupt) s=this subscriber (stale)"
    )
    return "\n".join(lines)
