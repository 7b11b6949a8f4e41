"""Everything the broker knows, in one place: one ``CameraState`` per camera, the processes, worker credit.

``BrokerState`` holds three parts and the one sweep that keeps them true:

- ``cameras`` (``Cameras``): one ``CameraState`` per camera the broker knows, by its frames or by an
  edge's report. It carries what flowed (frames in, results out, the broker's drops), the newest frame
  waiting for a worker (the scheduler's slot) and what the reporting edge says of it (its heartbeat).
- ``registry`` (``Registry``): every process's heartbeats; the one record of whether a process is online.
- ``scheduler`` (``FrameScheduler``): which frame goes to which worker, and each worker's credit.

A worker's liveness is judged once, by ``worker_alive``: its process is online in the registry
(heartbeats), or its frames-out connection spoke (``ready``/``credit``) within the same liveness
timeout (a client that sends no heartbeats). ``sweep`` forgets the credit of every worker not alive.

Pure logic with an injected clock, no sockets: tests drive it frame by frame (tests/test_scheduler.py).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anjeon.protocol.heartbeat import HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS
from anjeon.protocol.stats import RateMeter

from .registry import DEFAULT_MAX_PEERS, FORGET_AFTER, Peer, Registry

if TYPE_CHECKING:  # scheduler.py imports this module
    from .scheduler import FrameScheduler, Pending, WorkerSlot

LIVENESS = HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS  # seconds without a sign of life: offline


@dataclass
class CameraState:
    """All the broker holds about one camera."""

    name: str
    # What the broker itself sees flow (reset when the camera is forgotten or gives its place).
    frames_in: RateMeter = field(default_factory=RateMeter)
    results_out: RateMeter = field(default_factory=RateMeter)
    drops: Counter[str] = field(default_factory=Counter)
    edge: str = ""  # the edge named in its newest frame's header
    last_frame: float = 0.0  # broker monotonic time of the newest frame; 0: none since (re)set
    # The scheduler's slot: the newest frame waiting for a worker (a newer one replaces it).
    pending: Pending | None = None
    # What an edge reports of it in its heartbeat (an online edge wins over an offline one).
    reporter: Peer | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def claimed(self) -> bool:
        """Reported by an online edge: served before cameras whose ids anyone could invent."""
        return self.reporter is not None and self.reporter.online

    def reset_flow(self) -> None:
        self.frames_in, self.results_out, self.drops = RateMeter(), RateMeter(), Counter()
        self.edge, self.last_frame = "", 0.0


class Cameras:
    """The cameras, one ``CameraState`` each, bounded.

    ``flowing`` holds the cameras the broker has had frames from, least recently seen first: at most
    ``max_cameras``; a new camera beyond it takes the place of the one silent longest if that one has
    been silent ``idle`` seconds, else its frame is refused. Cameras an edge reports but that sent
    nothing are known too (the status lists them), and so is any camera with a frame pending.
    """

    def __init__(self, max_cameras: int = 4096, idle: float = 5.0) -> None:
        self.max_cameras, self.idle = max_cameras, idle
        self._all: dict[str, CameraState] = {}
        self.flowing: OrderedDict[str, CameraState] = OrderedDict()

    def get(self, name: str) -> CameraState | None:
        return self._all.get(name)

    def entry(self, name: str) -> CameraState:
        """The camera's state, made if new (no bound: callers bound what creates cameras)."""
        state = self._all.get(name)
        if state is None:
            state = self._all[name] = CameraState(name)
        return state

    def admit(self, name: str, now: float) -> CameraState | None:
        """A frame of ``name`` arrived: its state, or None when ``max_cameras`` others are streaming."""
        state = self.flowing.get(name)
        if state is not None:
            self.flowing.move_to_end(name)
        else:
            if len(self.flowing) >= self.max_cameras:
                oldest = next(iter(self.flowing.values()))
                if now - oldest.last_frame < self.idle:
                    return None
                self._stop_flow(oldest)
            state = self.flowing[name] = self.entry(name)
        state.last_frame = now
        return state

    def drop(self, name: str, reason: str) -> None:
        """Count a drop the broker made for a streaming camera."""
        state = self.flowing.get(name)
        if state is not None:
            state.drops[reason] += 1

    def release(self, state: CameraState) -> None:
        """Forget ``state`` if nothing holds it any more (no flow, no report, no pending frame)."""
        if state.pending is None and state.reporter is None and state.name not in self.flowing:
            self._all.pop(state.name, None)

    def forget_silent(self, now: float, after: float = FORGET_AFTER) -> None:
        """Cameras without a frame for ``after`` seconds are forgotten: invented ids cannot grow memory."""
        while self.flowing:
            oldest = next(iter(self.flowing.values()))
            if now - oldest.last_frame <= after:
                break
            self._stop_flow(oldest)

    def report(self, edges: Iterable[Peer]) -> None:
        """Take each camera's report from the edges' heartbeats (an online edge wins over an offline one)."""
        found: dict[str, tuple[Peer, dict[str, Any]]] = {}
        for peer in edges:
            for cam, info in peer.info.get("cameras", {}).items():
                if cam not in found or peer.online:
                    found[cam] = (peer, info)
        for state in list(self._all.values()):
            if state.name not in found and state.reporter is not None:
                state.reporter, state.report = None, {}
                self.release(state)
        for cam, (peer, info) in found.items():
            state = self.entry(cam)
            state.reporter, state.report = peer, info

    def listed(self) -> list[CameraState]:
        """The cameras the status shows (streaming or reported), by name."""
        return sorted(
            (s for s in self._all.values() if s.reporter is not None or s.name in self.flowing),
            key=lambda s: s.name,
        )

    def _stop_flow(self, state: CameraState) -> None:
        del self.flowing[state.name]
        state.reset_flow()
        self.release(state)


