"""The status snapshot the broker publishes on results-out once a second.

It joins three views: what the broker saw flow (frames in, results out, its
own drops), what each process said in its heartbeats (edges' cameras,
workers' models and drops, subscribers' drops) and the scheduler's credit.
The schema is documented in docs/protocol.md ("Status snapshot").
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from anjeon.protocol.stats import RateMeter
from anjeon.protocol.wire import STATUS, VERSION

from .registry import Peer, Registry
from .scheduler import FrameScheduler


@dataclass
class CameraFlow:
    """What the broker itself sees of one camera."""

    frames_in: RateMeter = field(default_factory=RateMeter)
    results_out: RateMeter = field(default_factory=RateMeter)
    drops: Counter[str] = field(default_factory=Counter)
    edge: str = ""
    last_frame: float = 0.0  # broker monotonic time of the newest frame


def _round(x: float) -> float:
    return round(x, 2)


def _edge_cameras(registry: Registry) -> dict[str, tuple[Peer, dict[str, Any]]]:
    found: dict[str, tuple[Peer, dict[str, Any]]] = {}
    for peer in registry.by_role("edge"):
        for cam, info in (peer.info.get("cameras") or {}).items():
            if isinstance(info, dict) and (cam not in found or peer.online):
                found[cam] = (peer, info)
    return found


def _worker_camera_drops(registry: Registry) -> dict[str, Counter[str]]:
    drops: dict[str, Counter[str]] = {}
    for peer in registry.by_role("worker"):
        for cam, reasons in (peer.info.get("camera_drops") or {}).items():
            if isinstance(reasons, dict):
                drops.setdefault(cam, Counter()).update({str(k): int(v) for k, v in reasons.items()
                                                         if isinstance(v, int)})
    return drops


def build_snapshot(*, run: str, started: float, flows: dict[str, CameraFlow], registry: Registry,
                   scheduler: FrameScheduler, broker_drops: dict[str, int], process: dict[str, float],
                   now: float) -> dict[str, Any]:
    edges = _edge_cameras(registry)
    worker_drops = _worker_camera_drops(registry)
    cameras: dict[str, Any] = {}
    for cam in sorted(set(flows) | set(edges)):
        flow = flows.get(cam) or CameraFlow()
        peer, info = edges.get(cam, (None, {}))
        state = str(info.get("state", "unknown")) if peer and peer.online else "offline"
        cameras[cam] = {
            "online": state == "streaming",
            "state": state,
            "error": info.get("error", "") if peer and peer.online else "",
            "edge": peer.name if peer else "",
            "source": info.get("source", ""),
            "capture_fps": _round(float(info.get("capture_fps", 0.0))) if peer and peer.online else 0.0,
            "reconnects": int(info.get("reconnects", 0)),
            "bytes_per_s": int(info.get("bytes_per_s", 0)) if peer and peer.online else 0,
            "fps_in": _round(flow.frames_in.sample(now)),
            "fps_out": _round(flow.results_out.sample(now)),
            "frames_in": flow.frames_in.count,
            "results_out": flow.results_out.count,
            "last_frame_s": _round(now - flow.last_frame) if flow.last_frame else None,
            "drops": {
                "edge": dict(info.get("drops") or {}),
                "broker": dict(flow.drops),
                "worker": dict(worker_drops.get(cam, {})),
            },
        }
    slots = scheduler.workers()
    workers = {}
    for peer in registry.by_role("worker"):
        slot = slots.get(peer.proc)
        workers[peer.proc] = {
            "name": peer.name, "online": peer.online, **peer.info,
            "credit": slot.credit if slot else 0, "capacity": slot.capacity if slot else 0,
            "dispatched": slot.dispatched if slot else 0,
        }
        workers[peer.proc].pop("camera_drops", None)
    others = {p.proc: {"name": p.name, "role": p.role, "online": p.online, "drops": p.info.get("drops", {}),
                       "process": p.info.get("process", {})}
              for p in registry.peers.values() if p.role not in ("edge", "worker")}
    return {
        "v": VERSION, "kind": STATUS, "broker": run, "t": time.time(), "uptime": _round(now - started),
        "cameras": cameras, "workers": workers,
        "edges": {p.proc: {"name": p.name, "online": p.online, "cameras": sorted((p.info.get("cameras") or {})),
                           "process": p.info.get("process", {})}
                  for p in registry.by_role("edge")},
        "subscribers": others,
        "pending": scheduler.pending_count(),
        "process": process,
        "drops": broker_drops,
    }
