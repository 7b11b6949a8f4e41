"""The status snapshot the broker publishes on results-out once a second.

It reads the broker's state (state.py): per camera what the broker saw flow
(frames in, results out, its own drops) and what its edge reports; per
process what it said in its heartbeats (workers' models and drops,
subscribers' drops); and the scheduler's credit.
The schema is documented in docs/protocol.md ("Status snapshot").
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from anjeon.protocol.wire import STATUS, VERSION

from .registry import Peer
from .state import BrokerState, CameraState


def _round(x: float) -> float:
    return round(x, 2)


def _camera(cam: CameraState, worker_drops: Counter[str] | None, now: float) -> dict[str, Any]:
    peer, info = cam.reporter, cam.report
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
        "fps_in": _round(cam.frames_in.sample(now)),
        "fps_out": _round(cam.results_out.sample(now)),
        "frames_in": cam.frames_in.count,
        "results_out": cam.results_out.count,
        "last_frame_s": _round(now - cam.last_frame) if cam.last_frame else None,
        "drops": {
            "edge": dict(info.get("drops", {})),
            "broker": dict(cam.drops),
            "worker": dict(worker_drops or {}),
        },
    }


def _process(peer: Peer) -> dict[str, float]:
    figures = peer.info.get("process")  # checked by protocol.messages: {"cpu": float, "rss_mb": float}
    return figures if isinstance(figures, dict) else {"cpu": 0.0, "rss_mb": 0.0}


def build_snapshot(
    state: BrokerState,
    *,
    run: str,
    started: float,
    broker_drops: dict[str, int],
    process: dict[str, float],
    now: float,
    limits: dict[str, int] | None = None,
) -> dict[str, Any]:
    registry, scheduler = state.registry, state.scheduler
    worker_drops = state.worker_camera_drops()
    cameras = {cam.name: _camera(cam, worker_drops.get(cam.name), now) for cam in state.cameras.listed()}
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
