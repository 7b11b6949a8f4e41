"""Track ids for people, per camera: Roboflow's ByteTrack (the `trackers` package), rate-aware.

ByteTrack thinks in frames of a fixed-rate video. Our cameras deliver
whatever the pipeline manages, from 0.5 to 30 results a second, changing by
the minute, so every frame-based setting is re-derived from the camera's
live result interval (``safety/rate.py``) before each update:

- **Kalman time unit** (the tracker's ``frame_rate``): one step per result,
  so its noise tuning (made for one step between frames) holds at any rate.
  At a fixed 30 fps one result a second is a 30-step extrapolation of a noisy
  velocity: a standing person's box drifts off and gets a new id.
- **Lost-track patience**: a track survives ``max(LOST_SECONDS, LOST_RESULTS
  result intervals)`` unseen, in capture time: at 0.5 results/s a person
  missed in one result keeps their id.
- **Association**: IoU alone needs overlap between a track's prediction and
  the next box; at one result a second a walker moves about their own width
  and overlap is gone before the Kalman filter has learnt their speed. The
  similarity is the larger of IoU and a proximity term that accepts a box
  within the distance a person can walk in the elapsed time (about one body
  length per second), scaled by how alike the box areas are. Length and area,
  not height and width: a person who lies down keeps both, and their id.
- **Confirmation**: a new track gets an id after ``CONFIRM_SECONDS`` of
  consecutive sightings, at least 2 and at most 5 results (whichever the rate
  allows): never on a single result.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from .observation import Observation

LOST_SECONDS = 2.0  # a person hidden behind a pillar for this long keeps their id ...
LOST_RESULTS = 4  # ... or for this many result intervals, whichever is longer (3 results missed in a row)
MAX_PATIENCE = 60.0  # seconds; beyond this a "track" is a guess
CONFIRM_SECONDS = 0.2  # consecutive sightings over this long confirm a track ...
CONFIRM_RESULTS = (2, 5)  # ... in at least 2 and at most 5 results
WALK_LENGTHS_PER_S = 1.0  # a person moves at most about one body length per second (1.7 m/s)
REACH_BASE = 0.5  # of the body length: detector jitter and pose changes between two results
MIN_SIMILARITY = 0.1  # ByteTrack's default minimum IoU, applied to the combined similarity
# Thresholds tuned to the default model, whose confidences on people run 0.3-0.9 and which
# already drops detections under 0.3: ByteTrack's defaults (0.7/0.6) would never start a
# track for a third of the people, so every detection it gets may start one.
ACTIVATION = 0.3
HIGH_CONFIDENCE = 0.3


class TrackerMissing(RuntimeError):
    pass


def confirm_results(interval: float | None) -> int:
    """Consecutive results that confirm a track at this result interval."""
    lo, hi = CONFIRM_RESULTS
    if not interval:
        return lo
    return int(min(hi, max(lo, math.ceil(CONFIRM_SECONDS / interval - 1e-9))))


def patience(interval: float | None) -> float:
    """Seconds of capture time a confirmed track survives unseen at this result interval."""
    return min(MAX_PATIENCE, max(LOST_SECONDS, LOST_RESULTS * (interval or 0.0)))


@functools.cache
def _motion_similarity_class() -> type[Any]:
    import supervision as sv
    from trackers.utils.iou import BaseIoU

    class MotionSimilarity(BaseIoU):
        """max(IoU, proximity): proximity is 1 at the predicted spot, 0 at the reach of a walk of ``gap`` s.

        A body's length is the longer side of its box and its size the box's area, so a person who lies
        down (a tall box turning wide, about the same area) still matches their own track."""

        gap = 0.0

        def _compute(self, tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
            iou = sv.box_iou_batch(tracks, dets)
            ct = np.stack([(tracks[:, 0] + tracks[:, 2]) / 2, (tracks[:, 1] + tracks[:, 3]) / 2], axis=1)
            cd = np.stack([(dets[:, 0] + dets[:, 2]) / 2, (dets[:, 1] + dets[:, 3]) / 2], axis=1)
            wt, ht = (
                np.maximum(tracks[:, 2] - tracks[:, 0], 1.0),
                np.maximum(tracks[:, 3] - tracks[:, 1], 1.0),
            )
            wd, hd = np.maximum(dets[:, 2] - dets[:, 0], 1.0), np.maximum(dets[:, 3] - dets[:, 1], 1.0)
            length = np.minimum(np.maximum(wt, ht)[:, None], np.maximum(wd, hd)[None, :])
            area_t, area_d = (wt * ht)[:, None], (wd * hd)[None, :]
            alike = np.minimum(area_t, area_d) / np.maximum(area_t, area_d)
            reach = length * (REACH_BASE + WALK_LENGTHS_PER_S * max(self.gap, 0.0))
            distance = np.linalg.norm(ct[:, None, :] - cd[None, :, :], axis=2)
            proximity = np.clip(1.0 - distance / reach, 0.0, 1.0) * np.sqrt(alike)
            similarity: np.ndarray = np.maximum(iou, proximity)
            return similarity

    return MotionSimilarity


class PersonTracker:
    def __init__(self) -> None:
        try:
            import supervision as sv
            from trackers import ByteTrackTracker
        except ImportError as exc:
            raise TrackerMissing(
                f"the safety service needs its extra: pip install 'anjeon[safety]' and "
                f"pip install --no-deps trackers==2.6.1 ({exc})"
            ) from None
        self._sv = sv
        self._similarity = _motion_similarity_class()()
        self._tracker = ByteTrackTracker(
            lost_track_buffer=int(LOST_SECONDS * 30),
            track_activation_threshold=ACTIVATION,
            high_conf_det_threshold=HIGH_CONFIDENCE,
            minimum_consecutive_frames=CONFIRM_RESULTS[0],
            minimum_iou_threshold=MIN_SIMILARITY,
            iou=self._similarity,
        )
        # The rate-derived settings are plain attributes of trackers 2.6.1's ByteTrack; a version that
        # renamed them would silently run at 30 fps again, so refuse it loudly.
        for name in ("_frame_rate", "maximum_time_without_update", "minimum_consecutive_frames"):
            if not hasattr(self._tracker, name):
                raise TrackerMissing(f"trackers.ByteTrackTracker has no {name!r}: install trackers==2.6.1")
        self._last_t: float | None = None

    def _pace(self, t: float, interval: float | None) -> None:
        tr = self._tracker
        if interval:
            tr._frame_rate = min(60.0, max(0.02, 1.0 / interval))
        tr.maximum_time_without_update = patience(interval)
        tr.minimum_consecutive_frames = confirm_results(interval)
        self._similarity.gap = t - self._last_t if self._last_t is not None else (interval or 0.0)

    def update(self, obs: Observation, interval: float | None = None) -> Observation:
        """Ids for ``obs`` (in capture order); ``interval``: the camera's live result interval in seconds."""
        if self._last_t is not None and obs.t <= self._last_t:
            return obs  # a repeated or older capture time: ByteTrack would skip it anyway; ids stay -1
        self._pace(obs.t, interval)
        self._last_t = obs.t
        n = len(obs.boxes)
        dets = self._sv.Detections(
            xyxy=obs.boxes.astype(np.float32).reshape(-1, 4),
            confidence=obs.confidence.astype(np.float32),
            class_id=np.zeros(n, int),
            data={"row": np.arange(n)},
        )
        out = self._tracker.update(dets, timestamp=obs.t)
        rows = np.asarray(out.data.get("row", np.arange(len(out))), int) if len(out) else np.zeros(0, int)
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else np.full(len(out), -1), int)
        # Keep the detector's boxes (not the Kalman estimate): zones are judged on what was seen.
        return obs.with_tracks(
            obs.boxes[rows].reshape(-1, 4), tuple(obs.labels[i] for i in rows), obs.confidence[rows], ids
        )
