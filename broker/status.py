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


def edge_cameras(registry: Registry) -> dict[str, tuple[Peer, dict[str, Any]]]:
    """Camera -> (the edge reporting it, its info); an online edge wins over an offline one."""
    found: dict[str, tuple[Peer, dict[str, Any]]] = {}
    for peer in registry.by_role("edge"):
        for cam, info in peer.info.get("cameras", {}).items():
            if cam not in found or peer.online:
                found[cam] = (peer, info)
    return found


def _worker_camera_drops(registry: Registry) -> dict[str, Counter[str]]:
    drops: dict[str, Counter[str]] = {}
    for peer in registry.by_role("worker"):
        for cam, reasons in peer.info.get("camera_drops", {}).items():
            drops.setdefault(cam, Counter()).update(reasons)
    return drops


def _camera(
    flow: CameraFlow, peer: Peer | None, info: dict[str, Any], worker_drops: Counter[str] | None, now: float
) -> dict[str, Any]:
    live = peer is not None and peer.online
    state = (
        str(info.get("state", "unknown"))
        if live
        else ("stopped" if peer is not None and peer.stopped else "offline")
    )
    return {
        # Online only if its edge heartbeats and says it is streaming: frames alone prove nothing.
        "online": state == "streaming",
        "state": state,
        "error": info.get("error", "") if live else "",
        "edge": peer.name if peer else "",
        "source": info.get("source", ""),
        "capture_fps": _round(info.get("capture_fps", 0.0)) if live else 0.0,
        "reconnects": info.get("reconnects", 0),
        "bytes_per_s": round(info.get("bytes_per_s", 0.0)) if live else 0,
        "fps_in": _round(flow.frames_in.sample(now)),
        "fps_out": _round(flow.results_out.sample(now)),
        "frames_in": flow.frames_in.count,
        "results_out": flow.results_out.count,
        "last_frame_s": _round(now - flow.last_frame) if flow.last_frame else None,
        "drops": {
            "edge": dict(info.get("drops", {})),
            "broker": dict(flow.drops),
            "worker": dict(worker_drops or {}),
        },
    }


def _process(peer: Peer) -> dict[str, float]:
    return peer.info.get("process", {"cpu": 0.0, "rss_mb": 0.0})


def build_snapshot(
    *,
    run: str,
    started: float,
    flows: dict[str, CameraFlow],
    registry: Registry,
    scheduler: FrameScheduler,
    broker_drops: dict[str, int],
    process: dict[str, float],
    now: float,
    limits: dict[str, int] | None = None,
) -> dict[str, Any]:
    edges = edge_cameras(registry)
    worker_drops = _worker_camera_drops(registry)
    empty = CameraFlow()
    cameras = {
        cam: _camera(flows.get(cam) or empty, *edges.get(cam, (None, {})), worker_drops.get(cam), now)
        for cam in sorted(set(flows) | set(edges))
    }
    slots = scheduler.workers()
    workers = {}
    for peer in registry.by_role("worker"):
        slot = slots.get(peer.proc)
        info = {k: v for k, v in peer.info.items() if k != "camera_drops"}
        workers[peer.proc] = {
            **info,
            "name": peer.name,
            "online": peer.online,
            "stopped": peer.stopped,
            "credit": slot.credit if slot else 0,
            "capacity": slot.capacity if slot else 0,
            "dispatched": slot.dispatched if slot else 0,
        }
    others = {
        p.proc: {
            **{k: v for k, v in p.info.items() if k not in ("drops", "process")},
            "name": p.name,
            "role": p.role,
            "online": p.online,
            "stopped": p.stopped,
            "drops": p.info.get("drops", {}),
            "process": _process(p),
        }
        for p in registry.peers.values()
        if p.role not in ("edge", "worker")
    }
    return {
        "v": VERSION,
        "kind": STATUS,
        "broker": run,
        "t": time.time(),
        "uptime": _round(now - started),
        "cameras": cameras,
        "workers": workers,
        "edges": {
            p.proc: {
                "name": p.name,
                "online": p.online,
                "stopped": p.stopped,
                "cameras": sorted(p.info.get("cameras", {})),
                "process": _process(p),
            }
            for p in registry.by_role("edge")
        },
        "subscribers": others,
        "pending": scheduler.pending_count(),
        "process": process,
        "drops": broker_drops,
        "limits": dict(limits or {}),
    }
