"""Track ids for people, per camera: Roboflow's ByteTrack (the `trackers` package).

supervision moved its ByteTrack into `trackers`; it takes supervision
Detections and a timestamp, so frames the pipeline dropped (freshness beats
completeness) shorten nothing: a track survives ``LOST_SECONDS`` of absence
measured in capture time, not in frames.
"""

from __future__ import annotations

import numpy as np

from .observation import Observation

LOST_SECONDS = 2.0  # a person hidden behind a pillar for this long keeps their id
# Thresholds tuned to the default model, whose confidences on people run 0.3-0.9 and which
# already drops detections under 0.3: ByteTrack's defaults (0.7/0.6) would never start a
# track for a third of the people, so every detection it gets may start one.
ACTIVATION = 0.3
HIGH_CONFIDENCE = 0.3
CONFIRM_FRAMES = 2  # a detection becomes a track (id >= 0) after this many consecutive frames


class TrackerMissing(RuntimeError):
    pass


class PersonTracker:
    def __init__(self) -> None:
        try:
            import supervision as sv
            from trackers import ByteTrackTracker
        except ImportError as exc:
            raise TrackerMissing(f"the safety service needs its extra: pip install 'anjeon[safety]' and "
                                 f"pip install --no-deps trackers==2.6.1 ({exc})") from None
        self._sv = sv
        self._tracker = ByteTrackTracker(lost_track_buffer=int(LOST_SECONDS * 30), track_activation_threshold=ACTIVATION,
                                         high_conf_det_threshold=HIGH_CONFIDENCE,
                                         minimum_consecutive_frames=CONFIRM_FRAMES)

    def update(self, obs: Observation) -> Observation:
        n = len(obs.boxes)
        dets = self._sv.Detections(xyxy=obs.boxes.astype(np.float32).reshape(-1, 4),
                                   confidence=obs.confidence.astype(np.float32),
                                   class_id=np.zeros(n, int),
                                   data={"row": np.arange(n)})
        out = self._tracker.update(dets, timestamp=obs.t)
        rows = np.asarray(out.data.get("row", np.arange(len(out))), int) if len(out) else np.zeros(0, int)
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else np.full(len(out), -1), int)
        # Keep the detector's boxes (not the Kalman estimate): zones are judged on what was seen.
        return obs.with_tracks(obs.boxes[rows].reshape(-1, 4), tuple(obs.labels[i] for i in rows),
                               obs.confidence[rows], ids)
