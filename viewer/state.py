"""What the console knows: the newest frame per camera, broker health, alarms, track state and acknowledgements.

Pure data and logic, no event loop and no sockets (viewer/bus.py feeds it,
viewer/app.py serves it), so it is tested without a network. Freshness holds
here as everywhere: one frame per camera, replaced, never queued.

Everything here comes off the bus, where any device on the site network can
publish: every map is checked field by field before it is kept (a wrong type
is a counted drop, never an exception in a page handler), strings stay
strings (the page shows them as text), and every collection keyed by an id
from the wire has a cap (``Limits``), counted when hit.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anjeon.protocol import imaging, wire
from anjeon.protocol.stats import DropCounter

from .freshness import NEWER, FreshnessGate

log = logging.getLogger("anjeon.viewer")

LATENCY_WINDOW = 50  # frames per camera behind the latency median
# A camera counts as offline when the broker has had no frame from it for this long (or
# 3 frame intervals for slow cameras); with status once a second that marks it within ~3 s.
FRAME_SILENCE = 2.0
STATUS_SILENCE = 3.0  # no status snapshot for this long: the broker is gone, every camera offline
FPS_WINDOW = 3.0  # seconds of arrivals behind the fps figure
FEED_IDLE = 30.0  # a camera without a frame for this long may give its slot to a new one at the cap
TRACKS_KEPT = 8  # track messages kept per camera, to pair each frame with the tracks of the same seq
TRACKS_FRESH = 3.0  # seconds: a camera is drawn from its track state while messages came this recently
TRACKS_MATCH = 1.0  # seconds: the newest tracks no older than this before a frame are drawn on it
MAX_TEXT = 256  # longest string kept from an event field
MAX_EVENT_TRACKS = 1000  # track ids kept per event (a long crowd has thousands)
MAX_TRACKS = 500  # tracks per trk/ message
MAX_TRACK_NAMES = 16  # zone / rule names per track
CAPPED = "capped"  # add_frame: no room for another camera (counted as cap_cameras)


@dataclass(frozen=True)
class Limits:
    """Caps on state keyed by ids off the wire (docs/console.md; --max-cameras, --max-alarms)."""

    cameras: int = 1024  # feeds, per-camera state, cameras listed from the broker's status
    alarms: int = 500  # open or unacknowledged events held and pushed to browsers
    events: int = 2000  # recent events remembered for acknowledgements and snapshots
    snapshots: int = 200  # event start frames kept in memory (when the service's file is not readable here)
    acks: int = 20000  # acknowledgements kept in memory (the file keeps all)


# ---- checking what comes off the bus -------------------------------------------------------------
def _number(value: Any) -> float | None:
    """A finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def safe_float(value: Any, default: float = 0.0) -> float:
    got = _number(value)
    return default if got is None else got


EVENT_TEXT = ("id", "camera", "rule", "type", "zone", "line", "severity", "state", "run", "snapshot")
EVENT_NUMBERS = ("started", "since", "updated", "ended", "duration", "peak", "count", "seq")
EVENT_STATES = ("open", "ended")


def check_event(raw: Any) -> dict[str, Any]:
    """The event map as the console keeps it (docs/protocol.md), or ProtocolError naming the bad field.

    Only known keys are kept (an attacker's extra keys cost nothing); strings
    are kept as they are, to be shown as text; numbers must be numbers.
    """
    if not isinstance(raw, dict):
        raise wire.ProtocolError("malformed", "an event is not a map")
    out: dict[str, Any] = {}
    for key in EVENT_TEXT:
        value = raw.get(key)
        if value is None:
            value = ""
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise wire.ProtocolError(
                "malformed", f"event field {key!r} is not a string of at most {MAX_TEXT}"
            )
        out[key] = value
    for key in EVENT_NUMBERS:
        value = raw.get(key)
        if value is not None and _number(value) is None:
            raise wire.ProtocolError("malformed", f"event field {key!r} is not a number")
        out[key] = value
    tracks = raw.get("tracks") or []
    if not isinstance(tracks, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in tracks
    ):
        raise wire.ProtocolError("malformed", "event field 'tracks' is not a list of ints")
    out["tracks"] = tracks[:MAX_EVENT_TRACKS]
    if not out["id"]:
        raise wire.ProtocolError("malformed", "event without an id")
    if out["state"] not in EVENT_STATES:
        raise wire.ProtocolError("malformed", f"event state {out['state'][:20]!r} is not open or ended")
    for key in ("ack", "clip"):  # history answers add these (docs/protocol.md); kept only when maps
        if isinstance(raw.get(key), dict):
            out[key] = {
                str(k)[:64]: v
                for k, v in list(raw[key].items())[:20]
                if isinstance(v, (str, int, float, bool)) or v is None
            }
    return out


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TRACK_NAMES:
        raise wire.ProtocolError(
            "malformed", f"track zones/rules must be a list of at most {MAX_TRACK_NAMES} names"
        )
    if not all(isinstance(v, str) and len(v) <= 64 for v in value):
        raise wire.ProtocolError("malformed", "track zones/rules must be names (strings of at most 64)")
    return list(value)


