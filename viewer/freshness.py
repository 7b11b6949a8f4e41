"""Transitional (loadtest/measure.py still imports it): an adapter over protocol/freshness.py; goes once it switches.

Never show the past after the present: the one freshness rule (protocol/freshness.py).

Results of one camera may arrive out of order (several workers); only newer
ones are kept. protocol/freshness.py decides what "newer" means, robust to a
forged sequence jump (``seq = 2**62`` no longer freezes a camera) and to a run
that stops sending. This adapter keeps the console's small interface
(``admit(FrameHeader) -> bool``, used by loadtest/measure.py too) and says why
a result was refused, so callers count drops by reason.
"""

from __future__ import annotations

from anjeon.protocol import freshness
from anjeon.protocol.wire import FrameHeader

NEWER, STALE, IMPLAUSIBLE = freshness.NEWER, freshness.STALE, freshness.IMPLAUSIBLE


class FreshnessGate:
    def __init__(self, max_cameras: int = 4096) -> None:
        self._gate = freshness.FreshnessGate(max_cameras=max_cameras)
        self.last_verdict = NEWER

    def verdict(self, frame: FrameHeader) -> str:
        """NEWER (and it becomes the reference), STALE or IMPLAUSIBLE."""
        self.last_verdict = self._gate.admit(frame.camera, frame.run, frame.seq, frame.t_capture)
        return self.last_verdict

    def admit(self, frame: FrameHeader) -> bool:
        return self.verdict(frame) == NEWER

    def forget(self, camera: str) -> None:
        self._gate.forget(camera)

    @property
    def evicted(self) -> int:
        return self._gate.evicted
