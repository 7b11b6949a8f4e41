"""Incident clips: every event gets an MP4 (H.264) from pre-roll to post-roll, drawn as on its snapshot.

The frames are the ones the rules saw (the `img/` JPEGs of the cameras with
rules). Per camera a ring buffer keeps the last ``pre`` seconds, sampled at
the clip rate and capped in bytes. When an event starts, a recording takes
the ring's frames as its pre-roll and then every sampled frame until
``post`` seconds after the event's end, or until the clip is ``max`` seconds
long (long events are capped). The rules' thread only appends JPEG bytes and
box arrays to bounded queues; decoding, drawing and encoding happen on the
encoder thread. A recording whose queue is full drops the frame (counted):
an encoder that falls behind costs clip frames, never events or alerts.

Encoding: PyAV's libx264 (the FFmpeg inside PyAV's wheel), yuv420p, MP4 with
the index at the front (`+faststart`), timestamps from the capture times (a
camera that delivered 3 results/s plays at real speed). Chromium plays it
(tests/test_clips.py). Written as CLIP.mp4.part, renamed when complete.

Config (`clips:` globally in `safety:`, and per camera; `clips: false` turns
them off)::

    clips: {pre: 10, post: 10, max: 120, fps: 5, buffer_mb: 32, folder: data/clips}
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from anjeon.config.evidence import ClipSpec
from anjeon.config.safety import CameraRules

from .geometry import Line, Zone
from .incident import Event, Transition
from .observation import Observation
from .snapshot import OFFENDER_COLOUR, ZONE_COLOUR
from .store import ClipRecord, EventStore

if TYPE_CHECKING:  # PyAV is imported when the first clip is encoded, not at start-up
    from av.container import OutputContainer
    from av.video.stream import VideoStream

log = logging.getLogger("anjeon.safety.clips")

OTHER_COLOUR = (80, 200, 80)  # green: people who are not part of the event
QUEUE_SECONDS = 20.0  # frames a recording may hold for the encoder (at the clip rate) before it drops
QUIET_GRACE = 5.0  # s after the post-roll should have ended before a quiet camera's clip is closed anyway
WAKE = 0.2  # s between the encoder's looks at recordings


@dataclass(frozen=True)
class ClipFrame:
    t: float  # capture time
    jpeg: bytes
    boxes: np.ndarray
    ids: np.ndarray


@dataclass
class Recording:
    event: Event
    rules: CameraRules
    spec: ClipSpec
    path: Path
    start: float  # capture time of the clip's first moment (event start - pre)
    cap: float  # start + max
    end: float | None = None  # set when the event ends (end + post, at most cap)
    end_set: float | None = None  # time.monotonic() when ``end`` was set
    frames: deque[ClipFrame] = field(default_factory=deque)
    queue_cap: int = 100
    dropped: int = 0
    written: int = 0
    last_t: float = 0.0  # newest capture time handed to the queue
    state: str = "recording"  # set by the encoder when it closes the clip: ready | failed
    points: list[tuple[float, float, float]] = field(default_factory=list)  # offenders' feet (t, x, y), 0..1

    def offer(self, frame: ClipFrame) -> bool:
        """On the rules' thread: queue the frame unless it is outside the clip or the queue is full."""
        if self.state != "recording":
            return False
        if frame.t < self.start or frame.t <= self.last_t:
            return True
        if frame.t > (self.end if self.end is not None else self.cap):
            if self.end is None:  # the event goes on, the clip is full: close it at the cap
                self.finish(self.cap)
            return False
        if len(self.frames) >= self.queue_cap:
            self.dropped += 1
            return True
        self.frames.append(frame)
        self.last_t = frame.t
        return True

    def finish(self, end: float) -> None:
        if self.end is None:
            self.end, self.end_set = min(end, self.cap), time.monotonic()


