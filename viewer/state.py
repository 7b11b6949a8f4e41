"""What the console knows: the newest frame per camera, broker health, alarms and acknowledgements.

Pure data and logic, no event loop and no sockets (viewer/bus.py feeds it,
viewer/app.py serves it), so it is tested without a network. Freshness holds
here as everywhere: one frame per camera, replaced, never queued.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anjeon.protocol import imaging, wire

from .freshness import FreshnessGate

LATENCY_WINDOW = 50  # frames per camera behind the latency median
# A camera counts as offline when the broker has had no frame from it for this long (or
# 3 frame intervals for slow cameras); with status once a second that marks it within ~3 s.
FRAME_SILENCE = 2.0
STATUS_SILENCE = 3.0  # no status snapshot for this long: the broker is gone, every camera offline
FPS_WINDOW = 3.0  # seconds of arrivals behind the fps figure
SNAPSHOT_CACHE = 200  # event start frames kept in memory for events whose snapshot file is not readable here


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

    def fps(self, now: float) -> float:
        """Frames per second this viewer received lately (what the operator actually sees)."""
        recent = [t for t in self.arrivals if now - t <= FPS_WINDOW]
        return round((len(recent) - 1) / (recent[-1] - recent[0]), 1) if len(recent) > 1 and recent[-1] > recent[0] else 0.0


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
        raise wire.ProtocolError("malformed", f"{len(frames)} part(s) where [topic, result, jpeg] was expected")
    header = wire.unpack(frames[1], wire.RESULT)
    detections = parse_detections(header.pop("detections", None))
    f = wire.FrameHeader.from_map(header)
    if not frames[2].startswith(b"\xff\xd8"):
        raise wire.ProtocolError("not_jpeg", f"camera {f.camera}: picture is not a JPEG")
    imaging.check_jpeg(frames[2])  # the browser decodes it: refuse a picture that claims 12000x12000
    meta = {"camera": f.camera, "run": f.run, "seq": f.seq, "t_capture": f.t_capture, "width": f.width,
            "height": f.height, "worker": str(header.get("worker", "")), "model": str(header.get("model", "")),
            "detections": detections}
    return Frame(f.camera, meta, frames[2], time.time())


class ConsoleState:
    def __init__(self, acks_path: Path | None = None) -> None:
        self.feeds: dict[str, CameraFeed] = {}
        self.gate = FreshnessGate()
        self.status: dict[str, Any] = {}
        self.status_received = 0.0  # time.monotonic() of the newest snapshot
        self.alarms: dict[str, dict[str, Any]] = {}  # event id -> event, open or not yet acknowledged
        self.events: OrderedDict[str, dict[str, Any]] = OrderedDict()  # recent events seen, for snapshots
        self.snapshots: OrderedDict[str, bytes] = OrderedDict()  # event id -> start frame JPEG
        self.acks: dict[str, Ack] = {}
        self._acks_path = acks_path
        self._load_acks()

    # ---- frames -------------------------------------------------------------------------
    def add_frame(self, frame: Frame) -> bool:
        """Keep it if it is newer than the one held; False for a stale one (counted by the caller)."""
        header = wire.FrameHeader(frame.camera, frame.meta["run"], frame.meta["seq"], frame.meta["t_capture"],
                                  frame.meta["width"], frame.meta["height"], len(frame.jpeg))
        if not self.gate.admit(header):
            return False
        feed = self.feeds.setdefault(frame.camera, CameraFeed())
        feed.frame = frame
        feed.version += 1
        feed.latencies.append(max(0.0, frame.received - frame.meta["t_capture"]) * 1000.0)
        feed.arrivals.append(time.monotonic())
        return True

    # ---- broker status ------------------------------------------------------------------
    def set_status(self, status: dict[str, Any]) -> None:
        self.status = status
        self.status_received = time.monotonic()

    def broker_online(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return bool(self.status) and now - self.status_received < STATUS_SILENCE

    def cameras(self, now: float | None = None) -> list[dict[str, Any]]:
        """Per camera: online, fps, latency, people; the union of what the broker and the bus know."""
        now = time.monotonic() if now is None else now
        broker_up = self.broker_online(now)
        since_status = now - self.status_received
        listed = self.status.get("cameras", {}) if isinstance(self.status.get("cameras"), dict) else {}
        out = []
        for cam in sorted(set(listed) | set(self.feeds)):
            st = listed.get(cam, {}) if isinstance(listed.get(cam), dict) else {}
            feed = self.feeds.get(cam, CameraFeed())
            fps = float(st.get("capture_fps") or 0.0)
            silence = max(FRAME_SILENCE, 3.0 / fps) if fps > 0 else FRAME_SILENCE
            last = st.get("last_frame_s")
            quiet = last is None or float(last) + since_status > silence
            online = broker_up and bool(st.get("online")) and not quiet
            frame = feed.frame
            out.append({
                "camera": cam, "online": online, "state": st.get("state", "unknown") if broker_up else "offline",
                "error": st.get("error", ""), "fps": feed.fps(now), "fps_in": st.get("fps_in", 0.0),
                "fps_out": st.get("fps_out", 0.0),
                "latency_ms": round(statistics.median(feed.latencies), 1) if feed.latencies else None,
                "people": frame.people if frame else 0, "width": frame.meta["width"] if frame else 0,
                "height": frame.meta["height"] if frame else 0,
                "alarm": any(a["camera"] == cam and a["state"] == "open" for a in self.alarms.values()),
            })
        return out

    # ---- events, alarms, acknowledgements ------------------------------------------------
    def add_event(self, transition: str, event: dict[str, Any]) -> None:
        eid = str(event.get("id", ""))
        if not eid:
            raise wire.ProtocolError("malformed", "event without an id")
        self._remember(event)
        if transition == "start":
            feed = self.feeds.get(str(event.get("camera")))
            if feed is not None and feed.frame is not None:
                self.snapshots[eid] = feed.frame.jpeg
                while len(self.snapshots) > SNAPSHOT_CACHE:
                    self.snapshots.popitem(last=False)
        if event.get("state") == "ended" and eid in self.acks:
            self.alarms.pop(eid, None)  # handled and over: off the active list
        else:
            self.alarms[eid] = event

    def _remember(self, event: dict[str, Any]) -> None:
        self.events[str(event["id"])] = event
        self.events.move_to_end(str(event["id"]))
        while len(self.events) > 2000:
            self.events.popitem(last=False)

    def remember_history(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            if isinstance(ev, dict) and ev.get("id"):
                self._remember(ev)

    def acknowledge(self, event_id: str, by: str, note: str = "") -> Ack:
        if event_id not in self.alarms and event_id not in self.events:
            raise KeyError(event_id)
        ack = self.acks.get(event_id)
        if ack is None:  # the first acknowledgement is the one recorded
            ack = self.acks[event_id] = Ack(event_id, by, time.time(), note)
            self._save_ack(ack)
        ev = self.alarms.get(event_id)
        if ev is not None and ev.get("state") == "ended":
            self.alarms.pop(event_id)
        return ack

    def with_ack(self, event: dict[str, Any]) -> dict[str, Any]:
        stored = event.get("ack") if isinstance(event.get("ack"), dict) else None
        ack = self.acks.get(str(event.get("id")))
        if stored is not None or ack is None:  # the safety store's record (outcome, response time) wins
            return {**event, "ack": stored}
        return {**event, "ack": asdict(ack)}

    def alarm_list(self) -> list[dict[str, Any]]:
        return [self.with_ack(e) for e in sorted(self.alarms.values(), key=lambda e: -float(e.get("started") or 0))]

    def _load_acks(self) -> None:
        if self._acks_path is None or not self._acks_path.exists():
            return
        for line in self._acks_path.read_text(encoding="utf-8").splitlines():
            try:
                a = json.loads(line)
                self.acks[a["event"]] = Ack(str(a["event"]), str(a["by"]), float(a["at"]), str(a.get("note", "")))
            except (ValueError, KeyError, TypeError):
                continue  # one bad line must not lose the others

    def _save_ack(self, ack: Ack) -> None:
        if self._acks_path is None:
            return
        self._acks_path.parent.mkdir(parents=True, exist_ok=True)
        with self._acks_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(ack), ensure_ascii=False) + "\n")
