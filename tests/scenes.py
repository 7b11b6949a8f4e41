"""Scripted scenes with ground truth, generated on the fly (nothing but this generator is committed).

Real person pixels, cut from ultralytics' bundled bus.jpg, move on known
paths over a background made from the shared sample video (the per-pixel
median of frames spread over vtest.avi: the walkers vanish, the site stays,
including the static yellow object the default model labels ``Fall``). The
scene is a function of time, so the same incidents can be rendered at any
camera fps; the truth (when each rule's condition begins and ends) follows
from the paths and is written down next to them.

The yard (normalized coordinates, feet = bottom centre of a person):

- zone ``danger``: x 0.55..0.90, y 0.45..0.99 (its right edge well inside the
  picture, so people cross it fully visible); fence ``fence``: the line
  x = 0.5 from y 0.4 down to 1.0, its right (x > 0.5) restricted.
- **A** walks right from x 0.12, crosses the fence (line crossing), enters the
  zone (intrusion), stands there (dwell, 8 s), and walks back out and across.
- **C** walks into the zone from the right edge, so two people are inside
  together (crowding, max 1), and walks out again; C never crosses the fence.
- **D** walks upright on the left, lies down (the sprite turned on its side),
  stays down (fall), and is gone later.
- **B** stands still on the left all along: never part of anything.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from conftest import ROOT, SAMPLE, ultralytics_asset

W, H = 768, 576
SCALE = 0.42  # bus.jpg people are 500 px tall; at this scale about 210 px, as near people on the sample video
# People in bus.jpg (pixels of that image): crops that hold one person each, little of the next.
CROPS = {"left": (50, 400, 232, 903), "right": (672, 380, 810, 876), "middle": (240, 410, 345, 860)}

Path2 = Callable[[float], "tuple[float, float] | None"]  # t -> feet (x, y) normalized, None: not in the picture


@dataclass(frozen=True)
class Actor:
    name: str
    crop: str
    path: Path2
    lying: Callable[[float], bool] = lambda t: False


@dataclass(frozen=True)
class Truth:
    rule: str  # rule name in RULES
    start: float  # seconds from the scene's start when the condition begins (before min_duration)
    end: float  # when it stops


def _walk(t: float, t0: float, x0: float, t1: float, x1: float) -> float:
    """x moving linearly from x0 at t0 to x1 at t1, held before and after."""
    if t <= t0:
        return x0
    if t >= t1:
        return x1
    return x0 + (x1 - x0) * (t - t0) / (t1 - t0)


SPEED = 0.06  # normalized x per second: about 46 px/s, a fifth of the sprite's height a second


def a_x(t: float) -> float:
    """A: 0.12 -> 0.66 (t 0..9), stays to t 26, back to 0.3 (t 26..32)."""
    if t < 26.0:
        return _walk(t, 0.0, 0.12, 9.0, 0.66)
    return _walk(t, 26.0, 0.66, 32.0, 0.30)


def c_x(t: float) -> float | None:
    """C: in from the right edge at t 11, at 0.80 from t 14 to 19, out again by t 22.3."""
    if t < 11.0 or t > 22.3:
        return None
    if t < 19.0:
        return _walk(t, 11.0, 1.02, 14.0, 0.80)
    return _walk(t, 19.0, 0.80, 22.3, 1.04)


def d_at(t: float) -> tuple[float, float] | None:
    """D: walks upright x 0.04 -> 0.34 (t 4..12: more than their own height), lies down at t 12, gone at t 24."""
    if t < 4.0 or t >= 24.0:
        return None
    return (_walk(t, 4.0, 0.04, 12.0, 0.34), 0.62)


ACTORS = (
    Actor("A", "left", lambda t: (a_x(t), 0.86)),
    Actor("C", "left", lambda t: None if c_x(t) is None else (c_x(t), 0.93)),
    Actor("D", "left", d_at, lying=lambda t: t >= 12.0),
    Actor("B", "right", lambda t: (0.44, 0.38)),
)
DURATION = 34.0  # seconds; everything is over by then except B standing


def _crossing(f: Callable[[float], float], level: float, lo: float, hi: float, up: bool) -> float:
    """When f crosses ``level`` (upwards or downwards) in [lo, hi], to 1 ms."""
    ts = np.arange(lo, hi, 0.001)
    xs = np.array([f(t) for t in ts])
    idx = np.flatnonzero(xs >= level) if up else np.flatnonzero(xs < level)
    return float(ts[idx[0]])


ZONE_X, ZONE_RIGHT = 0.55, 0.90
FENCE_X = 0.5
RULES = """
zones:
  danger: [[0.55, 0.45], [0.90, 0.45], [0.90, 0.99], [0.55, 0.99]]
lines:
  fence: {points: [[0.5, 0.4], [0.5, 1.0]], restricted: left}
