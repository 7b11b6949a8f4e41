"""Annotated snapshots: the exact frame an event started on, drawn as the rules saw it.

Each person is labelled with what the rules believe, never the model's raw
label (the default model calls a static object "Fall 45%" on every frame
while, rightly, no fall is raised): the track id (``?`` while not
confirmed), the zones their feet are in and the rules they trip. Offenders
of this event are red, other people in a zone amber, the rest green,
unconfirmed detections grey.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from anjeon.config.safety import CameraRules

from .engine import TrackView
from .geometry import Line, Zone
from .incident import Event

ZONE_COLOUR = (0, 200, 255)  # amber, BGR
OFFENDER_COLOUR = (40, 40, 230)  # red
IN_ZONE_COLOUR = (0, 170, 255)  # amber
CLEAR_COLOUR = (80, 200, 60)  # green
UNCONFIRMED_COLOUR = (160, 160, 160)  # grey


def track_label(track: TrackView) -> str:
    parts = [f"#{track.id}" if track.confirmed else "#?"]
    parts += [f"in {z}" for z in track.zones]
    parts += track.rules
    return " ".join(parts)


def _colour(track: TrackView, offender: bool) -> tuple[int, int, int]:
    if offender:
        return OFFENDER_COLOUR
    if not track.confirmed:
        return UNCONFIRMED_COLOUR
    return IN_ZONE_COLOUR if track.zones else CLEAR_COLOUR


def annotate(
    image: np.ndarray, rows: tuple[int, ...], event: Event, rules: CameraRules, view: list[TrackView]
) -> np.ndarray:
    h, w = image.shape[:2]
    out: np.ndarray = image.copy()
    if event.zone:
        cv2.polylines(out, [Zone(event.zone, rules.zones[event.zone]).pixels(w, h)], True, ZONE_COLOUR, 2)
    if event.line:
        spec = rules.lines[event.line]
        a, b = Line(event.line, *spec.points).pixels(w, h)
        cv2.line(out, a, b, ZONE_COLOUR, 2)
    offenders = set(rows)
    for i, track in sorted(
        enumerate(view), key=lambda it: it[0] in offenders
    ):  # offenders drawn last, on top
        x1, y1, x2, y2 = (int(round(v)) for v in track.box)
        colour = _colour(track, i in offenders)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 3 if i in offenders else 2)
        cv2.putText(
            out,
            track_label(track),
            (x1, max(12, y1 - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            colour,
            2,
            cv2.LINE_AA,
        )
    caption = f"{event.camera} {event.rule} {time.strftime('%H:%M:%S', time.localtime(event.started))}"
    cv2.putText(out, caption, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def write_snapshot(
    folder: Path,
    jpeg: bytes | None,
    rows: tuple[int, ...],
    event: Event,
    rules: CameraRules,
    view: list[TrackView],
) -> str:
    """Write FOLDER/CAMERA/EVENT.jpg and return its path; '' when there is no picture to draw on.

    ``view``: the rules' view of the event's frame (CameraEngine.view), one entry per row of the result."""
    if jpeg is None:
        return ""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return ""
    target = folder / event.camera / f"{event.id}.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", annotate(image, rows, event, rules, view), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return ""
    tmp = target.with_suffix(".part")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(target)  # atomic: an alert never points at a half-written file
    return str(target)
