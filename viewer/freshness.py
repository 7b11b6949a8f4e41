"""Never show the past after the present: the console's use of the one freshness rule (protocol/freshness.py).

Results of one camera may arrive out of order (several workers); only newer
ones are kept. protocol/freshness.py decides what "newer" means, robust to a
forged sequence jump (``seq = 2**62`` no longer freezes a camera) and to a run
that stops sending. This adapter keeps the console's small interface
(``admit(FrameHeader) -> bool``, used by loadtest/measure.py too) and says why
a result was refused, so callers count drops by reason.
"""

from __future__ import annotations

import time

from anjeon.protocol import freshness
from anjeon.protocol.wire import FrameHeader

NEWER, STALE, IMPLAUSIBLE = freshness.NEWER, freshness.STALE, freshness.IMPLAUSIBLE


class FreshnessGate:
    def __init__(self, max_cameras: int = 4096) -> None:
        self._gate = freshness.FreshnessGate(max_cameras=max_cameras)
        self.last_verdict = NEWER

    def verdict(self, frame: FrameHeader) -> str:
        """NEWER (and it becomes the reference), STALE or IMPLAUSIBLE."""
        verdict = self._gate.admit(frame.camera, frame.run, frame.seq, frame.t_capture)
        if verdict == IMPLAUSIBLE and self._reference_stuck(frame):
            self._gate.forget(frame.camera)
            verdict = self._gate.admit(frame.camera, frame.run, frame.seq, frame.t_capture)
        self.last_verdict = verdict
        return verdict

    def _reference_stuck(self, frame: FrameHeader) -> bool:
        """A reference that itself arrived late blocks every fresher result for good.

        The rule's capture-time guard compares capture time advanced with time
        elapsed here; when the reference result came N seconds later than the
        ones after it (a worker stalled, then caught up), every later result
        looks ``max_lead + N`` seconds "in the future" however long we wait. So
        when nothing was accepted for the rule's timeout and the result's capture
        time is not ahead of this host's clock (beyond max_lead), the stale
        reference is dropped and the result taken. A forged ``seq`` or capture
        time does not get in this way while real results flow (they keep the
        reference fresh), nor a capture time in the future.
        """
        last = self._gate.last(frame.camera)
        rule = self._gate.rule
        return (last is not None and time.monotonic() - last.at > rule.timeout
                and frame.t_capture <= time.time() + rule.max_lead and frame.seq - last.seq <= 1 + rule.max_fps * rule.timeout)

    def admit(self, frame: FrameHeader) -> bool:
        return self.verdict(frame) == NEWER

    def forget(self, camera: str) -> None:
        self._gate.forget(camera)

    @property
    def evicted(self) -> int:
        return self._gate.evicted
