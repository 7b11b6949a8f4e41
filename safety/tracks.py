"""Live track state on the results bus: what the rules believe, per processed result.

    [b"trk/CAM/", {"kind": "tracks", "v": 1, "camera", "run", "seq", "t_capture",
                   "tracks": [{"id", "box", "zones", "rules", "confirmed"}, ...]}]

One message per result the rules processed (after re-ordering), from the
safety service's PUB to the broker's results-in; the console draws these
(track id, in-zone colour, tripped rule) instead of the model's raw labels,
so the operator sees people as the rules do. docs/protocol.md has the fields.
"""

from __future__ import annotations

from anjeon.protocol.messages import encode_tracks

from .engine import TrackView
from .observation import Observation

MAX_TRACKS = 500  # a header stays far below the bus's 64 KiB limit (about 90 bytes a track)


def tracks_message(obs: Observation, view: list[TrackView]) -> list[bytes]:
    return encode_tracks(obs.camera, obs.run, obs.seq, obs.t, [t.to_dict() for t in view[:MAX_TRACKS]])
