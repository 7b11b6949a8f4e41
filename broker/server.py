"""The broker process: binds the five sockets and runs one poll loop.

Sockets (ports relative to --base-port, see anjeon.protocol.endpoints):
  frames-in   PULL    edges push [frame header, jpeg]
  frames-out  ROUTER  workers' DEALERs send ready/credit; we send [header as received, jpeg, trailer]
  results-in  XSUB    workers publish results; forwarded to results-out
  results-out XPUB    subscribers; subscriptions are forwarded to results-in
  control     ROUTER  heartbeats in, acks out

A single thread owns all five sockets, so no state is shared across threads.
What the broker knows (cameras, processes, worker credit) is in one
``BrokerState`` (state.py); this module moves messages in and out of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import zmq
from zmq.backend import Socket as _ZmqSocket

from anjeon.protocol import messages, security, wire
from anjeon.protocol.endpoints import (
    CONTROL,
    DEFAULT_BASE_PORT,
    FRAMES_IN,
    FRAMES_OUT,
    RESULTS_IN,
    RESULTS_OUT,
    bind_endpoint,
)
from anjeon.protocol.sockets import closed, configure, count_error
from anjeon.protocol.stats import DropCounter, ProcessMeter

from .registry import DEFAULT_MAX_PEERS, BeatOutcome
from .scheduler import (
    DEFAULT_MAX_CREDIT,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_WORKERS,
    CreditOutcome,
    OfferOutcome,
    Pending,
    ReadyOutcome,
)
from .state import BrokerState
from .status import build_snapshot

log = logging.getLogger("anjeon.broker")

TICK = 0.25  # seconds between liveness sweeps; bounds how late "offline" is noticed
DRAIN = 256  # messages taken from one socket per loop turn, so no socket starves the others

# The hot path's socket calls, spelled out (measured in benchmarks/broker_hop.py, docs/benchmarks.md §4b):
# flags as plain ints, because every `zmq.SNDMORE | flags` and every getsockopt builds an enum (~2 µs
# each here); pyzmq's own send, without the sugar's routing_id/group checks; and parts received one by
# one, with the Frame's `more` instead of the RCVMORE getsockopt that recv_multipart asks per part.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_MORE = _SNDMORE | _NOBLOCK
_POLLIN = int(zmq.POLLIN)
_send = _ZmqSocket.send


def _messages(sock: zmq.SyncSocket) -> Iterator[list[zmq.Frame]]:
    """The messages waiting on ``sock`` (at most DRAIN), each as its list of frames.

    Called when the poller said ``sock`` is readable, so the first message is taken without asking.
    Most turns carry one message: asking whether a second one waits (zmq_poll on this socket alone)
    costs about half the ``zmq.Again`` that would otherwise end the drain; past the second, Again ends it.
    """
    for i in range(DRAIN):
        if i == 1 and not zmq.zmq_poll([(sock, _POLLIN)], 0):
            return
        try:
            frame = sock.recv(_NOBLOCK, copy=False)
        except zmq.Again:
            return
        frames = [frame]
        while frame.more:  # the parts of one message arrive together: no Again in between
            frame = sock.recv(_NOBLOCK, copy=False)
            frames.append(frame)
        yield frames


def _forward(sock: zmq.SyncSocket, frames: list[zmq.Frame], flags: int) -> None:
    """Send ``frames`` on as one message, zero-copy (send_multipart without its per-part enum flags)."""
    more = flags | _SNDMORE
    for frame in frames[:-1]:
        _send(sock, frame, more, copy=False)
    _send(sock, frames[-1], flags, copy=False)


@dataclass
class BrokerConfig:
    bind: str = "*"
    base_port: int = DEFAULT_BASE_PORT
    max_age: float = 1.0
    max_frame_bytes: int = wire.DEFAULT_MAX_FRAME_BYTES
    status_interval: float = 1.0
    # Bounds on state that peers' ids and claims create (counted when hit, shown in the status's "limits").
    max_credit: int = DEFAULT_MAX_CREDIT
    max_cameras: int = 4096
    max_peers: int = DEFAULT_MAX_PEERS
    max_pending: int = DEFAULT_MAX_PENDING
    max_workers: int = DEFAULT_MAX_WORKERS
    # Frames/s accepted, all together, from cameras no online edge reports (ids anyone can invent by pushing
    # frames): enough for a client without heartbeats, too few for a flood of invented ids to load the workers.
    unclaimed_fps: float = 100.0

    @property
    def camera_idle(self) -> float:
        """A camera silent this long may give its place to a new one when max_cameras is reached."""
        return max(5.0, 2 * self.max_age)

    def limits(self) -> dict[str, int]:
        return {
            "credit": self.max_credit,
            "cameras": self.max_cameras,
            "peers": self.max_peers,
            "pending": self.max_pending,
            "workers": self.max_workers,
            "unclaimed_fps": round(self.unclaimed_fps),
        }


UNKNOWN_MSG = wire.pack({"v": wire.VERSION, "kind": wire.UNKNOWN})


class BindError(RuntimeError):
    pass


class Broker:
    def __init__(self, config: BrokerConfig, ctx: zmq.SyncContext | None = None) -> None:
        self.config = config
        self.run_id = wire.new_id()
        self._ctx = ctx or zmq.Context.instance()
        self.state = BrokerState(
            self.run_id,
            max_age=config.max_age,
            max_cameras=config.max_cameras,
            camera_idle=config.camera_idle,
            max_peers=config.max_peers,
            max_credit=config.max_credit,
            max_pending=config.max_pending,
            max_workers=config.max_workers,
        )
        self._status_now = False  # publish the status on this loop turn (something went offline)
        self._unclaimed_tokens, self._unclaimed_at = config.unclaimed_fps, time.monotonic()
        self.drops = DropCounter(log)
        self._started = time.monotonic()
        self._meter = ProcessMeter()
        self._socks: dict[str, zmq.SyncSocket] = {}
        self.guard: security.Guard | None = None  # CURVE + rights per role (plaintext without keys)

    @property
    def _guard(self) -> security.Guard:
        """The guard of the bound sockets (bind() makes it)."""
        if self.guard is None:
            raise RuntimeError("Broker.bind() first")
        return self.guard

    # -- life cycle -------------------------------------------------------------
    def bind(self) -> None:
        c = self.config
        specs = {
            FRAMES_IN: configure(self._ctx.socket(zmq.PULL), rcvhwm=100, peer_heartbeat=True),
            FRAMES_OUT: configure(self._ctx.socket(zmq.ROUTER), sndhwm=100),
            RESULTS_IN: configure(self._ctx.socket(zmq.XSUB)),
            RESULTS_OUT: configure(self._ctx.socket(zmq.XPUB), sndhwm=1000, peer_heartbeat=True),
            CONTROL: configure(self._ctx.socket(zmq.ROUTER)),
        }
        # A frame for a worker that vanished must raise, not disappear silently.
        specs[FRAMES_OUT].setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._socks = specs
        self.guard = security.guard(self._ctx, c.bind, "the broker")
        for name, sock in specs.items():
            endpoint = bind_endpoint(c.bind, c.base_port, name)
            self.guard.secure(sock, name)
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                self.close()
                raise BindError(
                    f"cannot bind {name} on {endpoint} ({exc.strerror}): is another broker running? "
                    f"Use --base-port to move all five ports."
                ) from None
        log.info("broker %s listening on %s ports %d-%d", self.run_id, c.bind, c.base_port, c.base_port + 4)

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close(0)
        self._socks = {}
        if self.guard is not None:
            self.guard.stop()
            self.guard = None

    def serve(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set. Call bind() first."""
        s = self._socks
        handlers = {
            s[FRAMES_IN]: self._on_frames,
            s[FRAMES_OUT]: self._on_workers,
            s[RESULTS_IN]: self._on_results,
            s[RESULTS_OUT]: self._on_subscriptions,
            s[CONTROL]: self._on_control,
        }
        items = [(sock, _POLLIN) for sock in handlers]  # zmq_poll itself: zmq.Poller adds a layer per turn
        next_tick = next_status = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    timeout = max(0.0, min(next_tick, next_status) - time.monotonic())
                    ready = zmq.zmq_poll(items, int(timeout * 1000))  # the sockets of items, as given
                    for sock, _ in cast("list[tuple[zmq.SyncSocket, int]]", ready):
                        handlers[sock](sock)
                    self._dispatch()
                except zmq.ZMQError as exc:
                    # The context or a socket closed: a clean exit. Anything else is counted (the broker
                    # never exits on what peers send) and the loop goes on.
                    if count_error(self.drops, exc, "in the broker's loop"):
                        break
                now = time.monotonic()
                if now >= next_tick:
                    # Expiring on the tick, not every loop turn: the scan is over all cameras, and a frame
                    # that slips past by < TICK is still dropped by the worker's own --max-age.
                    for frame in self.state.scheduler.expire():
                        self.state.cameras.drop(frame.header.camera, "expired")
                    if self._sweep():
                        next_status = now  # tell subscribers at once when something went offline
                    # A revoked key must stop receiving too: drop results-out's connections (they reconnect).
                    self._guard.drop_revoked(
                        s[RESULTS_OUT], bind_endpoint(self.config.bind, self.config.base_port, RESULTS_OUT)
                    )
                    next_tick = now + TICK
                if self._status_now:
                    next_status, self._status_now = now, False
                if now >= next_status:
                    self._publish_status()
                    next_status = now + self.config.status_interval
        finally:
            self.close()
            log.info("broker stopped")

    # -- frames from edges -------------------------------------------------------
    def _on_frames(self, sock: zmq.SyncSocket) -> None:
        guard = self._guard
        for frames in _messages(sock):
            if denial := guard.denial(frames[0], FRAMES_IN):
                self.drops.drop("forbidden", denial)
                continue
            self._accept_frame(frames)

    def _accept_frame(self, frames: list[zmq.Frame]) -> None:
        if len(frames) != 2:
            self.drops.drop(
                "malformed", f"a frame message has {len(frames)} parts, expected 2 (header, jpeg)"
            )
            return
        raw, jpeg = frames[0].bytes, frames[1]
        try:
            header = messages.decode_frame(raw)
        except wire.ProtocolError as exc:
            self.drops.drop(exc.reason, str(exc))
            return
        size = len(jpeg)
        if size > self.config.max_frame_bytes:
            self.drops.drop(
                "oversized",
                f"camera {header.camera}: {size} bytes > --max-frame-bytes {self.config.max_frame_bytes}",
            )
            return
        if header.size != size:
            self.drops.drop(
                "size_mismatch", f"camera {header.camera}: header says {header.size} bytes, got {size}"
            )
            return
        if jpeg.buffer[:2] != b"\xff\xd8":
            self.drops.drop("not_jpeg", f"camera {header.camera}: payload does not start with a JPEG marker")
            return
        now = time.monotonic()
        state = self.state
        cameras = state.cameras
        known = cameras.get(header.camera)
        claimed = known is not None and known.claimed
        if not claimed and not self._unclaimed_token(now):
            self.drops.drop(
                "unclaimed_rate",
                f"camera {header.camera}: no online edge reports it, and frames of such "
                f"cameras are over {self.config.unclaimed_fps:.0f}/s",
            )
            return
        flow = cameras.admit(header.camera, now)
        if flow is None:
            self.drops.drop(
                "camera_cap",
                f"camera {header.camera}: --max-cameras {self.config.max_cameras} cameras are streaming",
            )
            return
        flow.frames_in.add()
        flow.edge = header.edge
        outcome, other = state.scheduler.offer(
            header.camera, Pending(header, jpeg, now, frames[0], time.time(), claimed)
        )
        if outcome == OfferOutcome.REPLACED:
            flow.drops["superseded"] += 1
        elif outcome == OfferOutcome.FULL:
            flow.drops["pending_cap"] += 1
        elif other is not None:  # NEW, and an unclaimed camera's frame made room for it
            cameras.drop(other.header.camera, "pending_cap")

    def _unclaimed_token(self, now: float) -> bool:
        """A token bucket (one second's worth) for frames of unclaimed cameras."""
        rate = self.config.unclaimed_fps
        self._unclaimed_tokens = min(rate, self._unclaimed_tokens + (now - self._unclaimed_at) * rate)
        self._unclaimed_at = now
        if self._unclaimed_tokens < 1.0:
            return False
        self._unclaimed_tokens -= 1.0
        return True

    # -- workers -------------------------------------------------------------------
    def _on_workers(self, sock: zmq.SyncSocket) -> None:
        guard, scheduler = self._guard, self.state.scheduler
        for frames in _messages(sock):
            if denial := guard.denial(frames[-1], FRAMES_OUT):
                self.drops.drop("forbidden", denial)
                continue
            ident = frames[0].bytes
            try:
                if len(frames) != 2:
                    raise wire.ProtocolError(
                        "malformed", f"a worker message of {len(frames) - 1} parts, expected 1"
                    )
                msg = messages.decode_worker_message(frames[1].bytes)
            except wire.ProtocolError as exc:
                self.drops.drop(exc.reason, f"from a worker: {exc}")
                continue
            if isinstance(msg, messages.Ready):
                self._on_ready(ident, msg)
                continue
            outcome = scheduler.credit(msg.proc, ident, msg.grant, msg.n)
            if outcome == CreditOutcome.OK:  # STALE is ignored too, uncounted
                continue
            if outcome == CreditOutcome.UNKNOWN:
                self._send_unknown(sock, ident)
            elif outcome == CreditOutcome.CONFLICT:
                self.drops.drop(outcome, f"credit for worker {msg.proc} from another connection (ignored)")

    def _on_ready(self, ident: bytes, msg: messages.Ready) -> None:
        outcome, slot = self.state.scheduler.ready(msg.proc, ident, msg.credit, msg.batch)
        if outcome == ReadyOutcome.NEW and slot is not None:
            log.info("worker %s ready with credit %d (announced %d)", msg.proc, slot.capacity, msg.credit)
        elif outcome in (ReadyOutcome.CONFLICT, ReadyOutcome.FULL):
            self.drops.drop(outcome, f"ready from worker {msg.proc} ignored")
        # TOO_SOON is not counted: a worker announces itself at start and again when it first hears the
        # broker's id, and an ignored ready costs nothing (it cannot refill the credit of frames held).

    def _send_unknown(self, sock: zmq.SyncSocket, ident: bytes) -> None:
        """Tell a worker the broker does not know it: it announces itself again."""
        try:
            sock.send_multipart([ident, UNKNOWN_MSG], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # gone, or its pipe is full: its next credit asks again
            if count_error(self.drops, exc, "telling a worker the broker does not know it"):
                raise

    def _dispatch(self) -> None:
        sock = self._socks[FRAMES_OUT]
        pick, encode_trailer, monotonic = self.state.scheduler.next, messages.encode_trailer, time.monotonic
        while (picked := pick()) is not None:
            slot, frame = picked
            h = frame.header
            # The edge's header goes on as received; what the broker adds travels in a small trailer
            # (re-encoding the whole header per frame was the broker's largest cost after the decode).
            trailer = encode_trailer(
                slot.grant, h.age + (monotonic() - frame.arrived), frame.t_in, time.time()
            )
            try:
                # Part by part, as send_multipart does: only the first part can fail (no route, or the
                # worker's pipe is full), and then nothing of the message was queued.
                _send(sock, slot.ident, _MORE)
                _send(sock, frame.raw, _MORE, copy=False)
                _send(sock, frame.jpeg, _MORE, copy=False)
                _send(sock, trailer, _NOBLOCK)
            except zmq.ZMQError as exc:
                if closed(exc):
                    raise
                # EHOSTUNREACH: the worker is gone. EAGAIN: its pipe is full. Either way it has no
                # real credit; forget it until it announces itself again. The frame is not re-sent:
                # by the time we noticed, a newer one is on its way.
                self.state.scheduler.forget(slot.proc)
                self.state.cameras.drop(h.camera, "worker_gone")
                log.warning("worker %s unreachable (%s); forgetting its credit", slot.proc, exc.strerror)

    # -- results bus --------------------------------------------------------------------
    def _on_results(self, sock: zmq.SyncSocket) -> None:
        out = self._socks[RESULTS_OUT]
        guard, status_topic, result_prefix = self._guard, wire.STATUS_TOPIC, wire.RESULT_PREFIX.encode()
        flowing = self.state.cameras.flowing
        for frames in _messages(sock):
            topic = frames[0].bytes
            if denial := guard.denial(frames[0], RESULTS_IN, topic):
                self.drops.drop("forbidden", denial)
                continue
            if topic.startswith(status_topic):  # only the broker speaks there: a forgery would fool consoles
                self.drops.drop("forged_status", "a publisher sent on the broker's status/ topic")
                continue
            if topic.startswith(result_prefix):
                camera = wire.camera_of_topic(topic)
                flow = flowing.get(camera) if camera is not None else None
                if flow is not None:
                    flow.results_out.add()
            try:
                _forward(out, frames, _NOBLOCK)
            except zmq.Again:
                pass  # XPUB drops for slow subscribers by itself

    def _on_subscriptions(self, sock: zmq.SyncSocket) -> None:
        upstream = self._socks[RESULTS_IN]
        for frames in _messages(sock):
            if denial := self._guard.denial(frames[0], RESULTS_OUT):
                self.drops.drop("forbidden", denial)
                continue
            _forward(upstream, frames, 0)

    # -- heartbeats and status -------------------------------------------------------------
    def _on_control(self, sock: zmq.SyncSocket) -> None:
        ack = wire.pack({"v": wire.VERSION, "kind": wire.HEARTBEAT_ACK, "broker": self.run_id})
        for _ in range(DRAIN):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            ident = frames[0].bytes
            try:
                if len(frames) != 2:
                    raise wire.ProtocolError(
                        "malformed", f"a control message of {len(frames) - 1} parts, expected 1"
                    )
                msg = messages.decode_control(frames[1].bytes)
            except wire.ProtocolError as exc:
                self.drops.drop(exc.reason, f"on the control socket: {exc}")
                continue
            if isinstance(msg, messages.Goodbye):
                self._on_goodbye(msg, ident)
                continue
            if denial := self._guard.heartbeat_denial(frames[-1], msg.role):
                self.drops.drop("forbidden", denial)
                continue
            if msg.role == "edge" and len(msg.info["cameras"]) > self.config.max_cameras:
                self.drops.drop(
                    "camera_cap",
                    f"edge {msg.name} reports {len(msg.info['cameras'])} cameras, "
                    f"more than --max-cameras {self.config.max_cameras}",
                )
                continue
            outcome = self.state.registry.beat(msg.proc, msg.role, msg.name, msg.info, ident)
            if outcome == BeatOutcome.NEW:
                log.info("%s %s online", msg.role, msg.name)
            elif outcome != BeatOutcome.OK:
                self.drops.drop(outcome, f"heartbeat of {msg.role} {msg.proc} refused")
                continue
            try:
                sock.send_multipart([ident, ack], zmq.NOBLOCK)
            except zmq.ZMQError as exc:  # its queue is full: the next beat is acked
                if count_error(self.drops, exc, f"acking the heartbeat of {msg.role} {msg.name}"):
                    raise

    def _on_goodbye(self, msg: messages.Goodbye, ident: bytes) -> None:
        peer, slot = self.state.goodbye(msg.proc, ident)
        if peer is None:
            self.drops.drop("bad_goodbye", f"goodbye for {msg.proc}, unknown or from another connection")
            return
        log.info("%s %s stopped", peer.role, peer.name)
        if slot is not None:
            log.info("forgot the credit of worker %s", peer.name)
        self._status_now = True

    def _sweep(self) -> bool:
        """The one liveness sweep (state.py); True when some process went offline."""
        gone, dead = self.state.sweep()
        registry = self.state.registry
        for peer in gone:
            log.warning(
                "%s %s offline (no heartbeat for %.0f s)", peer.role, peer.name, registry.silence(peer)
            )
        for slot in dead:
            worker = registry.peers.get(slot.proc)
            log.info("forgot the credit of worker %s", worker.name if worker is not None else slot.proc)
        return bool(gone)

    def snapshot(self) -> dict[str, Any]:
        self.state.cameras.report(self.state.registry.by_role("edge"))  # heartbeats since the last sweep
        snap = build_snapshot(
            self.state,
            run=self.run_id,
            started=self._started,
            broker_drops=self.drops.snapshot(),
            process=self._meter.sample(),
            now=time.monotonic(),
            limits=self.config.limits(),
        )
        snap["security"] = self.guard.stats() if self.guard is not None else {"curve": False}
        return snap

    def _publish_status(self) -> None:
        try:
            self._socks[RESULTS_OUT].send_multipart(
                [wire.STATUS_TOPIC, wire.pack(self.snapshot())], zmq.NOBLOCK
            )
        except zmq.Again:
            pass
