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
- **B** stands still at the top right all along, above the zone and never on
  the fence's allowed side: never part of anything.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from conftest import ROOT, SAMPLE, ultralytics_asset

W, H = 768, 576
SCALE = 0.42  # bus.jpg people are 500 px tall; at this scale about 210 px, as near people on the sample video
# People in bus.jpg (pixels of that image): crops that hold one person each, little of the next.
CROPS = {"left": (50, 400, 232, 903), "right": (672, 380, 810, 876), "middle": (240, 410, 345, 860)}

Path2 = Callable[
    [float], "tuple[float, float] | None"
]  # t -> feet (x, y) normalized, None: not in the picture


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
    """D: walks upright x 0.03 -> 0.42 (t 3..12: 1.4 times their height, so even at a low rate the part
    seen after the track is confirmed is more than their height), lies down at t 12, gone at t 24."""
    if t < 3.0 or t >= 24.0:
        return None
    return (_walk(t, 3.0, 0.03, 12.0, 0.42), 0.62)


ACTORS = (
    Actor("A", "left", lambda t: (a_x(t), 0.86)),
    Actor("C", "left", lambda t: None if c_x(t) is None else (c_x(t), 0.93)),
    Actor("D", "left", d_at, lying=lambda t: t >= 12.0),
    Actor("B", "right", lambda t: (0.75, 0.40)),
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
    c_in = _crossing(
        lambda t: -(c_x(t) or 2.0), -ZONE_RIGHT, 10.0, 16.0, up=True
    )  # C's feet pass x = 0.9 inward
    c_out = _crossing(lambda t: c_x(t) or 2.0, ZONE_RIGHT, 16.0, 23.0, up=True)
    return [
        Truth("intrusion", a_in, a_out),
        Truth("dwell", a_in, a_out),
        Truth("crowding", c_in, c_out),
        Truth(
            "crossing",
            _crossing(a_x, FENCE_X, 0.0, 20.0, up=True),
            _crossing(a_x, FENCE_X, 20.0, DURATION, up=False),
        ),
        Truth("fall", 12.0, 24.0),
    ]


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
        frame[fy1:fy2, fx1:fx2] = image[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1]


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


# ------------------------------------------------------------------ running a scene and scoring what the rules said

CAMERA = "yard"
WARMUP = "warmup"  # a camera without rules: proves the bus is connected both ways before the scene starts
SLACK = 0.5  # seconds beyond one result interval that the issue allows


def site_config(path: Path, store: Path, cameras: tuple[str, ...] = (CAMERA,)) -> Path:
    body = "\n".join("      " + line for line in RULES.strip("\n").splitlines())
    cams = "".join(f"    {cam}:\n{body}\n" for cam in cameras)
    path.write_text(f"safety:\n  store: {store}\n  cameras:\n{cams}    {WARMUP}: {{}}\n", encoding="utf-8")
    return path


def start_service(system, tmp: Path, cameras: tuple[str, ...] = (CAMERA,)) -> tuple[Path, Listener]:
    """Broker and `anjeon safety` with the scene's rules (real processes, conftest.System), and a listener on
    the bus; returns (event store, listener) once the service is up (slow to import on a busy host)."""
    from conftest import wait_for
    from safety_fixtures import start_safety

    db = tmp / "events.db"
    system.broker()
    safety, _ = start_safety(system, "safety", site_config(tmp / "site.yaml", db, cameras))
    wait_for(lambda: "connected" in safety.output(), 240, "the safety service to start")
    return db, Listener(system.ctx, f"tcp://127.0.0.1:{system.base + 3}", cameras[0])


@dataclass
class Heard:
    """What the safety service said on the bus, in order: its track state per result and its events."""

    tracks: list[dict]  # trk/CAM/ headers
    events: list[tuple[dict, float | None]]  # (evt message, t_capture of the result that decided it)


class Listener:
    """A SUB on results-out for trk/ and evt/: the order on one publisher's connection is kept, so the
    last trk/ message before an evt/ message is the result that decided that transition."""

    def __init__(self, ctx, results_out: str, camera: str = CAMERA) -> None:
        import zmq

        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(results_out)
        for prefix in ("trk/", "evt/"):
            self.sock.setsockopt(zmq.SUBSCRIBE, f"{prefix}{camera}/".encode())
        self.sock.setsockopt(zmq.SUBSCRIBE, f"trk/{WARMUP}/".encode())
        self.camera = camera
        self.heard = Heard([], [])
        self.warm = False

    def drain(self, timeout: float = 0.0) -> None:
        import msgpack

        while self.sock.poll(timeout * 1000):
            timeout = 0.0
            topic, body = self.sock.recv_multipart()[:2]
            msg = msgpack.unpackb(body)
            if topic.startswith(f"trk/{WARMUP}/".encode()):
                self.warm = True
            elif topic.startswith(b"trk/"):
                self.heard.tracks.append(msg)
            else:
                last = self.heard.tracks[-1]["t_capture"] if self.heard.tracks else None
                self.heard.events.append((msg, last))


def result_message(
    camera: str, run: str, seq: int, t_capture: float, jpeg: bytes, detections: list[dict]
) -> list[bytes]:
    """What a worker publishes for one frame on img/CAM/ (header with detections, then the JPEG)."""
    from anjeon.protocol import wire

    frame = wire.FrameHeader(
        camera=camera,
        run=run,
        seq=seq,
        t_capture=t_capture,
        width=W,
        height=H,
        size=len(jpeg),
        edge="scene-replay",
        ts={"capture": t_capture},
    )
    result = wire.Result(
        frame=frame,
        worker="replay",
        model="person (recorded)",
        detections=[wire.Detection.from_dict(d) for d in detections],
    )
    return [wire.topic(wire.IMAGE_PREFIX, camera), result.to_wire(), jpeg]


def replay(
    ctx,
    results_in: str,
    listener: Listener,
    recorded: list[list[dict]],
    fps: float,
    rate: float,
    cameras: tuple[str, ...] = (CAMERA,),
    timeout: float = 180.0,
    stop_at: float | None = None,
) -> float:
    """Publish the recorded detections of every (fps/rate)-th frame at ``rate`` results/s, paced in real time,
    with capture time = now (as an edge would stamp them). Returns the capture time of the scene's start.
    ``stop_at``: the camera goes quiet at this scene time (seconds)."""
    import time

    import zmq

    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(results_in)
    jpeg0 = cv2.imencode(".jpg", background())[1].tobytes()
    deadline = time.monotonic() + timeout
    seq = 0
    while not listener.warm:  # bounded: the service must answer a warm-up result before the scene starts
        if time.monotonic() > deadline:
            raise AssertionError("the safety service never answered on trk/warmup/")
        seq += 1
        pub.send_multipart(result_message(WARMUP, "warm", seq, time.time(), jpeg0, []))
        listener.drain(0.2)
    # The frame nearest each 1/rate step: at a rate that does not divide fps the gaps alternate (jitter).
    picks = sorted(
        {min(len(recorded) - 1, round(j * fps / rate)) for j in range(int(len(recorded) / fps * rate) + 1)}
    )
    frames = [k for k in picks if stop_at is None or k / fps < stop_at]
    jpegs = {
        k: cv2.imencode(".jpg", frame_at(k / fps), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        for k in frames
    }
    t0 = time.time() + 0.5
    for k in frames:
        due = t0 + k / fps
        while time.time() < due:
            listener.drain(min(0.05, max(0.0, due - time.time())))
        for cam in cameras:
            pub.send_multipart(result_message(cam, f"replay-{cam}", k + 1, due, jpegs[k], recorded[k]))
    listener.drain(1.0)
    pub.close(0)
    return t0


@dataclass
class Score:
    rule: str
    events: int  # events of this rule (1 is right)
    start_error: float | None  # started - (truth.start + min_duration), seconds
    end_error: float | None  # (capture time of the result that ended it) - (truth.end + end_after)
    interval: float  # the largest result interval around the incident
    start_ok: bool
    end_ok: bool

    @property
    def ok(self) -> bool:
        return self.events == 1 and self.start_ok and self.end_ok


def _interval_near(times: list[float], a: float, b: float) -> float:
    gaps = [t2 - t1 for t1, t2 in zip(times, times[1:]) if t2 >= a and t1 <= b]
    return max(gaps, default=0.0)


def score(heard: Heard, t0: float) -> list[Score]:
    """Each scripted incident against what the service said: one event, on time (bounds as in the issue)."""
    times = [m["t_capture"] for m in heard.tracks]
    out = []
    for tr in truth():
        msgs = [(m, at) for m, at in heard.events if m["event"]["rule"] == tr.rule]
        ids = {m["event"]["id"] for m, _ in msgs}
        starts = [m for m, _ in msgs if m["transition"] == "start"]
        ends = [at for m, at in msgs if m["transition"] == "end"]
        wait, linger = MIN_DURATION[tr.rule], END_AFTER[tr.rule]
        i_start = _interval_near(times, t0 + tr.start - 1.0, t0 + tr.start + wait + 1.0)
        i_end = _interval_near(times, t0 + tr.end - 1.0, t0 + tr.end + linger + 1.0)
        start_err = starts[0]["event"]["started"] - (t0 + tr.start + wait) if starts else None
        end_err = ends[0] - (t0 + tr.end + linger) if ends and ends[0] is not None else None
        # Where min_duration (end_after) is shorter than one interval, the two results an event needs
        # take longer: max(min_duration, interval) + interval (docs/safety.md).
        start_ok = (
            start_err is not None
            and -i_start - SLACK <= start_err <= max(wait, i_start) - wait + i_start + SLACK
        )
        end_ok = (
            end_err is not None and -i_end - SLACK <= end_err <= max(linger, i_end) - linger + i_end + SLACK
        )
        out.append(Score(tr.rule, len(ids), start_err, end_err, max(i_start, i_end), start_ok, end_ok))
    return out


def other_events(heard: Heard) -> list[dict]:
    rules = {tr.rule for tr in truth()}
    return [m for m, _ in heard.events if m["event"]["rule"] not in rules]


def main() -> None:
    """``python tests/scenes.py RESULTS_IN RESULTS_OUT RATE [STOP_AT]``: replay the scene as a separate process
    (so it can run on a shifted clock under faketime, like an edge on a host whose clock is off); prints the
    capture time of the scene's start on that clock."""
    import sys

    import zmq

    results_in, results_out, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
    stop_at = float(sys.argv[4]) if len(sys.argv) > 4 else None
    ctx = zmq.Context()
    listener = Listener(ctx, results_out)
    t0 = replay(ctx, results_in, listener, record(5.0), 5.0, rate, stop_at=stop_at)
    print(f"t0 {t0!r}", flush=True)
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