class _Ring:
    """The last ``pre`` seconds of one camera, sampled at the clip rate, capped in bytes."""

    def __init__(self, spec: ClipSpec) -> None:
        self.spec = spec
        self.frames: deque[ClipFrame] = deque()
        self.bytes = 0

    def add(self, frame: ClipFrame) -> bool:
        """Keep the frame if the clip rate allows it; False when it was skipped."""
        if self.frames and frame.t - self.frames[-1].t < 1.0 / self.spec.fps - 1e-3:
            return False
        self.frames.append(frame)
        self.bytes += len(frame.jpeg)
        limit = self.spec.buffer_mb * 1024 * 1024
        while self.frames and (frame.t - self.frames[0].t > self.spec.pre or self.bytes > limit):
            self.bytes -= len(self.frames.popleft().jpeg)
        return True


def annotate_frame(image: np.ndarray, frame: ClipFrame, event: Event, rules: CameraRules) -> np.ndarray:
    """Zone or line of the event, every box with its track id (offenders red), a burnt-in capture time."""
    h, w = image.shape[:2]
    if event.zone and event.zone in rules.zones:
        cv2.polylines(image, [Zone(event.zone, rules.zones[event.zone]).pixels(w, h)], True, ZONE_COLOUR, 2)
    if event.line and event.line in rules.lines:
        a, b = Line(event.line, *rules.lines[event.line].points).pixels(w, h)
        cv2.line(image, a, b, ZONE_COLOUR, 2)
    offenders = set(event.tracks)
    for box, tid in zip(frame.boxes, frame.ids):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        bad = int(tid) in offenders
        colour = OFFENDER_COLOUR if bad else OTHER_COLOUR
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 3 if bad else 1)
        label = f"#{int(tid)}" + (f" {event.type}" if bad else "") if tid >= 0 else "?"
        cv2.putText(
            image, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2, cv2.LINE_AA
        )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frame.t)) + f".{int(frame.t * 10) % 10}"
    text = f"{stamp}  {event.camera}  {event.rule}"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
    cv2.rectangle(image, (0, h - th - 12), (tw + 12, h), (0, 0, 0), -1)
    cv2.putText(image, text, (6, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return image


class _Encoder:
    """One MP4 being written; opened at the first frame (its size fixes the clip's)."""

    def __init__(self, path: Path) -> None:
        self.path, self.part = path, path.with_suffix(".mp4.part")
        self._out: OutputContainer | None = None
        self._stream: VideoStream | None = None
        self._t0 = 0.0
        self._last_pts = -1
        self.size = (0, 0)

    def write(self, image: np.ndarray, t: float) -> None:
        import av

        if self._out is None or self._stream is None:
            h, w = image.shape[:2]
            self.size = (w - w % 2, h - h % 2)  # yuv420p needs even sizes
            self.part.parent.mkdir(parents=True, exist_ok=True)
            self._out = av.open(str(self.part), "w", format="mp4", options={"movflags": "+faststart"})
            self._stream = stream = self._out.add_stream("libx264", rate=30)
            stream.width, stream.height = self.size
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.options = {"preset": "veryfast", "crf": "28"}
            stream.codec_context.thread_count = 1  # the rules and the model need the cores more
            self._t0 = t
        if image.shape[1] != self.size[0] or image.shape[0] != self.size[1]:
            image = cv2.resize(image, self.size)
        pts = int(round((t - self._t0) * 1000))
        if pts <= self._last_pts:
            return
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self._last_pts = pts

    def close(self) -> int:
        """Flush and rename into place; the file's size (0 when nothing was written)."""
        if self._out is None or self._stream is None:
            return 0
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()
        self.part.replace(self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        try:
            if self._out is not None:
                self._out.close()
        except Exception:  # a broken container is thrown away either way
            pass
        self.part.unlink(missing_ok=True)


@dataclass
class ClipStats:
    ready: int = 0
    failed: int = 0
    recording: int = 0
    dropped_frames: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class ClipRecorder:
    """Ring buffers and recordings per camera (rules' thread) and the encoder thread."""

    def __init__(
        self,
        folder: Path,
        store_path: Path,
        specs: dict[str, ClipSpec | None],
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.folder, self._store_path = folder, store_path
        self.specs = dict(specs)
        self._rings: dict[str, _Ring] = {}
        self._active: dict[
            str, list[Recording]
        ] = {}  # camera -> recordings taking frames (rules' thread only)
        self._by_event: dict[str, Recording] = {}  # open events' recordings (rules' thread only)
        self._pending: list[Recording] = []  # every recording the encoder has not closed yet
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._on_error = on_error or (lambda reason, detail: log.warning("%s: %s", reason, detail))
        self.stats = ClipStats()
        self._thread = threading.Thread(target=self._run, name="clip-encoder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Close every recording with what it has (ready if it has frames) and stop the encoder."""
        with self._lock:
            for rec in self._pending:
                rec.finish(rec.last_t or rec.start)
                rec.end_set = 0.0  # no grace left
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def set_specs(self, specs: dict[str, ClipSpec | None]) -> None:
        """A reloaded config: cameras whose clip settings changed start a fresh ring."""
        for cam, spec in specs.items():
            if self.specs.get(cam) != spec:
                self._rings.pop(cam, None)
        self.specs = dict(specs)

    def path_for(self, event: Event) -> Path:
        return self.folder / event.camera / f"{event.id}.mp4"

    # ---- the rules' thread -------------------------------------------------------------------
    def offer(self, camera: str, obs: Observation, jpeg: bytes | None) -> None:
        spec = self.specs.get(camera)
        if spec is None or jpeg is None:
            return
        ring = self._rings.get(camera)
        if ring is None:
            ring = self._rings[camera] = _Ring(spec)
        frame = ClipFrame(obs.t, jpeg, obs.boxes, obs.ids)
        if not ring.add(frame):
            return
        active = self._active.get(camera)
        if not active:
            return
        before = sum(r.dropped for r in active)
        self._active[camera] = [r for r in active if r.offer(frame)]
        self.stats.dropped_frames += sum(r.dropped for r in active) - before
        self._wake.set()

    def on_transition(self, tr: Transition, rules: CameraRules, store: EventStore) -> dict[str, Any] | None:
        """Start a recording at `start`, set its end at `end`; the clip's {state, path} for the event map."""
        ev = tr.event
        spec = self.specs.get(ev.camera)
        if spec is None:
            return None
        if tr.kind == "start":
            rec = Recording(
                ev,
                rules,
                spec,
                self.path_for(ev),
                start=ev.started - spec.pre,
                cap=ev.started - spec.pre + spec.max,
                queue_cap=max(10, int(QUEUE_SECONDS * spec.fps)),
            )
            ring = self._rings.get(ev.camera)
            for frame in list(ring.frames) if ring else []:
                rec.offer(frame)
            self._active.setdefault(ev.camera, []).append(rec)
            self._by_event[ev.id] = rec
            with self._lock:
                self._pending.append(rec)
                self.stats.recording = len(self._pending)
            self._record(store, ClipRecord(ev.id, "recording", str(rec.path), rec.start))
            self._wake.set()
        found = self._by_event.pop(ev.id, None) if tr.kind == "end" else self._by_event.get(ev.id)
        if found is None:  # an event resumed after a restart has no clip
            return None
        if tr.kind == "end":
            found.finish((ev.ended or ev.updated) + found.spec.post)
        return {"state": found.state, "path": str(found.path)}

    def _record(self, store: EventStore, clip: ClipRecord) -> None:
        try:
            store.set_clip(clip)
        except sqlite3.Error as exc:  # a full disk: the clip row is lost, the event and its alerts are not
            self._on_error("clip_store_failed", f"event {clip.event}: {exc}")

    # ---- the encoder thread ------------------------------------------------------------------
    def _run(self) -> None:
        store: EventStore | None = None
        encoders: dict[str, _Encoder] = {}
        try:
            store = EventStore(self._store_path)
            while True:
                self._wake.wait(WAKE)
                self._wake.clear()
                with self._lock:
                    pending = list(self._pending)
                for rec in pending:
                    self._work(rec, encoders, store)
                if self._stop.is_set():
                    with self._lock:
                        if not self._pending:
                            return
        except Exception as exc:  # the encoder thread must say why it died; the rules go on without clips
            log.exception("clip encoder stopped: %s", exc)
        finally:
            for enc in encoders.values():
                enc.abort()
            if store is not None:
                store.close()

    def _work(self, rec: Recording, encoders: dict[str, _Encoder], store: EventStore) -> None:
        enc = encoders.get(rec.event.id)
        if enc is None:
            enc = encoders[rec.event.id] = _Encoder(rec.path)
        try:
            while rec.frames:
                frame = rec.frames.popleft()
                image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    rec.dropped += 1
                    continue
                enc.write(annotate_frame(image, frame, rec.event, rec.rules), frame.t)
                rec.written += 1
                _feet(rec, frame, image.shape[1], image.shape[0])
        except Exception as exc:  # a codec or disk failure fails this clip only
            self._close(rec, encoders, store, error=f"{type(exc).__name__}: {exc}")
            return
        if self._done(rec):
            self._close(rec, encoders, store)

    def _done(self, rec: Recording) -> bool:
        if rec.end is None or rec.frames:
            return False
        if rec.last_t >= rec.end - 1.0 / rec.spec.fps:
            return True
        # The camera went quiet (or the service is stopping): close with what arrived.
        return rec.end_set is not None and time.monotonic() - rec.end_set > rec.spec.post + QUIET_GRACE

    def _close(
        self, rec: Recording, encoders: dict[str, _Encoder], store: EventStore, error: str = ""
    ) -> None:
        enc = encoders.pop(rec.event.id)
        size = 0
        if not error:
            try:
                size = enc.close()
                if not size:
                    error = "no frames of this camera arrived while it was recorded"
            except Exception as exc:  # a full disk while flushing
                error = f"{type(exc).__name__}: {exc}"
        if error:
            enc.abort()
        state = "failed" if error else "ready"
        with self._lock:
            self._pending.remove(rec)
            self.stats.recording = len(self._pending)
            if error:
                self.stats.failed += 1
            else:
                self.stats.ready += 1
        rec.state = state  # the rules' thread stops offering it frames and forgets it
        if error:
            self._on_error("clip_failed", f"event {rec.event.id}: {error}")
        end = rec.last_t if rec.written else rec.start
        self._record(
            store,
            ClipRecord(
                rec.event.id,
                state,
                str(rec.path) if not error else "",
                rec.start,
                end,
                rec.written,
                rec.dropped,
                size,
                error,
            ),
        )
        if rec.points:
            try:
                store.add_points(rec.event.id, rec.points)
            except sqlite3.Error as exc:
                self._on_error("clip_store_failed", f"event {rec.event.id} points: {exc}")
        log.info(
            "clip %s of event %s: %d frames (%.1f s), %d dropped, %d bytes%s",
            state,
            rec.event.id,
            rec.written,
            end - rec.start,
            rec.dropped,
            size,
            f": {error}" if error else "",
        )


MAX_POINTS = 600  # per event: a 2-minute clip at 5 fps of one offender


def _feet(rec: Recording, frame: ClipFrame, w: int, h: int) -> None:
    """Record where the event's offenders stand (bottom centre of their boxes) during the incident itself."""
    ev = rec.event
    if frame.t < ev.started or (ev.ended is not None and frame.t > ev.ended) or len(rec.points) >= MAX_POINTS:
        return
    offenders = set(ev.tracks)
    for box, tid in zip(frame.boxes, frame.ids):
        if int(tid) in offenders and w and h:
            rec.points.append((frame.t, float((box[0] + box[2]) / 2 / w), float(box[3] / h)))


def fail_unfinished(store: EventStore) -> int:
    """At start: clips left `recording` by a service that stopped are failed (their .part is useless)."""
    rows = store.db.execute("SELECT event, path FROM clips WHERE state = 'recording'").fetchall()
    for event, path in rows:
        if path:
            Path(path).with_suffix(".mp4.part").unlink(missing_ok=True)
        store.set_clip(ClipRecord(event, "failed", "", error="the safety service stopped while recording"))
    return len(rows)