rules:
  - {type: intrusion, zone: danger, name: intrusion, min_duration: 1.0, end_after: 2.0}
  - {type: dwell, zone: danger, name: dwell, min_duration: 8.0, end_after: 2.0}
  - {type: crowding, zone: danger, name: crowding, max_people: 1, min_duration: 1.0, end_after: 2.0}
  - {type: line_crossing, line: fence, name: crossing, end_after: 2.0}
  - {type: fall, name: fall, min_duration: 2.0, end_after: 2.0}
"""
MIN_DURATION = {"intrusion": 1.0, "dwell": 8.0, "crowding": 1.0, "crossing": 0.0, "fall": 2.0}
END_AFTER = {rule: 2.0 for rule in MIN_DURATION}


def truth() -> list[Truth]:
    """When each rule's condition holds, from the paths above (walking down the fence, its left is x > 0.5)."""
    a_in = _crossing(a_x, ZONE_X, 0.0, 20.0, up=True)
    a_out = _crossing(a_x, ZONE_X, 20.0, DURATION, up=False)
    c_in = _crossing(lambda t: -(c_x(t) or 2.0), -ZONE_RIGHT, 10.0, 16.0, up=True)  # C's feet pass x = 0.9 inward
    c_out = _crossing(lambda t: c_x(t) or 2.0, ZONE_RIGHT, 16.0, 23.0, up=True)
    return [Truth("intrusion", a_in, a_out), Truth("dwell", a_in, a_out), Truth("crowding", c_in, c_out),
            Truth("crossing", _crossing(a_x, FENCE_X, 0.0, 20.0, up=True),
                  _crossing(a_x, FENCE_X, 20.0, DURATION, up=False)),
            Truth("fall", 12.0, 24.0)]


@functools.cache
def background() -> np.ndarray:
    """The sample video without its walkers: the per-pixel median of 25 frames spread over it."""
    cap = cv2.VideoCapture(str(SAMPLE))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 795
    frames = []
    for k in np.linspace(0, n - 1, 25).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(k))
        ok, frame = cap.read()
        if ok:
            frames.append(cv2.resize(frame, (W, H)))
    cap.release()
    if len(frames) < 5:
        raise RuntimeError(f"cannot read the sample video {SAMPLE}")
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


@functools.cache
def sprite(crop: str, lying: bool) -> np.ndarray:
    bus = cv2.imread(ultralytics_asset("bus.jpg"))
    x1, y1, x2, y2 = CROPS[crop]
    person = cv2.resize(bus[y1:y2, x1:x2], None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_AREA)
    # Turned this way the default model calls the bus man "Fall" (0.6-0.7); the other way it is less sure.
    return cv2.rotate(person, cv2.ROTATE_90_COUNTERCLOCKWISE) if lying else person


def paste(frame: np.ndarray, image: np.ndarray, feet: tuple[float, float]) -> None:
    """Paste with the bottom centre at ``feet`` (normalized), clipped at the frame's edges."""
    h, w = image.shape[:2]
    cx, bottom = int(round(feet[0] * W)), int(round(feet[1] * H))
    x1, y1 = cx - w // 2, bottom - h
    fx1, fy1, fx2, fy2 = max(0, x1), max(0, y1), min(W, x1 + w), min(H, bottom)
    if fx2 > fx1 and fy2 > fy1:
        frame[fy1:fy2, fx1:fx2] = image[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1]


def frame_at(t: float) -> np.ndarray:
    frame = background().copy()
    for actor in ACTORS:
        feet = actor.path(t)
        if feet is not None:
            paste(frame, sprite(actor.crop, actor.lying(t)), feet)
    return frame


def render(folder: Path, fps: float, duration: float = DURATION) -> list[Path]:
    """The scene as numbered JPEGs at ``fps`` (frame k shows time k / fps); the edge plays them in name order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(int(duration * fps)):
        path = folder / f"{k:05d}.jpg"
        cv2.imwrite(str(path), frame_at(k / fps), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def fingerprint(fps: float) -> str:
    """Changes whenever what the scene shows at ``fps`` does: the key of recorded detections."""
    digest = hashlib.sha256(f"{fps}:{DURATION}".encode())
    for t in np.arange(0.0, DURATION, 2.0):
        digest.update(frame_at(float(t)).tobytes())
    return digest.hexdigest()[:16]


CACHE = ROOT / ".cache" / "anjeon-scenes"  # ignored by git, like every .cache


def record(fps: float, model: str = "person") -> list[list[dict]]:
    """The real model's detections of every frame of the scene at ``fps`` (cached: computed once per scene).

    This is what a worker answers for each frame; replaying it at a lower rate through the real broker
    and safety service stands in for a CPU that cannot run the model that fast (see test_safety_scene.py)."""
    import json

    path = CACHE / f"{fingerprint(fps)}-{model}-{fps:g}fps.json"
    if path.exists():
        return json.loads(path.read_text())["frames"]
    from anjeon.inference.models import load_detector

    detector = load_detector(model, "cpu", 2)
    frames = []
    for k in range(int(DURATION * fps)):
        frames.append([d.to_dict() for d in detector.predict([frame_at(k / fps)])[0]])
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps({"fps": fps, "model": model, "frames": frames}))
    tmp.replace(path)
    return frames
