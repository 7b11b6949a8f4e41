"""Live track state on the results bus: what the rules believe, per processed result.

    [b"trk/CAM/", {"kind": "tracks", "v": 1, "camera", "run", "seq", "t_capture",
                   "tracks": [{"id", "box", "zones", "rules", "confirmed"}, ...]}]

One message per result the rules processed (after re-ordering), from the
safety service's PUB to the broker's results-in; the console draws these
(track id, in-zone colour, tripped rule) instead of the model's raw labels,
so the operator sees people as the rules do. docs/protocol.md has the fields.
"""

from __future__ import annotations

from anjeon.protocol import wire

from .engine import TrackView
from .observation import Observation

TRACKS_PREFIX = "trk/"
TRACKS = "tracks"
MAX_TRACKS = 500  # a header stays far below the bus's 64 KiB limit (about 90 bytes a track)


def tracks_message(obs: Observation, view: list[TrackView]) -> list[bytes]:
    return [
        wire.topic(TRACKS_PREFIX, obs.camera),
        wire.pack(
            {
                "kind": TRACKS,
                "v": wire.VERSION,
                "camera": obs.camera,
                "run": obs.run,
                "seq": obs.seq,
                "t_capture": obs.t,
                "tracks": [t.to_dict() for t in view[:MAX_TRACKS]],
            }
        ),
    ]
