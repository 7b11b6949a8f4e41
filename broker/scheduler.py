"""Which frame goes to which worker: newest-only slots and credit-based dispatch.

Pure logic, no sockets, so it can be tested frame by frame. The broker keeps
at most one pending frame per camera (a newer frame replaces it), serves
cameras in round robin, and sends only to workers that have credit: the
zguide's load-balancing broker with a freshness slot in front of it. Whatever
the offered load, the frames in flight are bounded by the workers' credit
plus one per camera.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from anjeon.protocol.wire import FrameHeader


@dataclass
class Pending:
    header: FrameHeader
    jpeg: Any  # zmq.Frame (forwarded untouched) or bytes
    arrived: float  # broker's monotonic clock


@dataclass
class WorkerSlot:
    proc: str
    ident: bytes  # ROUTER routing id of the worker's DEALER
    capacity: int
    credit: int
    grant: str  # credits earned for frames of an older grant are ignored
    last_heard: float
    dispatched: int = 0


class CreditOutcome:
    OK = "ok"
    UNKNOWN = "unknown"  # the broker does not know this worker: it must announce itself again
    STALE = "stale"  # credit for a frame sent under an older grant: ignored


class FrameScheduler:
    def __init__(self, run: str, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._run, self.max_age, self._clock = run, max_age, clock
        self._pending: dict[str, Pending] = {}
        self._turns: deque[str] = deque()  # cameras with a pending frame, in serving order
        self._workers: dict[str, WorkerSlot] = {}
        self._grants = itertools.count(1)

    # -- frames ---------------------------------------------------------------
    def offer(self, camera: str, frame: Pending) -> Pending | None:
        """Hold ``frame`` as the newest of its camera; return the one it replaced."""
        replaced = self._pending.get(camera)
        self._pending[camera] = frame
        if replaced is None:
            self._turns.append(camera)
        return replaced

    def expire(self) -> list[Pending]:
        """Remove pending frames that waited longer than max_age (no worker free)."""
        now = self._clock()
        old = [cam for cam, p in self._pending.items() if now - p.arrived > self.max_age]
        expired = [self._pending.pop(cam) for cam in old]
        if old:
            self._turns = deque(cam for cam in self._turns if cam in self._pending)
        return expired

    def pending_count(self) -> int:
        return len(self._pending)

    # -- workers --------------------------------------------------------------
    def ready(self, proc: str, ident: bytes, capacity: int) -> WorkerSlot:
        """A worker announces its full capacity: (re)start its credit under a new grant."""
        slot = WorkerSlot(proc=proc, ident=ident, capacity=capacity, credit=capacity,
                          grant=f"{self._run}.{next(self._grants)}", last_heard=self._clock())
        old = self._workers.get(proc)
        if old is not None:
            slot.dispatched = old.dispatched
        self._workers[proc] = slot
        return slot

    def credit(self, proc: str, grant: str, n: int) -> str:
        slot = self._workers.get(proc)
        if slot is None:
            return CreditOutcome.UNKNOWN
        slot.last_heard = self._clock()
        if grant != slot.grant:
            return CreditOutcome.STALE
        slot.credit = min(slot.capacity, slot.credit + max(0, n))
        return CreditOutcome.OK

    def touch(self, proc: str) -> None:
        """Any sign of life from a worker (its heartbeat) keeps its credit."""
        slot = self._workers.get(proc)
        if slot is not None:
            slot.last_heard = self._clock()

    def forget(self, proc: str) -> WorkerSlot | None:
        return self._workers.pop(proc, None)

    def silent_workers(self, timeout: float) -> list[str]:
        now = self._clock()
        return [p for p, s in self._workers.items() if now - s.last_heard > timeout]

    def workers(self) -> dict[str, WorkerSlot]:
        return self._workers

    # -- dispatch -------------------------------------------------------------
    def next(self) -> tuple[WorkerSlot, Pending] | None:
        """The next (worker, frame) to send, or None when no frame or no credit.

        The worker is the one with the most credit left (the least loaded);
        ties go to the one that got a frame least recently, because the
        dict keeps workers in the order they were last served.
        """
        if not self._turns:
            return None
        slot = max(self._workers.values(), key=lambda s: s.credit, default=None)
        if slot is None or slot.credit <= 0:
            return None
        camera = self._turns.popleft()
        frame = self._pending.pop(camera)
        slot.credit -= 1
        slot.dispatched += 1
        # Move the worker to the end so equal-credit workers take turns.
        self._workers[slot.proc] = self._workers.pop(slot.proc)
        return slot, frame
