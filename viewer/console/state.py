"""What the console knows: the newest frame per camera, broker health, alarms, track state and acknowledgements.

Pure data and logic, no event loop and no sockets (viewer/console/bus.py
feeds it, the routes serve it), so it is tested without a network. Freshness
holds here as everywhere: one frame per camera, replaced, never queued.

Everything here comes off the bus, where any device on the site network can
publish. It arrives already decoded by the protocol's typed decoders
(protocol/messages.py through protocol/client.py: every field's type and range
checked, a bad message counted and dropped before it gets here), so nothing
here reads a raw field. Strings stay strings (the page shows them as text),
and every collection keyed by an id from the wire has a cap (``Limits``),
counted when hit.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anjeon.protocol.client import Event, Picture, Status, StatusCamera, Tracks
from anjeon.protocol.freshness import NEWER, FreshnessGate
from anjeon.protocol.stats import DropCounter

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
KEPT_EXTRAS = ("ack", "clip")  # extra keys of an event kept (history answers add them), as small maps
MAX_EXTRA_ENTRIES = 20  # entries kept of each
CAPPED = "capped"  # add_frame: no room for another camera (counted as cap_cameras)


@dataclass(frozen=True)
class Limits:
    """Caps on state keyed by ids off the wire (docs/console.md; --max-cameras, --max-alarms)."""

    cameras: int = 1024  # feeds, per-camera state, cameras listed from the broker's status
    alarms: int = 500  # open or unacknowledged events held and pushed to browsers
    events: int = 2000  # recent events remembered for acknowledgements and snapshots
    snapshots: int = 200  # event start frames kept in memory (when the service's file is not readable here)
    acks: int = 20000  # acknowledgements kept in memory (the file keeps all)


@dataclass
class TrackFrame:
    """The safety service's tracks for one processed result (trk/<camera>/, docs/protocol.md), as drawn."""

    message: Tracks
    tracks: list[dict[str, Any]]  # what the browser draws (boxes rounded to 0.1 px)
    received: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, message: Tracks) -> TrackFrame:
        return cls(
            message,
            [
                {
                    "id": t.id,
                    "box": [round(v, 1) for v in t.box],
                    "zones": list(t.zones),
                    "rules": list(t.rules),
                    "confirmed": t.confirmed,
                }
                for t in message.tracks
            ],
        )

    @property
    def camera(self) -> str:
        return self.message.camera

    @property
    def run(self) -> str:
        return self.message.run

    @property
    def seq(self) -> int:
        return self.message.seq

    @property
    def t_capture(self) -> float:
        return self.message.t_capture


@dataclass
class Frame:
    """The newest picture of one camera with its detections, ready to send to browsers."""

    picture: Picture
    received: float  # time.time() at arrival
    meta: dict[str, Any] = field(init=False)  # what the browser gets with the JPEG (docs/console.md)

    def __post_init__(self) -> None:
        r, f = self.picture.result, self.picture.frame
        self.meta = {
            "camera": f.camera,
            "run": f.run,
            "seq": f.seq,
            "t_capture": f.t_capture,
            "width": f.width,
            "height": f.height,
            "worker": r.worker,
            "model": r.model,
            "detections": [d.to_dict() for d in r.detections],
        }

    @property
    def camera(self) -> str:
        return self.picture.camera

    @property
    def jpeg(self) -> bytes:
        return self.picture.jpeg

    @property
    def people(self) -> int:
        return sum(1 for d in self.picture.result.detections if d.cls == "person")


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

    def tracks_for(self, frame: Frame, now: float) -> list[dict[str, Any]] | None:
        """The safety service's tracks to draw on this frame, or None (draw the model's boxes).

        The same (run, seq) when it has arrived; else the newest tracks captured
        at most TRACKS_MATCH before the frame; None when the service has not
        published for this camera lately.
        """
        if not self.tracks or now - self.tracks[-1].received > TRACKS_FRESH:
            return None
        f = frame.picture.frame
        best = None
        for tf in self.tracks:
            if tf.run == f.run and tf.seq == f.seq:
                return tf.tracks
            if 0 <= f.t_capture - tf.t_capture <= TRACKS_MATCH and (
                best is None or tf.t_capture > best.t_capture
            ):
                best = tf
        # No tracks close enough: the model's boxes; the exact tracks follow as a redraw (live.py).
        return best.tracks if best is not None else None


def event_map(event: Event) -> dict[str, Any]:
    """An event as the console keeps and shows it: every field of the event map, and of the extra keys a
    history answer adds only ``ack`` and ``clip``, as small maps of plain values (an attacker's extra keys
    cost nothing)."""
    out: dict[str, Any] = event.to_dict()
    for key in list(event.extra):
        del out[key]
    for key in KEPT_EXTRAS:
        value = event.extra.get(key)
        if isinstance(value, dict):
            out[key] = {
                str(k)[:64]: v
                for k, v in list(value.items())[:MAX_EXTRA_ENTRIES]
                if isinstance(v, (str, int, float, bool)) or v is None
            }
    return out


def _evict_order(event: Event, acked: bool) -> tuple[int, float]:
    """Which alarm leaves first at the cap: acknowledged and ended, then ended, then acknowledged, then oldest."""
    rank = (0 if acked else 2) + (0 if event.state == "ended" else 1)
    return rank, event.started