class BrokerState:
    """The broker's state and the one sweep over it (see the module doc)."""

    def __init__(
        self,
        run: str,
        *,
        max_age: float,
        max_cameras: int = 4096,
        camera_idle: float = 5.0,
        max_peers: int = DEFAULT_MAX_PEERS,
        clock: Callable[[], float] = time.monotonic,
        liveness: float = LIVENESS,
        **scheduler: Any,
    ) -> None:
        from .scheduler import FrameScheduler

        self._clock, self.liveness = clock, liveness
        self.cameras = Cameras(max_cameras, camera_idle)
        self.registry = Registry(clock, liveness, max_peers)
        self.scheduler: FrameScheduler = FrameScheduler(
            run, max_age, clock, cameras=self.cameras, **scheduler
        )

    def worker_alive(self, slot: WorkerSlot, now: float) -> bool:
        """Online in the registry (heartbeats), or its frames-out connection spoke within the timeout."""
        peer = self.registry.peers.get(slot.proc)
        if peer is not None and peer.online and peer.role == "worker":
            return True
        return now - slot.last_spoke <= self.liveness

    def sweep(self) -> tuple[list[Peer], list[WorkerSlot]]:
        """Mark silent processes offline, forget dead workers' credit, refresh cameras' reports.

        Returns (the processes newly offline, the workers whose credit was forgotten).
        """
        now = self._clock()
        gone = self.registry.sweep()
        dead = [s for s in self.scheduler.workers().values() if not self.worker_alive(s, now)]
        for slot in dead:
            self.scheduler.forget(slot.proc)
        self.cameras.report(self.registry.by_role("edge"))
        self.cameras.forget_silent(now)
        return gone, dead

    def goodbye(self, proc: str, ident: bytes) -> tuple[Peer | None, WorkerSlot | None]:
        """A process stopping cleanly: offline at once, and a worker's credit forgotten."""
        peer = self.registry.goodbye(proc, ident)
        if peer is None:
            return None, None
        return peer, self.scheduler.forget(peer.proc)

    def worker_camera_drops(self) -> dict[str, Counter[str]]:
        """Per camera, the drops its workers report in their heartbeats."""
        drops: dict[str, Counter[str]] = {}
        for peer in self.registry.by_role("worker"):
            for cam, reasons in peer.info.get("camera_drops", {}).items():
                drops.setdefault(cam, Counter()).update(reasons)
        return drops
