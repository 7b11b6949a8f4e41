"""How a result is drawn on its frame: one look for worker --render and watch --record."""

from __future__ import annotations

import cv2
import numpy as np

from .wire import Detection

# BGR colours per class; anything else is drawn in amber.
COLOURS = {"person": (80, 200, 60)}
OTHER = (0, 190, 255)


def draw(image: np.ndarray, detections: list[Detection], caption: str = "") -> np.ndarray:
    """Draw boxes with class and confidence (ASCII labels: OpenCV's fonts have no Hangul)."""
    out: np.ndarray = image.copy()
    for det in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in det.box)
        colour = COLOURS.get(det.cls, OTHER)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = f"{det.label or det.cls} {det.confidence:.2f}"
        (w, h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(out, (x1, max(0, y1 - h - 6)), (x1 + w + 4, y1), colour, -1)
        cv2.putText(
            out, label, (x1 + 2, max(h, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
    if caption:
        cv2.putText(out, caption, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return out
