"""The terminal table of `anjeon watch`: a pure function from what was seen to text."""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from anjeon.protocol.endpoints import BrokerAddress


def _pct(values, q: float) -> str:
    return f"{np.percentile(np.fromiter(values, float), q):.0f}" if values else "-"


def _drops(parts: Mapping[str, Mapping[str, int]]) -> str:
    """'broker 12 (superseded 12), worker 3 (too_old 3)' -> compact 'e0 b12 w3 s0' plus the top reason."""
    totals = {stage: sum(reasons.values()) for stage, reasons in parts.items()}
    text = " ".join(f"{stage[0]}{totals.get(stage, 0)}" for stage in ("edge", "broker", "worker", "subscriber"))
    reasons = {f"{r}": n for stage in parts.values() for r, n in stage.items() if n}
    if reasons:
        top = max(reasons, key=reasons.get)
        text += f"  ({top} {reasons[top]})"
    return text


def _classes(counts: Mapping[str, int]) -> tuple[str, str]:
    people = str(counts.get("person", 0))
    other = ", ".join(f"{c} {n}" for c, n in sorted(counts.items()) if c != "person") or "-"
    return people, other


def render_table(broker: BrokerAddress, status: dict[str, Any], views: Mapping[str, Any],
                 watch_drops: Mapping[str, Mapping[str, int]], broker_online: bool) -> str:
    lines = []
    up = f"up {status.get('uptime', 0):.0f} s" if status else "no status yet"
    conn = "connected" if broker_online else "NOT CONNECTED"
    lines.append(f"anjeon watch  broker {broker} ({conn}, {up})  {time.strftime('%Y-%m-%d %H:%M:%S')}")
    lines.append("")
    header = (f"{'CAMERA':<14}{'STATE':<13}{'IN fps':>7}{'OUT fps':>8}{'LAT p50':>9}{'p95 ms':>8}"
              f"{'PEOPLE':>8}  {'OTHER':<16}DROPS e/b/w/s")
    lines.append(header)
    cams = status.get("cameras", {}) if status else {}
    for cam in sorted(set(cams) | set(views)):
        c = cams.get(cam, {})
        v = views.get(cam)
        state = c.get("state", "unknown") if c else "no status"
        lat = list(v.latencies) if v else []
        people, other = _classes(v.classes if v and time.monotonic() - v.last_seen < 5 else {})
        drops = dict(c.get("drops", {})) if c else {}
        drops["subscriber"] = dict(watch_drops.get(cam, {}))
        lines.append(f"{cam[:13]:<14}{state[:12]:<13}{c.get('fps_in', 0.0):>7.1f}"
                     f"{(v.results.sample() if v else 0.0):>8.1f}{_pct(lat, 50):>9}{_pct(lat, 95):>8}"
                     f"{people:>8}  {other[:15]:<16}{_drops(drops)}")
        if c.get("error"):
            lines.append(f"{'':<14}! {c['error']}")
    if not cams and not views:
        lines.append("  (no cameras yet)")
    lines.append("")
    lines.append(f"{'WORKER':<30}{'STATE':<9}{'MODEL':<10}{'DEVICE':<8}{'fps':>6}{'batch':>7}{'infer ms':>10}"
                 f"{'credit':>8}  DROPS")
    workers = status.get("workers", {}) if status else {}
    for proc, w in sorted(workers.items(), key=lambda kv: kv[1].get("name", "")):
        drops = ", ".join(f"{r} {n}" for r, n in sorted(w.get("drops", {}).items())) or "-"
        lines.append(f"{w.get('name', proc)[:29]:<30}{'online' if w.get('online') else 'OFFLINE':<9}"
                     f"{str(w.get('model', '?'))[:9]:<10}{str(w.get('device', '?'))[:7]:<8}{w.get('fps', 0.0):>6.1f}"
                     f"{w.get('batch_mean', 0.0):>7.1f}{w.get('infer_ms', 0.0):>10.0f}"
                     f"{str(w.get('credit', 0)) + '/' + str(w.get('capacity', 0)):>8}  {drops}")
    if not workers:
        lines.append("  (no workers: start one with `anjeon worker --broker ...`)")
    broker_drops = status.get("drops", {}) if status else {}
    if broker_drops:
        lines.append("")
        lines.append("rejected at the broker: " + ", ".join(f"{r} {n}" for r, n in sorted(broker_drops.items())))
    lines.append("")
    lines.append("drops: e=edge (broker unreachable/backpressure) b=broker (superseded by a newer frame, expired) "
                 "w=worker (too old, corrupt) s=this subscriber (stale)")
    return "\n".join(lines)