@dataclass
class TrackFrame:
    """The safety service's tracks for one processed result (trk/<camera>/, RULES.md / docs/protocol.md)."""

    camera: str
    run: str
    seq: int
    t_capture: float
    tracks: list[dict[str, Any]]
    received: float = field(default_factory=time.monotonic)


def parse_tracks_message(frames: list[bytes]) -> TrackFrame:
    """[trk/CAM/, {"kind": "tracks", ...}] -> TrackFrame; ProtocolError names what is wrong."""
    if len(frames) != 2:
        raise wire.ProtocolError("malformed", f"{len(frames)} part(s) where [topic, tracks] was expected")
    msg = wire.unpack(frames[1], "tracks")
    camera = wire.check_camera_id(msg.get("camera"))
    run, seq, t_capture = msg.get("run"), msg.get("seq"), _number(msg.get("t_capture"))
    if (
        not isinstance(run, str)
        or len(run) > 64
        or not isinstance(seq, int)
        or isinstance(seq, bool)
        or t_capture is None
    ):
        raise wire.ProtocolError("malformed", "tracks without run (str), seq (int) and t_capture (float)")
    raw = msg.get("tracks")
    if not isinstance(raw, list) or len(raw) > MAX_TRACKS:
        raise wire.ProtocolError("malformed", f"tracks must be a list of at most {MAX_TRACKS}")
    tracks = []
    for t in raw:
        if not isinstance(t, dict):
            raise wire.ProtocolError("malformed", "a track is not a map")
        box = t.get("box")
        if not (isinstance(box, list) and len(box) == 4 and all(_number(v) is not None for v in box)):
            raise wire.ProtocolError("malformed", "a track's box is not [x1, y1, x2, y2]")
        tid = t.get("id")
        if not isinstance(tid, int) or isinstance(tid, bool):
            raise wire.ProtocolError("malformed", "a track's id is not an int")
        tracks.append(
            {
                "id": tid,
                "box": [round(float(v), 1) for v in box],
                "zones": _names(t.get("zones", [])),
                "rules": _names(t.get("rules", [])),
                "confirmed": t.get("confirmed") is True,
            }
        )
    return TrackFrame(camera, run, seq, t_capture, tracks)


@dataclass
class Frame:
    """The newest picture of one camera with its detections, ready to send to browsers."""

    camera: str
    meta: dict[str, Any]  # camera, run, seq, t_capture, width, height, worker, model, detections
    jpeg: bytes
    received: float  # time.time() at arrival

    @property
    def people(self) -> int:
        return sum(1 for d in self.meta["detections"] if d["class"] == "person")


@dataclass
class Ack:
    event: str
    by: str
    at: float
    note: str = ""


