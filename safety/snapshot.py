"""Annotated snapshots: the exact frame an event started on, with the zone or line and the offending boxes."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from anjeon.protocol.annotate import draw
from anjeon.protocol.imaging import decode_jpeg
from anjeon.protocol.wire import Detection, ProtocolError

from .config import CameraRules
from .geometry import Line, Zone
from .incident import Event
from .observation import Observation

ZONE_COLOUR = (0, 200, 255)  # amber, BGR
OFFENDER_COLOUR = (40, 40, 230)  # red


def annotate(image: np.ndarray, obs: Observation, rows: tuple[int, ...], event: Event, rules: CameraRules) -> np.ndarray:
    h, w = image.shape[:2]
    others = [Detection("person", float(obs.confidence[i]), obs.boxes[i].tolist(), f"#{obs.ids[i]}")
              for i in range(len(obs.boxes)) if i not in rows]
    out = draw(image, others, f"{event.camera} {event.rule} {time.strftime('%H:%M:%S', time.localtime(event.started))}")
    if event.zone:
        cv2.polylines(out, [Zone(event.zone, rules.zones[event.zone]).pixels(w, h)], True, ZONE_COLOUR, 2)
    if event.line:
        spec = rules.lines[event.line]
        a, b = Line(event.line, *spec.points).pixels(w, h)
        cv2.line(out, a, b, ZONE_COLOUR, 2)
    for i in rows:
        x1, y1, x2, y2 = (int(round(v)) for v in obs.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), OFFENDER_COLOUR, 3)
        cv2.putText(out, f"#{obs.ids[i]} {event.type}", (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    OFFENDER_COLOUR, 2, cv2.LINE_AA)
    return out


def write_snapshot(folder: Path, jpeg: bytes | None, obs: Observation, rows: tuple[int, ...], event: Event,
                   rules: CameraRules) -> str:
    """Write FOLDER/CAMERA/EVENT.jpg and return its path; '' when there is no picture to draw on."""
    if jpeg is None:
        return ""
    try:  # size guard before decoding: a tiny JPEG claiming 12000x12000 would cost 400 MB here
        image = decode_jpeg(jpeg)
    except ProtocolError:
        return ""
    target = folder / event.camera / f"{event.id}.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", annotate(image, obs, rows, event, rules), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return ""
    tmp = target.with_suffix(".part")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(target)  # atomic: an alert never points at a half-written file
    return str(target)
