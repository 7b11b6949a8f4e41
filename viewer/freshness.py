"""Never show the past after the present: drop results older than the last shown per camera."""

from __future__ import annotations

from dataclasses import dataclass

from anjeon.protocol.wire import FrameHeader


@dataclass
class _Shown:
    run: str
    seq: int
    t_capture: float


class FreshnessGate:
    """Results of one camera may arrive out of order (several workers); keep only newer ones.

    Within one edge run, order is the sequence number. A different run id means
    the edge restarted (its sequence starts again), so capture time decides.
    """

    def __init__(self) -> None:
        self._shown: dict[str, _Shown] = {}

    def admit(self, frame: FrameHeader) -> bool:
        last = self._shown.get(frame.camera)
        if last is not None:
            if frame.run == last.run and frame.seq <= last.seq:
                return False
            if frame.run != last.run and frame.t_capture < last.t_capture:
                return False
        self._shown[frame.camera] = _Shown(frame.run, frame.seq, frame.t_capture)
        return True