@dataclass
class CameraFeed:
    frame: Frame | None = None
    version: int = 0  # bumped on every new frame; clients compare it with what they sent
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))  # time.monotonic()
    tracks: deque[TrackFrame] = field(default_factory=lambda: deque(maxlen=TRACKS_KEPT))

    def fps(self, now: float) -> float:
        """Frames per second this viewer received lately (what the operator actually sees)."""
        recent = [t for t in self.arrivals if now - t <= FPS_WINDOW]
        return (
            round((len(recent) - 1) / (recent[-1] - recent[0]), 1)
            if len(recent) > 1 and recent[-1] > recent[0]
            else 0.0
        )

    def last_heard(self) -> float:
        heard = [self.arrivals[-1]] if self.arrivals else []
        heard += [self.tracks[-1].received] if self.tracks else []
        return max(heard, default=0.0)

    def tracks_for(self, meta: dict[str, Any], now: float) -> list[dict[str, Any]] | None:
        """The safety service's tracks to draw on this frame, or None (draw the model's boxes).

        The same (run, seq) when it has arrived; else the newest tracks captured
        at most TRACKS_MATCH before the frame; None when the service has not
        published for this camera lately.
        """
        if not self.tracks or now - self.tracks[-1].received > TRACKS_FRESH:
            return None
        best = None
        for tf in self.tracks:
            if tf.run == meta["run"] and tf.seq == meta["seq"]:
                return tf.tracks
            if 0 <= meta["t_capture"] - tf.t_capture <= TRACKS_MATCH and (
                best is None or tf.t_capture > best.t_capture
            ):
                best = tf
        # No tracks close enough: the model's boxes; the exact tracks follow as a redraw (viewer/live.py).
        return best.tracks if best is not None else None


def parse_detections(raw: Any) -> list[dict[str, Any]]:
    """Detections as the browser draws them; a track id is passed on when a producer adds one."""
    if not isinstance(raw, list):
        raise wire.ProtocolError("malformed", "result has no detections list")
    out = []
    for d in raw:
        det = wire.Detection.from_dict(d)
        item = det.to_dict()
        track = d.get("track", d.get("track_id"))
        if isinstance(track, int) and not isinstance(track, bool):
            item["track"] = track
        out.append(item)
    return out


def parse_image_message(frames: list[bytes]) -> Frame:
    """[img/CAM/, result, jpeg] -> Frame; raises ProtocolError naming what is wrong."""
    if len(frames) != 3:
        raise wire.ProtocolError(
            "malformed", f"{len(frames)} part(s) where [topic, result, jpeg] was expected"
        )
    header = wire.unpack(frames[1], wire.RESULT)
    detections = parse_detections(header.pop("detections", None))
    f = wire.FrameHeader.from_map(header)
    if not frames[2].startswith(b"\xff\xd8"):
        raise wire.ProtocolError("not_jpeg", f"camera {f.camera}: picture is not a JPEG")
    imaging.check_jpeg(frames[2])  # the browser decodes it: refuse a picture that claims 12000x12000
    meta = {
        "camera": f.camera,
        "run": f.run,
        "seq": f.seq,
        "t_capture": f.t_capture,
        "width": f.width,
        "height": f.height,
        "worker": str(header.get("worker", ""))[:MAX_TEXT],
        "model": str(header.get("model", ""))[:MAX_TEXT],
        "detections": detections,
    }
    return Frame(f.camera, meta, frames[2], time.time())


def _evict_order(event: dict[str, Any], acked: bool) -> tuple[int, float]:
    """Which alarm leaves first at the cap: acknowledged and ended, then ended, then acknowledged, then oldest."""
    rank = (0 if acked else 2) + (0 if event.get("state") == "ended" else 1)
    return rank, safe_float(event.get("started"))


