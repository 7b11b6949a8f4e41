"""Per-camera re-ordering of results by (edge run, sequence number).

Several workers answer frames of one camera, so results arrive out of order;
tracking and durations need them in capture order. A result is released once
nothing earlier can still usefully come: when it is the direct successor of
the last released one (same run, next sequence number), when ``max_behind``
newer results of the camera are already waiting behind it (in results: at
30 results/s a worker more than that far behind is dropped rather than
delaying every other result), or after ``window`` seconds on our own
monotonic clock (in time: at one result a second nothing is held longer than
that). So the buffer is bounded by ``max_behind`` too. Whether a result is newer than the last released one is the
protocol's one freshness rule (protocol/freshness.py): a forged sequence jump
or a capture time that contradicts elapsed time is refused as
``implausible``, an older one as ``stale`` (counted by the service as
``late``), and a silent run times out so a restarted edge takes over.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from anjeon.protocol.freshness import NEWER, FreshnessRule, Mark

T = TypeVar("T")


@dataclass(order=True)
class _Pending(Generic[T]):
    key: tuple[
        float, int, int
    ]  # (t_capture of the run's first frame seen, seq, tie) orders runs by time, then by sequence
    arrived: float = field(compare=False)
    run: str = field(compare=False)
    seq: int = field(compare=False)
    t_capture: float = field(compare=False)
    item: T = field(compare=False)


class Reorderer(Generic[T]):
    def __init__(self, window: float = 0.3, max_behind: int = 8, rule: FreshnessRule | None = None) -> None:
        self.window, self.max_behind = window, max_behind
        self.rule = rule or FreshnessRule()
        self._heap: list[_Pending[T]] = []
        self._released: Mark | None = None
        self._run_start: dict[str, float] = {}  # run -> earliest capture time seen (bounded below)
        self._tie = itertools.count()
        self.late = 0  # refused as stale (older than what was released)
        self.implausible = 0  # refused by the freshness rule (forged sequence or capture time)

    def _verdict(self, run: str, seq: int, t_capture: float, now: float) -> str:
        verdict = self.rule.verdict(self._released, run, seq, t_capture, now)
        if verdict != NEWER:
            if verdict == "implausible":
                self.implausible += 1
            else:
                self.late += 1
        return verdict

    def push(self, run: str, seq: int, t_capture: float, item: T, now: float) -> str:
        """Queue a result; the freshness verdict: anything but NEWER was refused (and counted)."""
        verdict = self._verdict(run, seq, t_capture, now)
        if verdict != NEWER:
            return verdict
        start = self._run_start.setdefault(run, t_capture)
        if len(self._run_start) > 16:  # only a few runs are ever in flight at once
            for old in sorted(self._run_start, key=self._run_start.__getitem__)[:-8]:
                if old != run:
                    del self._run_start[old]
        heapq.heappush(self._heap, _Pending((start, seq, next(self._tie)), now, run, seq, t_capture, item))
        return verdict

    def _due(self, head: _Pending[T], now: float, force: bool) -> bool:
        if force:
            return True
        last = self._released
        successor = last is not None and head.run == last.run and head.seq == last.seq + 1
        return successor or now - head.arrived >= self.window or len(self._heap) > self.max_behind

    def pop_ready(self, now: float, force: bool = False) -> list[T]:
        out: list[T] = []
        while self._heap and self._due(self._heap[0], now, force):
            head = heapq.heappop(self._heap)
            if self._verdict(head.run, head.seq, head.t_capture, now) != NEWER:  # overtaken while waiting
                continue
            self._released = Mark(head.run, head.seq, head.t_capture, now)
            out.append(head.item)
        return out

    def flush(self) -> list[T]:
        """Release everything now (as if the window had passed for all), e.g. at shutdown or in tests."""
        if not self._heap:
            return []
        return self.pop_ready(max(p.arrived for p in self._heap) + self.window, force=True)

    def __len__(self) -> int:
        return len(self._heap)