class ConsoleState:
    def __init__(
        self, acks_path: Path | None = None, limits: Limits | None = None, drops: DropCounter | None = None
    ) -> None:
        self.limits = limits or Limits()
        self.drops = drops or DropCounter(log)
        self.feeds: dict[str, CameraFeed] = {}
        self.gate = FreshnessGate(max_cameras=self.limits.cameras)
        self.status: dict[str, Any] = {}  # the broker's newest snapshot (checked map form), cameras capped
        self.status_cameras: dict[str, StatusCamera] = {}  # the same cameras, typed
        self.broker: Status | None = None  # the same snapshot, typed
        self.status_received = 0.0  # time.monotonic() of the newest snapshot
        self.alarms: dict[str, Event] = {}  # event id -> event, open or not yet acknowledged
        self.events: OrderedDict[str, Event] = OrderedDict()  # recent events seen, for snapshots
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
        feed = self._feed(frame.camera)
        if feed is None:
            return CAPPED
        header = frame.picture.frame
        verdict = self.gate.admit_frame(header)
        if verdict != NEWER:
            return verdict
        feed.frame = frame
        feed.version += 1
        feed.latencies.append(max(0.0, frame.received - header.t_capture) * 1000.0)
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
        tracks = feed.tracks_for(feed.frame, time.monotonic())
        if tracks is not None:
            meta["tracks"] = tracks
        return meta

    # ---- broker status ------------------------------------------------------------------
    def set_status(self, status: Status) -> None:
        """Keep the broker's snapshot; cameras past the cap are cut (counted)."""
        kept = sorted(status.cameras)[: self.limits.cameras]
        if len(status.cameras) > len(kept):
            self.drops.drop(
                "cap_cameras",
                f"status lists more than {self.limits.cameras} cameras (--max-cameras)",
                n=len(status.cameras) - len(kept),
            )
        listed = status.snapshot.get("cameras", {})
        self.status = {**status.snapshot, "cameras": {cam: listed[cam] for cam in kept}}
        self.status_cameras = {cam: status.cameras[cam] for cam in kept}
        self.broker = status
        self.status_received = time.monotonic()

    def broker_online(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return bool(self.status) and now - self.status_received < STATUS_SILENCE

    def camera_ids(self) -> list[str]:
        return sorted(set(self.status_cameras) | set(self.feeds))[: self.limits.cameras]

    def cameras(self, now: float | None = None) -> list[dict[str, Any]]:
        """Per camera: online, fps, latency, people; the union of what the broker and the bus know."""
        now = time.monotonic() if now is None else now
        broker_up = self.broker_online(now)
        since_status = now - self.status_received
        open_cams = {a.camera for a in self.alarms.values() if a.state == "open"}
        out = []
        for cam in self.camera_ids():
            st = self.status_cameras.get(cam)
            feed = self.feeds.get(cam, CameraFeed())
            fps = st.capture_fps if st else 0.0
            silence = max(FRAME_SILENCE, 3.0 / fps) if fps > 0 else FRAME_SILENCE
            last = st.last_frame_s if st else None
            quiet = last is None or last + since_status > silence
            online = broker_up and st is not None and st.online and not quiet
            frame = feed.frame
            out.append(
                {
                    "camera": cam,
                    "online": online,
                    "state": (st.state if st else "unknown") if broker_up else "offline",
                    "error": st.error if st else "",
                    "fps": feed.fps(now),
                    "fps_in": st.fps_in if st else 0.0,
                    "fps_out": st.fps_out if st else 0.0,
                    "latency_ms": round(statistics.median(feed.latencies), 1) if feed.latencies else None,
                    "people": frame.people if frame else 0,
                    "width": frame.picture.frame.width if frame else 0,
                    "height": frame.picture.frame.height if frame else 0,
                    "alarm": cam in open_cams,
                    "tracks": bool(feed.tracks) and now - feed.tracks[-1].received <= TRACKS_FRESH,
                }
            )
        return out

    # ---- events, alarms, acknowledgements ------------------------------------------------
    def add_event(self, transition: str, event: Event) -> None:
        eid = event.id
        self.remember(event)
        if transition == "start":
            feed = self.feeds.get(event.camera)
            if feed is not None and feed.frame is not None:
                self.snapshots[eid] = feed.frame.jpeg
                while len(self.snapshots) > self.limits.snapshots:
                    self.snapshots.popitem(last=False)
        if event.state == "ended" and eid in self.acks:
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

    def remember(self, event: Event) -> None:
        """Keep an event among the recent ones (for acknowledgements and snapshots)."""
        self.events[event.id] = event
        self.events.move_to_end(event.id)
        while len(self.events) > self.limits.events:
            self.events.popitem(last=False)

    def acknowledge(self, event_id: str, by: str, note: str = "") -> Ack:
        if event_id not in self.alarms and event_id not in self.events:
            raise KeyError(event_id)
        ack = self.acks.get(event_id)
        if ack is None:  # the first acknowledgement is the one recorded
            ack = self._keep_ack(Ack(event_id, by, time.time(), note))
            self._save_ack(ack)
        ev = self.alarms.get(event_id)
        if ev is not None and ev.state == "ended":
            self.alarms.pop(event_id)
        return ack

    def _keep_ack(self, ack: Ack) -> Ack:
        self.acks[ack.event] = ack
        while len(self.acks) > self.limits.acks:
            self.acks.popitem(last=False)
        return ack

    def with_ack(self, event: Event) -> dict[str, Any]:
        """The event as the API and the page show it, with its acknowledgement: the safety store's record
        (outcome, response time) when the history sent one, else this viewer's own, else null."""
        out = event_map(event)
        stored = out.get("ack")
        ack = self.acks.get(event.id)
        if stored is not None or ack is None:
            return {**out, "ack": stored}
        return {**out, "ack": asdict(ack)}

    def alarm_list(self) -> list[dict[str, Any]]:
        return [self.with_ack(e) for e in sorted(self.alarms.values(), key=lambda e: -e.started)]

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
