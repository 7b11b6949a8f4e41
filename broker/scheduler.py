"""Which frame goes to which worker: newest-only slots and fair, bounded, credit-based dispatch.

Pure logic, no sockets, so it can be tested frame by frame. The broker keeps
at most one pending frame per camera (a newer frame replaces it; the slot is
``CameraState.pending``, see state.py), serves cameras in round robin, and
sends only to workers that have credit: the zguide's load-balancing broker
with a freshness slot in front of it. Whether a worker is alive is judged in
state.py (``BrokerState.worker_alive``), not here.

Everything here is bounded against a hostile peer:

- **Credit** is capped at ``max_credit`` whatever a worker announces. The
  broker counts the frames each worker holds (sent, not yet credited): a
  worker's credit is its capacity minus those, so re-announcing (``ready``)
  cannot refill it, and extra credits cannot inflate it. A frame not
  credited within ``lost_after`` seconds is presumed lost and no longer
  counted, so a worker whose frames vanished on the network recovers.
- **Dispatch is fair between workers**: the next frame goes to the worker
  with the fewest frames in flight (announced credit minus credit left),
  ties to the one served least recently. A worker that announces a huge
  credit and never returns it gets frames only while the honest ones are
  busy, and at most its capped credit.
- **A process id belongs to the connection that announced it**: a ``ready``
  or ``credit`` naming a known worker from another routing id is refused,
  unless the owning connection has said nothing on frames-out for
  ``takeover_after`` seconds (a worker that reconnected gets a new routing id).
- **Pending frames** are capped at ``max_pending``; cameras claimed by an
  online edge's heartbeat are served before unclaimed ones (ids anyone can
  invent by pushing frames), and may push an unclaimed frame out when the
  cap is hit.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anjeon.protocol.wire import FrameHeader

from .state import Cameras

DEFAULT_MAX_CREDIT = 16  # a batch of 8 twice over; GPU workers with bigger batches: raise --max-credit
DEFAULT_MAX_PENDING = 4096
DEFAULT_MAX_WORKERS = 256
READY_INTERVAL = 0.5  # workers re-announce after 1 s idle: faster than this is a flood
LOST_AFTER = 10.0  # seconds after which a frame never credited no longer counts as held
TAKEOVER_AFTER = 3.0  # seconds of silence on frames-out after which another connection may take a worker's id


@dataclass
class Pending:
    header: FrameHeader
    jpeg: Any  # zmq.Frame (forwarded untouched) or bytes
    arrived: float  # broker's monotonic clock
    raw: Any = None  # the header frame as received (forwarded untouched; see server.py)
    t_in: float = 0.0  # Unix time it reached the broker (the broker_in stage, sent in the trailer)
    claimed: bool = True  # the camera is reported by an online edge


@dataclass
class WorkerSlot:
    proc: str
    ident: bytes  # ROUTER routing id of the worker's DEALER: the only connection that speaks for proc
    capacity: int
    grant: str  # echoed in credits; a new one with every accepted ready
    announced: float  # when it last announced itself (ready)
    last_spoke: float = 0.0  # its connection's last ready or credit (ownership of proc; liveness)
    batch: int = 1
    dispatched: int = 0
    served: int = 0  # dispatch counter value when it last got a frame (fairness tie-break)
    held: deque[float] = field(default_factory=deque)  # send times of frames it has not credited yet

    @property
    def credit(self) -> int:
        return max(0, self.capacity - len(self.held))

    def release(self, n: int) -> None:
        for _ in range(min(n, len(self.held))):
            self.held.popleft()

    def reclaim(self, now: float, lost_after: float) -> None:
        while self.held and now - self.held[0] > lost_after:
            self.held.popleft()


class CreditOutcome:
    OK = "ok"
    UNKNOWN = "unknown"  # the broker does not know this worker: it must announce itself again
    STALE = "stale"  # credit for a grant this broker never gave (it restarted since): ignored
    CONFLICT = "proc_conflict"  # another connection owns this process id: ignored


class ReadyOutcome:
    NEW = "new"
    RESET = "reset"  # known worker: new grant and capacity; the frames it holds still count
    TOO_SOON = "ready_too_soon"  # re-announced within READY_INTERVAL: ignored
    CONFLICT = "proc_conflict"  # another connection owns this process id
    FULL = "worker_cap"  # max_workers reached


class OfferOutcome:
    NEW = "new"
    REPLACED = "superseded"
    FULL = "pending_cap"  # refused: the pending cap is reached


class FrameScheduler:
    def __init__(
        self,
        run: str,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_credit: int = DEFAULT_MAX_CREDIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_workers: int = DEFAULT_MAX_WORKERS,
        ready_interval: float = READY_INTERVAL,
        lost_after: float = LOST_AFTER,
        takeover_after: float = TAKEOVER_AFTER,
        cameras: Cameras | None = None,
    ) -> None:
        self._run, self.max_age, self._clock = run, max_age, clock
        self.max_credit, self.max_pending, self.max_workers = max_credit, max_pending, max_workers
        self.ready_interval, self.lost_after, self.takeover_after = ready_interval, lost_after, takeover_after
        self.cameras = cameras if cameras is not None else Cameras(max_cameras=max_pending)
        self._turns: deque[str] = deque()  # claimed cameras with a pending frame, in serving order
        self._unclaimed: deque[str] = deque()  # the same for cameras no online edge reports
        self._workers: dict[str, WorkerSlot] = {}
        self._grants = itertools.count(1)
        self._served = itertools.count(1)

    # -- frames ---------------------------------------------------------------
    def offer(self, camera: str, frame: Pending) -> tuple[str, Pending | None]:
        """Hold ``frame`` as the newest of its camera: (outcome, the frame it replaced or pushed out)."""
        state = self.cameras.entry(camera)
        replaced = state.pending
        if replaced is not None:
            state.pending = frame
            if frame.claimed != replaced.claimed:
                # Its edge came online (or went offline) while a frame waited: the camera moves to the
                # queue of its new frame. Staying in the unclaimed queue, a claimed camera whose every
                # frame replaces the last would never be served while other claimed cameras have frames.
                (self._unclaimed if frame.claimed else self._turns).remove(camera)
                (self._turns if frame.claimed else self._unclaimed).append(camera)
            return OfferOutcome.REPLACED, replaced
        pushed_out = None
        if self.pending_count() >= self.max_pending:
            if not frame.claimed or not self._unclaimed:
                self.cameras.release(state)
                return OfferOutcome.FULL, None
            pushed_out = self._take(self._unclaimed.popleft())
        state.pending = frame
        (self._turns if frame.claimed else self._unclaimed).append(camera)
        return OfferOutcome.NEW, pushed_out

    def expire(self) -> list[Pending]:
        """Remove pending frames that waited longer than max_age (no worker free)."""
        now = self._clock()
        expired: list[Pending] = []
        queues = []
        for turns in (self._turns, self._unclaimed):
            kept: deque[str] = deque()
            for cam in turns:
                state = self.cameras.get(cam)
                if (
                    state is not None
                    and state.pending is not None
                    and now - state.pending.arrived > self.max_age
                ):
                    expired.append(self._take(cam))
                else:
                    kept.append(cam)
            queues.append(kept)
        self._turns, self._unclaimed = queues
        return expired

    def pending_count(self) -> int:
        return len(self._turns) + len(self._unclaimed)

    def _take(self, camera: str) -> Pending:
        """Take the camera's pending frame out of its slot (the camera is in a turn queue: it has one)."""
        state = self.cameras.entry(camera)
        frame = state.pending
        if frame is None:  # never: a camera is in a turn queue exactly while it has a frame pending
            raise KeyError(camera)
        state.pending = None
        self.cameras.release(state)
        return frame

    # -- workers --------------------------------------------------------------
    def ready(self, proc: str, ident: bytes, credit: int, batch: int = 1) -> tuple[str, WorkerSlot | None]:
        """A worker announces its capacity: (re)start its credit under a new grant, within the limits."""
        now = self._clock()
        old = self._workers.get(proc)
        if old is not None and old.ident != ident:
            if now - old.last_spoke <= self.takeover_after:
                return ReadyOutcome.CONFLICT, old
            del self._workers[proc]  # its connection went quiet: the worker reconnected (new routing id)
            old = None
        if old is not None:
            old.last_spoke = now
            if now - old.announced < self.ready_interval:
                return ReadyOutcome.TOO_SOON, old
        elif len(self._workers) >= self.max_workers:
            return ReadyOutcome.FULL, None
        capacity = max(1, min(credit, self.max_credit))
        grant = f"{self._run}.{next(self._grants)}"
        if old is not None:
            old.capacity, old.grant, old.announced, old.batch = capacity, grant, now, batch
            return ReadyOutcome.RESET, old
        slot = self._workers[proc] = WorkerSlot(
            proc=proc,
            ident=ident,
            capacity=capacity,
            grant=grant,
            announced=now,
            last_spoke=now,
            batch=batch,
        )
        return ReadyOutcome.NEW, slot

    def credit(self, proc: str, ident: bytes, grant: str, n: int) -> str:
        slot = self._workers.get(proc)
        if slot is None:
            return CreditOutcome.UNKNOWN
        if slot.ident != ident:
            return CreditOutcome.CONFLICT
        slot.last_spoke = self._clock()
        if not grant.startswith(self._run + "."):
            return CreditOutcome.STALE
        slot.release(n)  # any grant of this broker: the frames it names are done, whenever they were sent
        return CreditOutcome.OK

    def forget(self, proc: str) -> WorkerSlot | None:
        return self._workers.pop(proc, None)

    def workers(self) -> dict[str, WorkerSlot]:
        return self._workers

    # -- dispatch -------------------------------------------------------------
    def next(self) -> tuple[WorkerSlot, Pending] | None:
        """The next (worker, frame) to send, or None when no frame or no credit.

        The worker is the one with the fewest frames in flight; ties go to the
        one served least recently (see the module doc for why not "most credit").
        """
        turns = self._turns or self._unclaimed
        if not turns:
            return None
        now = self._clock()
        slot = None
        for s in self._workers.values():
            if len(s.held) >= s.capacity:
                s.reclaim(now, self.lost_after)
            if len(s.held) < s.capacity and (
                slot is None or (len(s.held), s.served) < (len(slot.held), slot.served)
            ):
                slot = s
        if slot is None:
            return None
        frame = self._take(turns.popleft())
        slot.held.append(now)
        slot.dispatched += 1
        slot.served = next(self._served)
        return slot, frame
