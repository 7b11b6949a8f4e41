"""Per-camera re-ordering of results by (edge run, sequence number).

Several workers answer frames of one camera, so results arrive out of order;
tracking and durations need them in capture order. Each result waits up to
``window`` seconds (our clock) for earlier ones, then is released in order.
A result older than one already released is late and dropped (counted); a
new run id (the edge restarted, its sequence starts again) is accepted when
its capture time is newer. The buffer is bounded: past ``max_pending`` the
oldest is released at once.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Released:
    run: str
    seq: int
    t_capture: float


@dataclass(order=True)
class _Pending(Generic[T]):
    key: tuple  # (t_capture of the run's first frame seen, seq) orders runs by time, then by sequence
    arrived: float = field(compare=False)
    run: str = field(compare=False)
    seq: int = field(compare=False)
    t_capture: float = field(compare=False)
    item: T = field(compare=False)


class Reorderer(Generic[T]):
    def __init__(self, window: float = 0.3, max_pending: int = 64) -> None:
        self.window, self.max_pending = window, max_pending
        self._heap: list[_Pending[T]] = []
        self._released: _Released | None = None
        self._run_start: dict[str, float] = {}  # run -> earliest capture time seen (bounded below)
        self._tie = itertools.count()
        self.late = 0

    def _is_late(self, run: str, seq: int, t_capture: float) -> bool:
        last = self._released
        if last is None:
            return False
        if run == last.run:
            return seq <= last.seq
        return t_capture <= last.t_capture

    def push(self, run: str, seq: int, t_capture: float, item: T, now: float) -> bool:
        """Queue a result; False (and counted) when it is older than what was already released."""
        if self._is_late(run, seq, t_capture):
            self.late += 1
            return False
        start = self._run_start.setdefault(run, t_capture)
        if len(self._run_start) > 16:  # only a few runs are ever in flight at once
            for old in sorted(self._run_start, key=self._run_start.get)[:-8]:
                if old != run:
                    del self._run_start[old]
        heapq.heappush(self._heap, _Pending((start, seq, next(self._tie)), now, run, seq, t_capture, item))
        return True

    def pop_ready(self, now: float) -> list[T]:
        out: list[T] = []
        while self._heap:
            head = self._heap[0]
            if now - head.arrived < self.window and len(self._heap) <= self.max_pending:
                break
            heapq.heappop(self._heap)
            if self._is_late(head.run, head.seq, head.t_capture):  # overtaken while waiting (buffer overflow)
                self.late += 1
                continue
            self._released = _Released(head.run, head.seq, head.t_capture)
            out.append(head.item)
        return out

    def flush(self) -> list[T]:
        return self.pop_ready(float("inf"))

    def __len__(self) -> int:
        return len(self._heap)