class ConsoleState:
    def __init__(
        self, acks_path: Path | None = None, limits: Limits | None = None, drops: DropCounter | None = None
    ) -> None:
        self.limits = limits or Limits()
        self.drops = drops or DropCounter(log)
        self.feeds: dict[str, CameraFeed] = {}
        self.gate = FreshnessGate(max_cameras=self.limits.cameras)
        self.status: dict[str, Any] = {}
        self.status_received = 0.0  # time.monotonic() of the newest snapshot
        self.alarms: dict[str, dict[str, Any]] = {}  # event id -> event, open or not yet acknowledged
        self.events: OrderedDict[str, dict[str, Any]] = OrderedDict()  # recent events seen, for snapshots
        self.snapshots: OrderedDict[str, bytes] = OrderedDict()  # event id -> start frame JPEG
        self.acks: OrderedDict[str, Ack] = OrderedDict()
        self._acks_path = acks_path
        self._load_acks()

    # ---- frames and tracks --------------------------------------------------------------
    def _feed(self, camera: str) -> CameraFeed | None:
        """The camera's feed, made if there is room (an idle camera gives its slot up); None at the cap."""
        feed = self.feeds.get(camera)
        if feed is not None:
            return feed
        if len(self.feeds) >= self.limits.cameras:
            now = time.monotonic()
            idle = min(self.feeds, key=lambda c: self.feeds[c].last_heard())
            if now - self.feeds[idle].last_heard() < FEED_IDLE:
                self.drops.drop("cap_cameras", f"more than {self.limits.cameras} cameras (--max-cameras)")
                return None
            del self.feeds[idle]
            self.gate.forget(idle)
        feed = self.feeds[camera] = CameraFeed()
        return feed

    def add_frame(self, frame: Frame) -> str:
        """NEWER when kept; else why not: STALE or IMPLAUSIBLE (the freshness rule; counted by the caller)
        or CAPPED (no room for another camera; counted here)."""
        header = wire.FrameHeader(
            frame.camera,
            frame.meta["run"],
            frame.meta["seq"],
            frame.meta["t_capture"],
            frame.meta["width"],
            frame.meta["height"],
            len(frame.jpeg),
        )
        feed = self._feed(frame.camera)
        if feed is None:
            return CAPPED
        verdict = self.gate.verdict(header)
        if verdict != NEWER:
            return verdict
        feed.frame = frame
        feed.version += 1
        feed.latencies.append(max(0.0, frame.received - frame.meta["t_capture"]) * 1000.0)
        feed.arrivals.append(time.monotonic())
        return NEWER

    def add_tracks(self, tracks: TrackFrame) -> bool:
        """Keep the safety service's track state of one result; False when the camera has no room."""
        feed = self._feed(tracks.camera)
        if feed is None:
            return False
        feed.tracks.append(tracks)
        return True

    def frame_meta(self, camera: str) -> dict[str, Any] | None:
        """What the browser gets with the newest frame: its metadata, plus the track state to draw, if any."""
        feed = self.feeds.get(camera)
        if feed is None or feed.frame is None:
            return None
        meta = {**feed.frame.meta, "received": feed.frame.received}
        tracks = feed.tracks_for(feed.frame.meta, time.monotonic())
        if tracks is not None:
            meta["tracks"] = tracks
        return meta

    # ---- broker status ------------------------------------------------------------------
    def set_status(self, status: dict[str, Any]) -> None:
        """Keep the broker's snapshot; camera entries that are not maps under a valid id are dropped, and
        cameras past the cap are cut (both counted)."""
        cams = status.get("cameras")
        kept: dict[str, Any] = {}
        if isinstance(cams, dict):
            bad = 0
            for cam in sorted(k for k in cams if isinstance(k, str)):
                if not wire.CAMERA_ID.match(cam) or not isinstance(cams[cam], dict):
                    bad += 1
                elif len(kept) < self.limits.cameras:
                    kept[cam] = cams[cam]
            if bad:
                self.drops.drop("bad_camera_id", "status lists cameras with invalid ids", n=bad)
            if len(cams) - bad > len(kept):
                self.drops.drop(
                    "cap_cameras",
                    f"status lists more than {self.limits.cameras} cameras (--max-cameras)",
                    n=len(cams) - bad - len(kept),
                )
        self.status = {**status, "cameras": kept}
        self.status_received = time.monotonic()

    def broker_online(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return bool(self.status) and now - self.status_received < STATUS_SILENCE

    def camera_ids(self) -> list[str]:
        return sorted(set(self.status.get("cameras", {})) | set(self.feeds))[: self.limits.cameras]

    def cameras(self, now: float | None = None) -> list[dict[str, Any]]:
        """Per camera: online, fps, latency, people; the union of what the broker and the bus know."""
        now = time.monotonic() if now is None else now
        broker_up = self.broker_online(now)
        since_status = now - self.status_received
        listed = self.status.get("cameras", {})
        open_cams = {a.get("camera") for a in self.alarms.values() if a.get("state") == "open"}
        out = []
        for cam in self.camera_ids():
            st = listed.get(cam, {})
            feed = self.feeds.get(cam, CameraFeed())
            fps = safe_float(st.get("capture_fps"))
            silence = max(FRAME_SILENCE, 3.0 / fps) if fps > 0 else FRAME_SILENCE
            last = _number(st.get("last_frame_s"))
            quiet = last is None or last + since_status > silence
            online = broker_up and st.get("online") is True and not quiet
            frame = feed.frame
            out.append(
                {
                    "camera": cam,
                    "online": online,
                    "state": (st.get("state") if isinstance(st.get("state"), str) else "unknown")
                    if broker_up
                    else "offline",
                    "error": st.get("error") if isinstance(st.get("error"), str) else "",
                    "fps": feed.fps(now),
                    "fps_in": safe_float(st.get("fps_in")),
                    "fps_out": safe_float(st.get("fps_out")),
                    "latency_ms": round(statistics.median(feed.latencies), 1) if feed.latencies else None,
                    "people": frame.people if frame else 0,
                    "width": frame.meta["width"] if frame else 0,
                    "height": frame.meta["height"] if frame else 0,
                    "alarm": cam in open_cams,
                    "tracks": bool(feed.tracks) and now - feed.tracks[-1].received <= TRACKS_FRESH,
                }
            )
        return out

    # ---- events, alarms, acknowledgements ------------------------------------------------
    def add_event(self, transition: str, raw: Any) -> None:
        event = check_event(raw)
        eid = event["id"]
        self.remember(event)
        if transition == "start":
            feed = self.feeds.get(event["camera"])
            if feed is not None and feed.frame is not None:
                self.snapshots[eid] = feed.frame.jpeg
                while len(self.snapshots) > self.limits.snapshots:
                    self.snapshots.popitem(last=False)
        if event["state"] == "ended" and eid in self.acks:
            self.alarms.pop(eid, None)  # handled and over: off the active list
            return
        if eid not in self.alarms and len(self.alarms) >= self.limits.alarms:
            out = min(self.alarms, key=lambda k: _evict_order(self.alarms[k], k in self.acks))
            del self.alarms[out]
            self.drops.drop(
                "cap_alarms",
                f"more than {self.limits.alarms} alarms held (--max-alarms); "
                "the oldest handled ones leave first",
            )
        self.alarms[eid] = event

    def remember(self, event: dict[str, Any]) -> None:
        """Keep a checked event among the recent ones (for acknowledgements and snapshots)."""
        self.events[event["id"]] = event
        self.events.move_to_end(event["id"])
        while len(self.events) > self.limits.events:
            self.events.popitem(last=False)

    def remember_history(self, events: list[dict[str, Any]]) -> None:
        """Events from the safety service's history (checked like those from the bus; bad ones counted)."""
        for raw in events:
            try:
                self.remember(check_event(raw))
            except wire.ProtocolError as exc:
                self.drops.drop("malformed", f"history event: {exc}")

    def acknowledge(self, event_id: str, by: str, note: str = "") -> Ack:
        if event_id not in self.alarms and event_id not in self.events:
            raise KeyError(event_id)
        ack = self.acks.get(event_id)
        if ack is None:  # the first acknowledgement is the one recorded
            ack = self._keep_ack(Ack(event_id, by, time.time(), note))
            self._save_ack(ack)
        ev = self.alarms.get(event_id)
        if ev is not None and ev.get("state") == "ended":
            self.alarms.pop(event_id)
        return ack

    def _keep_ack(self, ack: Ack) -> Ack:
        self.acks[ack.event] = ack
        while len(self.acks) > self.limits.acks:
            self.acks.popitem(last=False)
        return ack

    def with_ack(self, event: dict[str, Any]) -> dict[str, Any]:
        stored = event.get("ack") if isinstance(event.get("ack"), dict) else None
        ack = self.acks.get(str(event.get("id")))
        if stored is not None or ack is None:  # the safety store's record (outcome, response time) wins
            return {**event, "ack": stored}
        return {**event, "ack": asdict(ack)}

    def alarm_list(self) -> list[dict[str, Any]]:
        return [
            self.with_ack(e)
            for e in sorted(self.alarms.values(), key=lambda e: -safe_float(e.get("started")))
        ]

    def _load_acks(self) -> None:
        if self._acks_path is None or not self._acks_path.exists():
            return
        for line in self._acks_path.read_text(encoding="utf-8").splitlines():
            try:
                a = json.loads(line)
                self._keep_ack(Ack(str(a["event"]), str(a["by"]), float(a["at"]), str(a.get("note", ""))))
            except (ValueError, KeyError, TypeError):
                continue  # one bad line must not lose the others

    def _save_ack(self, ack: Ack) -> None:
        if self._acks_path is None:
            return
        self._acks_path.parent.mkdir(parents=True, exist_ok=True)
        with self._acks_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(ack), ensure_ascii=False) + "\n")
