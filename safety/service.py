"""`anjeon safety`: subscribe to pictures and detections, run the rules, store, publish and alert.

Sockets (the protocol's client library, anjeon.protocol.client):
  SUB    <- broker results-out: img/CAM/ for each configured camera (``client.Subscriber`` of
            PICTURES: detections + the exact JPEG, which becomes the event's snapshot).
  PUB    -> broker results-in: evt/CAM/ event transitions (see bus.py) and trk/CAM/ track state
            (``client.Publisher``).
  ROUTER    bound on --history-bind (loopback by default): history, acks, clips, on its own thread
            (safety/history.py) with its own SQLite connections, never on the rules' thread.
  DEALER -> broker control: heartbeats (role "safety"), like every process.

Order of work for a transition: snapshot written, event committed to SQLite,
then published and handed to the alert sinks, so no alert ever points at a
snapshot or event that does not exist yet.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from anjeon.config import ConfigError, load_site_config
from anjeon.config.evidence import RetentionSpec, camera_clip_specs
from anjeon.config.safety import SafetyConfig
from anjeon.protocol import client, messages, metrics, security, wire
from anjeon.protocol.endpoints import BrokerAddress
from anjeon.protocol.heartbeat import HeartbeatClient, default_name
from anjeon.protocol.logs import fields
from anjeon.protocol.stats import DropCounter, RateMeter

from . import bus
from .alerts import Alerts
from .clips import ClipRecorder, fail_unfinished
from .engine import CameraEngine
from .history import HistoryServer
from .incident import Transition
from .observation import Observation
from .rate import CaptureClock
from .reorder import Reorderer
from .report.deliver import ReportScheduler
from .retention import Retention
from .snapshot import write_snapshot
from .store import EventStore
from .tracker import PersonTracker
from .tracks import tracks_message

log = logging.getLogger("anjeon.safety")

REORDER_WINDOW = 0.3  # seconds a result waits for earlier ones from slower workers
IDLE_CHECK = 1.0  # seconds between checks that end events of cameras that went quiet


@dataclass
class SafetyServiceConfig:
    broker: BrokerAddress
    safety: SafetyConfig
    history_bind: str = ""  # default: tcp://127.0.0.1:<broker base port + 5> (loopback)
    name: str = ""
    config_path: Path | None = None  # re-read when it changes (the console's zone editor saves into it)

    @property
    def history_endpoint(self) -> str:
        return (
            self.history_bind
            or f"tcp://{bus.DEFAULT_HISTORY_HOST}:{self.broker.base_port + bus.HISTORY_OFFSET}"
        )

    @property
    def snapshot_dir(self) -> Path:
        return (
            Path(self.safety.snapshots)
            if self.safety.snapshots
            else Path(self.safety.store).parent / "snapshots"
        )

    @property
    def clip_dir(self) -> Path:
        folder = self.safety.clips.folder if self.safety.clips is not None else ""
        return Path(folder) if folder else Path(self.safety.store).parent / "clips"


@dataclass
class _Camera:
    engine: CameraEngine
    reorder: Reorderer[tuple[Observation, bytes]] = field(default_factory=lambda: Reorderer(REORDER_WINDOW))
    clock: CaptureClock = field(
        default_factory=CaptureClock
    )  # capture time <-> our monotonic, for quiet cameras


class SafetyService:
    def __init__(self, config: SafetyServiceConfig, ctx: zmq.Context[Any] | None = None) -> None:
        self.config = config
        self._ctx = ctx or zmq.Context.instance()
        self.proc = wire.new_id()
        self.drops = DropCounter(log)
        self.results = RateMeter()
        self.events = 0
        self.store = EventStore(config.safety.store)
        self.alerts = Alerts(config.safety.alerts, self.drops)
        self.cameras = {
            cam: _Camera(CameraEngine(cam, rules, PersonTracker().update))
            for cam, rules in config.safety.cameras.items()
        }
        self._resume_open_events()
        self.heartbeat = HeartbeatClient(
            self._ctx,
            config.broker,
            self.proc,
            "safety",
            config.name or default_name("safety"),
            self._info,
            log,
        )
        self._pub: client.Publisher | None = None
        self._sub: client.Subscriber[client.Picture] | None = None
        self._config_mtime = self._mtime()
        self.retention = Retention(
            config.safety.retention or RetentionSpec(), self.store.path, config.snapshot_dir, config.clip_dir
        )
        self.history = HistoryServer(
            self._ctx, config.history_endpoint, self.store.path, self.drops, self.retention.report
        )
        if fail_unfinished(self.store):  # clips cut short by a stop are failed, not left "recording"
            log.info("clips left recording by the previous run are marked failed")
        self.clips = ClipRecorder(
            config.clip_dir, self.store.path, camera_clip_specs(config.safety), self._evidence_failed
        )
        reports = (
            config.safety.reports
        )  # scheduled reports (safety/report/deliver.py), None when not configured
        self.reports = (
            ReportScheduler(
                reports,
                self.store.path,
                Path(reports.folder) if reports.folder else self.store.path.parent / "reports",
            )
            if reports is not None
            else None
        )

    def _evidence_failed(self, reason: str, detail: str) -> None:
        """A clip, snapshot or row that could not be written (a full disk): counted, shown in status, never fatal."""
        self.drops.drop(reason, detail)
        self.retention.write_failed(reason, detail)

    def _info(self) -> dict[str, Any]:
        return {
            "drops": self.drops.snapshot(),
            "results": self.results.count,
            "events": self.events,
            "open": sum(len(c.engine.open_events()) for c in self.cameras.values()),
            "alerts": self.alerts.stats(),
            "history": self.history.stats(),
            "clips": self.clips.stats.to_dict(),
            "storage": {
                k: v for k, v in self.retention.report().items() if k in ("write_errors", "last_error")
            },
        }

    def _resume_open_events(self) -> None:
        started = time.monotonic()
        for ev in self.store.open_events():
            cam = self.cameras.get(ev.camera)
            if cam is not None:
                cam.engine.resume([ev])
                # A camera that never sends again: its resumed events end once it has been quiet (our clock)
                # for long enough past their last stored update (its capture time).
                cam.clock.mark(ev.updated, started)
        resumed = sum(len(c.engine.open_events()) for c in self.cameras.values())
        if resumed:
            log.info("resumed %d open event(s) from %s", resumed, self.store.path)

    def _follow_cameras(self) -> None:
        """Subscribe to the pictures of exactly the configured cameras. With none there is no subscriber:
        to the client an empty camera list means every camera."""
        want = set(self.cameras)
        sub = self._sub
        if sub is not None:
            have = set(sub.cameras)
            if want and have:
                for cam in sorted(want - have):  # added first, so the list is never empty in between
                    sub.add_camera(cam)
                for cam in sorted(have - want):
                    sub.remove_camera(cam)
                return
            sub.close()
            self._sub = None
        if want:
            self._sub = client.Subscriber(
                self.config.broker,
                [client.PICTURES],
                cameras=sorted(want),
                rcvhwm=200,
                ctx=self._ctx,
                drops=self.drops,
            )

    def serve(self, stop: threading.Event) -> None:
        cfg = self.config
        self._follow_cameras()
        self._pub = client.Publisher(cfg.broker, sndhwm=1000, ctx=self._ctx, drops=self.drops)
        # CURVE server on the history socket when keys are set (same context as the socket it guards).
        self._guard = security.guard(
            self._ctx, security.host_of(cfg.history_endpoint), "the safety history socket"
        )
        self._guard.secure(self.history.socket, security.HISTORY)
        self.history.start()  # raises RuntimeError naming the address when it cannot bind
        self.clips.start()
        self.retention.start()  # checks at once, then every check_minutes
        if self.reports is not None:
            self.reports.start()
        self.heartbeat.start()
        log.info(
            "safety %s: %d camera(s), %d rule(s), store %s, history on %s",
            self.proc,
            len(self.cameras),
            sum(len(c.engine.rules.rules) for c in self.cameras.values()),
            cfg.safety.store,
            cfg.history_endpoint,
        )
        next_idle = time.monotonic() + IDLE_CHECK
        try:
            while not stop.is_set():
                if self._sub is not None:
                    for picture in self._sub.drain(0.1, 200):  # a burst at most, then look at the rest
                        self._receive(picture)
                    if self._sub.closed:  # the context was terminated under us: a clean exit
                        break
                else:
                    stop.wait(0.1)  # no camera configured (yet): only the config is watched
                self._release(time.monotonic())
                if time.monotonic() >= next_idle:
                    self._end_quiet_cameras()
                    self._reload_if_changed()
                    next_idle = time.monotonic() + IDLE_CHECK
        finally:
            self.heartbeat.stop()
            self.alerts.stop()
            self.history.stop()
            self.clips.stop()
            self.retention.stop()
            if self.reports is not None:
                self.reports.stop()
            self._guard.stop()
            if self._sub is not None:
                self._sub.close()
            self._pub.close()
            self.store.close()
            log.info("safety stopped after %d results, %d event transitions", self.results.count, self.events)

    def _receive(self, picture: client.Picture) -> None:
        cam = self.cameras.get(picture.camera)
        if cam is None:
            return
        f = picture.frame
        metrics.observe_latency(f.camera, f.t_capture, f.ts)
        verdict = cam.reorder.push(
            f.run,
            f.seq,
            f.t_capture,
            (Observation.from_result(picture.result), picture.jpeg),
            time.monotonic(),
        )
        if verdict == "stale":
            self.drops.drop(
                "late", f"camera {f.camera}: a result older than one already evaluated", camera=f.camera
            )
        elif verdict != "newer":
            self.drops.drop(
                verdict,
                f"camera {f.camera}: run/seq/capture time contradict elapsed time (protocol/freshness.py)",
                camera=f.camera,
            )

    def _release(self, now: float) -> None:
        for cam in self.cameras.values():
            for obs, jpeg in cam.reorder.pop_ready(now):
                self.results.add()
                cam.clock.mark(obs.t, now)
                tracked, transitions = cam.engine.process(obs)
                self.clips.offer(obs.camera, tracked, jpeg)  # a bounded append; encoding is on its own thread
                self._publish_tracks(tracked, cam.engine)
                for tr in transitions:
                    self._emit(tr, tracked, jpeg, cam.engine)

    def _publish(self, frames: list[bytes], reason: str, detail: str) -> None:
        """Send on the results bus without blocking; a full queue drops the message (counted as ``reason``)."""
        if self._pub is None:
            raise RuntimeError("the safety service publishes only while it serves")
        self._pub.send(frames, reason=reason, detail=detail)

    def _publish_tracks(self, obs: Observation, engine: CameraEngine) -> None:
        self._publish(
            tracks_message(obs, engine.view),
            "tracks_backpressure",
            "the results bus is not taking track state",
        )

    def _mtime(self) -> int:
        try:
            return self.config.config_path.stat().st_mtime_ns if self.config.config_path else 0
        except OSError:
            return 0

    def _reload_if_changed(self) -> None:
        """Apply an edited site config without a restart: only cameras whose zones/rules changed get new
        engines; their open events carry over to rules of the same name (like a restart, docs/safety.md).
        A config that does not validate is refused with its error and the running rules stay."""
        mtime, path = self._mtime(), self.config.config_path
        if path is None or not mtime or mtime == self._config_mtime:
            return
        self._config_mtime = mtime
        try:
            site = load_site_config(path)
        except ConfigError as exc:
            log.warning("config changed but is invalid, keeping the running rules: %s", exc)
            return
        new = site.safety.cameras if site.safety is not None else {}
        for cam in set(self.cameras) - set(new):
            del self.cameras[cam]
        for cam, rules in new.items():
            old = self.cameras.get(cam)
            if old is not None and old.engine.rules == rules:
                continue
            engine = CameraEngine(cam, rules, PersonTracker().update)
            if old is None:
                self.cameras[cam] = _Camera(engine)
            else:
                engine.resume(old.engine.open_events())
                engine.rate = old.engine.rate  # same camera, same measured result rate
                old.engine = engine
        self.config.safety.cameras = dict(new)
        self._follow_cameras()
        if site.safety is not None:  # clip settings as edited (per camera; a new camera starts its ring)
            self.config.safety.clips, self.config.safety.camera_clips = (
                site.safety.clips,
                site.safety.camera_clips,
            )
        self.clips.set_specs(camera_clip_specs(self.config.safety))
        log.info(
            "reloaded %s: %d camera(s), %d rule(s)",
            self.config.config_path,
            len(self.cameras),
            sum(len(c.engine.rules.rules) for c in self.cameras.values()),
        )

    def _end_quiet_cameras(self) -> None:
        at = time.monotonic()
        for cam in self.cameras.values():
            now = cam.clock.quiet_now(at, cam.engine.rate.interval)  # capture time, None while results flow
            if now is not None:
                for tr in cam.engine.idle(now):
                    self._emit(tr, None, None, cam.engine)

    def _emit(
        self, tr: Transition, obs: Observation | None, jpeg: bytes | None, engine: CameraEngine
    ) -> None:
        ev = tr.event
        if tr.kind == "start" and obs is not None:
            try:
                ev.snapshot = write_snapshot(
                    self.config.snapshot_dir, jpeg, tr.rows, ev, engine.rules, engine.view
                )
            except OSError as exc:  # a full disk: the event goes on without its picture
                self._evidence_failed("snapshot_failed", f"event {ev.id}: {exc}")
        clip = self.clips.on_transition(tr, engine.rules, self.store)  # {state, path} or None (clips off)
        try:
            self.store.save(ev)  # committed before anyone hears of it
        except (
            sqlite3.Error
        ) as exc:  # a full disk never stops the rules or the alerts; the next transition re-saves
            self._evidence_failed("store_failed", f"event {ev.id} ({tr.kind}): {exc}")
        data = ev.to_dict()
        if clip is not None:
            data["clip"] = clip
        self.events += 1
        metrics.count_event(ev.rule, tr.kind)
        log.info(
            "event %s %s %s camera %s tracks %s peak %d",
            tr.kind,
            ev.type,
            ev.id,
            ev.camera,
            ev.tracks,
            ev.peak,
            extra=fields(camera=ev.camera, event=ev.id, rule=ev.rule, transition=tr.kind),
        )
        self._publish(
            messages.encode_event(tr.kind, data), "event_backpressure", "the results bus is not taking events"
        )
        self.alerts.send(tr.kind, data)
