"""The protocol as a client library: typed subscribers, a publisher and the history client.

Every role that listens to the results bus uses this module instead of its own SUB setup, drain loop
and parsing. One logic core, :class:`Decoder`, turns a multipart message into a typed message (or
counts why it dropped it); :class:`Subscriber` (threads) and :class:`AsyncSubscriber` (asyncio) only
add a socket around it. docs/python-api.md shows it in use; docs/protocol.md is the wire itself.

    from anjeon.protocol import client

    with client.events("tcp://127.0.0.1:5550") as sub:
        for msg in sub:
            print(msg.transition, msg.event.type, msg.event.camera)

Streams and what they yield (topics end with ``/``, so camera ``gate`` never matches ``gate2``):

    RESULTS   res/CAM/   wire.Result               [topic, result header]
    PICTURES  img/CAM/   Picture (exact JPEG)      [topic, result header, jpeg as received]
    RENDERS   ann/CAM/   Picture (boxes drawn)     [topic, result header, jpeg rendered]
    EVENTS    evt/CAM/   messages.EventMessage     [topic, event header]
    TRACKS    trk/CAM/   messages.Tracks           [topic, tracks header]
    STATUS    status/    messages.Status           [topic, status snapshot]

What is dropped is counted in a :class:`~anjeon.protocol.stats.DropCounter` by reason (logged once
per reason): the decoder's ``ProtocolError.reason``, ``unknown_topic``, and with ``newest_only`` the
freshness verdicts ``stale`` and ``implausible`` (protocol/freshness.py, the one rule); socket errors
other than a closed socket or context count as ``zmq_<ERRNO>`` (protocol/sockets.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import zmq
import zmq.asyncio

from . import messages, security, wire
from .endpoints import RESULTS_IN, RESULTS_OUT, BrokerAddress
from .freshness import NEWER, FreshnessGate, FreshnessRule
from .messages import (
    Event,
    EventMessage,
    Status,
    StatusCamera,
    Track,
    Tracks,
    encode_event,
    encode_tracks,
)
from .sockets import configure, count_error
from .stats import DropCounter
from .wire import FrameHeader, ProtocolError, Result

__all__ = [
    "RESULTS",
    "PICTURES",
    "RENDERS",
    "EVENTS",
    "TRACKS",
    "STATUS",
    "Stream",
    "Picture",
    "Event",
    "EventMessage",
    "Track",
    "Tracks",
    "Status",
    "StatusCamera",
    "Result",
    "Message",
    "Decoder",
    "Subscriber",
    "AsyncSubscriber",
    "Publisher",
    "History",
    "AsyncHistory",
    "HistoryPage",
    "HistoryError",
    "history_endpoint",
    "encode_event",
    "encode_tracks",
]

log = logging.getLogger("anjeon.client")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

HISTORY_OFFSET = 5  # the safety service's default history port: the broker's base port + 5


# ---------------------------------------------------------------- typed messages and streams


@dataclass(frozen=True)
class Picture:
    """A result with the JPEG it was made on (``img/``) or with its boxes drawn (``ann/``)."""

    result: Result
    jpeg: bytes
    rendered: bool = False

    @property
    def frame(self) -> FrameHeader:
        return self.result.frame

    @property
    def camera(self) -> str:
        return self.result.frame.camera


Message = Result | Picture | EventMessage | Tracks | Status


def _parts(frames: Sequence[bytes], n: int, what: str) -> None:
    if len(frames) != n:
        raise ProtocolError("malformed", f"{len(frames)} part(s) where {what} was expected")


def _result(frames: Sequence[bytes]) -> Result:
    _parts(frames, 2, "[topic, result]")
    return Result.from_wire(frames[1])


def _picture(rendered: bool) -> Callable[[Sequence[bytes]], Picture]:
    def decode(frames: Sequence[bytes]) -> Picture:
        _parts(frames, 3, "[topic, result, jpeg]")
        result = Result.from_wire(frames[1])
        if not frames[2].startswith(b"\xff\xd8"):
            raise ProtocolError("not_jpeg", f"camera {result.frame.camera}: picture is not a JPEG")
        return Picture(result, frames[2], rendered)

    return decode


def _event(frames: Sequence[bytes]) -> EventMessage:
    _parts(frames, 2, "[topic, event]")
    return EventMessage.from_wire(frames[1])


def _tracks(frames: Sequence[bytes]) -> Tracks:
    _parts(frames, 2, "[topic, tracks]")
    return Tracks.from_wire(frames[1])


def _status(frames: Sequence[bytes]) -> Status:
    _parts(frames, 2, "[topic, status]")
    return Status.from_wire(frames[1])


def _result_frame(msg: object) -> FrameHeader | None:
    if isinstance(msg, Result):
        return msg.frame
    if isinstance(msg, Picture):
        return msg.result.frame
    return None


@dataclass(frozen=True)
class Stream(Generic[T_co]):
    """One kind of message on the results bus: its topic prefix and its decoder."""

    prefix: str
    decode: Callable[[Sequence[bytes]], T_co]
    per_camera: bool = True  # topics are PREFIX + CAMERA + "/"
    fresh: bool = False  # carries results: ``newest_only`` applies

    def topics(self, cameras: Iterable[str]) -> list[bytes]:
        cams = list(cameras)
        if not self.per_camera or not cams:
            return [self.prefix.encode()]
        return [wire.topic(self.prefix, wire.check_camera_id(cam)) for cam in cams]


RESULTS: Stream[Result] = Stream(wire.RESULT_PREFIX, _result, fresh=True)
PICTURES: Stream[Picture] = Stream(wire.IMAGE_PREFIX, _picture(False), fresh=True)
RENDERS: Stream[Picture] = Stream(wire.RENDER_PREFIX, _picture(True), fresh=True)
EVENTS: Stream[EventMessage] = Stream(wire.EVENT_PREFIX, _event)
TRACKS: Stream[Tracks] = Stream(wire.TRACKS_PREFIX, _tracks)
STATUS: Stream[Status] = Stream(wire.STATUS_TOPIC.decode(), _status, per_camera=False)


# ---------------------------------------------------------------- the logic core


class Decoder(Generic[T]):
    """Multipart message -> typed message, or None with the reason counted. No sockets in here.

    ``newest_only``: results (RESULTS, PICTURES, RENDERS) that the freshness rule does not find newer
    than the last one accepted for their camera and stream are dropped (``stale``, ``implausible``).
    """

    def __init__(
        self,
        streams: Sequence[Stream[T]],
        newest_only: bool = False,
        drops: DropCounter | None = None,
        rule: FreshnessRule | None = None,
        max_cameras: int = 4096,
    ) -> None:
        if not streams:
            raise ValueError("a subscriber needs at least one stream")
        self.streams = tuple(streams)
        # (topic bytes, exact match?, stream): camera topics match by prefix, status/ only as itself
        self._routes = [(s.prefix.encode(), not s.per_camera, s) for s in self.streams]
        self.newest_only = newest_only
        self.drops = drops if drops is not None else DropCounter(log)
        self._rule, self._max_cameras = rule, max_cameras
        self._gates: dict[str, FreshnessGate] = {}
        self.decoded = 0

    def topics(self, cameras: Iterable[str] = ()) -> list[bytes]:
        cams = list(cameras)
        return [t for s in self.streams for t in s.topics(cams)]

    def gate(self, stream: Stream[Any]) -> FreshnessGate:
        """The freshness reference of one stream (per camera), made on first use."""
        gate = self._gates.get(stream.prefix)
        if gate is None:
            gate = self._gates[stream.prefix] = FreshnessGate(self._rule, self._max_cameras)
        return gate

    def route(self, topic: bytes) -> Stream[T] | None:
        for prefix, exact, stream in self._routes:
            if topic == prefix if exact else topic.startswith(prefix):
                return stream
        return None

    def decode(self, frames: Sequence[bytes]) -> T | None:
        topic = frames[0] if frames else b""
        stream = self.route(topic)
        if stream is None:
            self.drops.drop("unknown_topic", f"topic {topic[:40]!r} is not one this subscriber takes")
            return None
        try:
            msg = stream.decode(frames)
        except ProtocolError as exc:
            self.drops.drop(exc.reason, f"on topic {topic[:40]!r}: {exc}")
            return None
        if self.newest_only and stream.fresh:
            frame = _result_frame(msg)
            if frame is not None:
                verdict = self.gate(stream).admit_frame(frame)
                if verdict != NEWER:
                    self.drops.drop(
                        verdict,
                        f"camera {frame.camera}: a result not newer than one already taken "
                        "(protocol/freshness.py)",
                        camera=frame.camera,
                    )
                    return None
        self.decoded += 1
        return msg


# ---------------------------------------------------------------- subscribers


class _Empty:
    """Nothing queued right now (as opposed to None: the socket is closed or failed)."""


EMPTY = _Empty()


def _address(broker: BrokerAddress | str) -> BrokerAddress:
    return BrokerAddress.parse(broker) if isinstance(broker, str) else broker


def _ms(deadline: float | None) -> int | None:
    return None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))


class _SubscriberBase(Generic[T]):
    def __init__(
        self,
        sock: zmq.Socket[Any],
        broker: BrokerAddress | str,
        streams: Sequence[Stream[T]],
        cameras: Iterable[str],
        newest_only: bool,
        rcvhwm: int,
        keys: security.Keyring | None,
        drops: DropCounter | None,
    ) -> None:
        self.broker = _address(broker)
        self.decoder: Decoder[T] = Decoder(streams, newest_only, drops)
        self.drops = self.decoder.drops
        self.cameras: list[str] = [wire.check_camera_id(c) for c in cameras]
        self.all_cameras = not self.cameras  # made for every camera: stays so whatever add/remove_camera do
        self.socket = configure(sock, rcvhwm=rcvhwm)
        # What is queued is read without blocking through a sync view of the socket (the socket itself, or
        # for asyncio a shadow of it), so both flavours share the reading below and differ only in waiting.
        self._reader: zmq.Socket[Any] = (
            zmq.Socket.shadow(sock.underlying) if isinstance(sock, zmq.asyncio.Socket) else sock
        )
        self.closed = False
        self._stop = threading.Event()
        security.connect(self.socket, self.broker.endpoint(RESULTS_OUT), keys=keys)
        for t in self.decoder.topics(self.cameras):
            self.socket.setsockopt(zmq.SUBSCRIBE, t)

    def _camera_topics(self, camera: str) -> list[bytes]:
        return [t for s in self.decoder.streams if s.per_camera for t in s.topics([camera])]

    def add_camera(self, camera: str) -> None:
        """Take this camera too (on every per-camera stream). A subscriber for all cameras stays so; one
        whose cameras were all removed takes only the cameras added again."""
        if self.all_cameras or camera in self.cameras:
            return
        self.cameras.append(wire.check_camera_id(camera))
        for t in self._camera_topics(camera):
            self.socket.setsockopt(zmq.SUBSCRIBE, t)

    def remove_camera(self, camera: str) -> None:
        if camera not in self.cameras:
            return
        self.cameras.remove(camera)
        for t in self._camera_topics(camera):
            self.socket.setsockopt(zmq.UNSUBSCRIBE, t)

    def stop(self) -> None:
        """Make iteration end within one poll interval (safe from any thread)."""
        self._stop.set()

    def close(self) -> None:
        self.closed = True
        self._stop.set()
        self.socket.close(0)

    def _error(self, exc: zmq.ZMQError) -> None:
        if count_error(self.drops, exc, "receiving on results-out"):
            self.closed = True

    def _next_queued(self) -> T | None | _Empty:
        """The next good message already queued; EMPTY when none is; None when the socket failed."""
        while True:
            try:
                frames = self._reader.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return EMPTY
            except zmq.ZMQError as exc:
                self._error(exc)
                return None
            msg = self.decoder.decode(frames)
            if msg is not None:
                return msg

    def _take(self, limit: int) -> list[T]:
        """Up to ``limit`` good messages of those already queued."""
        out: list[T] = []
        for _ in range(limit):
            try:
                frames = self._reader.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                self._error(exc)
                break
            msg = self.decoder.decode(frames)
            if msg is not None:
                out.append(msg)
        return out


class Subscriber(_SubscriberBase[T]):
    """A SUB on the broker's results-out that yields typed messages (threads; see the module doc).

    ``cameras`` empty: every camera. ``keys`` None: this process's keys (``security.use_keys``), if any.
    ``drops`` None: its own counter (``sub.drops``). Use one per thread, like any zmq socket.
    """

    POLL_MS = 100  # how often iteration looks at stop()

    def __init__(
        self,
        broker: BrokerAddress | str,
        streams: Sequence[Stream[T]],
        cameras: Iterable[str] = (),
        *,
        newest_only: bool = False,
        rcvhwm: int = 1000,
        ctx: zmq.Context[Any] | None = None,
        keys: security.Keyring | None = None,
        drops: DropCounter | None = None,
    ) -> None:
        sock = (ctx or zmq.Context.instance()).socket(zmq.SUB)
        super().__init__(sock, broker, streams, cameras, newest_only, rcvhwm, keys, drops)

    def _wait(self, ms: int | None) -> bool:
        try:
            return bool(self.socket.poll(ms))
        except zmq.ZMQError as exc:
            self._error(exc)
            return False

    def recv(self, timeout: float | None = None) -> T | None:
        """The next good message, or None after ``timeout`` seconds (None: wait until one comes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.closed:
            msg = self._next_queued()  # under load: no poll per message
            if not isinstance(msg, _Empty):
                return msg
            if not self._wait(_ms(deadline)):
                return None
        return None

    def drain(self, timeout: float = 0.1, limit: int = 1000) -> list[T]:
        """Wait up to ``timeout`` seconds for a first message, then take what is queued (``limit`` at most)."""
        if self.closed or not self._wait(int(timeout * 1000)):
            return []
        return self._take(limit)

    def __iter__(self) -> Iterator[T]:
        """Every good message until ``stop()``, ``close()`` or the context terminates."""
        while not self._stop.is_set() and not self.closed:
            msg = self.recv(self.POLL_MS / 1000)
            if msg is not None:
                yield msg

    def __enter__(self) -> Subscriber[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncSubscriber(_SubscriberBase[T]):
    """:class:`Subscriber` for asyncio (``zmq.asyncio``): the same arguments and core, awaitable."""

    POLL_MS = 100

    def __init__(
        self,
        broker: BrokerAddress | str,
        streams: Sequence[Stream[T]],
        cameras: Iterable[str] = (),
        *,
        newest_only: bool = False,
        rcvhwm: int = 1000,
        ctx: zmq.asyncio.Context | None = None,
        keys: security.Keyring | None = None,
        drops: DropCounter | None = None,
    ) -> None:
        sock = (ctx or zmq.asyncio.Context.instance()).socket(zmq.SUB)
        self._asock: zmq.asyncio.Socket = sock  # the same socket, typed for await
        super().__init__(sock, broker, streams, cameras, newest_only, rcvhwm, keys, drops)

    async def _wait(self, ms: int | None) -> bool:
        try:
            return bool(await self._asock.poll(ms))
        except zmq.ZMQError as exc:
            self._error(exc)
            return False

    async def recv(self, timeout: float | None = None) -> T | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.closed:
            msg = self._next_queued()
            if not isinstance(msg, _Empty):
                return msg
            if not await self._wait(_ms(deadline)):
                return None
        return None

    async def drain(self, timeout: float = 0.1, limit: int = 1000) -> list[T]:
        if self.closed or not await self._wait(int(timeout * 1000)):
            return []
        return self._take(limit)

    async def _messages(self) -> AsyncIterator[T]:
        while not self._stop.is_set() and not self.closed:
            msg = await self.recv(self.POLL_MS / 1000)
            if msg is not None:
                yield msg

    def __aiter__(self) -> AsyncIterator[T]:
        return self._messages()

    async def __aenter__(self) -> AsyncSubscriber[T]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# One function per stream (typed). Keyword arguments are those of Subscriber.


def results(broker: BrokerAddress | str, cameras: Iterable[str] = (), **kw: Any) -> Subscriber[Result]:
    return Subscriber(broker, [RESULTS], cameras, **kw)


def pictures(
    broker: BrokerAddress | str, cameras: Iterable[str] = (), rendered: bool = False, **kw: Any
) -> Subscriber[Picture]:
    return Subscriber(broker, [RENDERS if rendered else PICTURES], cameras, **kw)


def events(broker: BrokerAddress | str, cameras: Iterable[str] = (), **kw: Any) -> Subscriber[EventMessage]:
    return Subscriber(broker, [EVENTS], cameras, **kw)


def tracks(broker: BrokerAddress | str, cameras: Iterable[str] = (), **kw: Any) -> Subscriber[Tracks]:
    return Subscriber(broker, [TRACKS], cameras, **kw)


def status(broker: BrokerAddress | str, **kw: Any) -> Subscriber[Status]:
    return Subscriber(broker, [STATUS], **kw)


def async_results(
    broker: BrokerAddress | str, cameras: Iterable[str] = (), **kw: Any
) -> AsyncSubscriber[Result]:
    return AsyncSubscriber(broker, [RESULTS], cameras, **kw)


def async_pictures(
    broker: BrokerAddress | str, cameras: Iterable[str] = (), rendered: bool = False, **kw: Any
) -> AsyncSubscriber[Picture]:
    return AsyncSubscriber(broker, [RENDERS if rendered else PICTURES], cameras, **kw)


def async_events(
    broker: BrokerAddress | str, cameras: Iterable[str] = (), **kw: Any
) -> AsyncSubscriber[EventMessage]:
    return AsyncSubscriber(broker, [EVENTS], cameras, **kw)


def async_tracks(
    broker: BrokerAddress | str, cameras: Iterable[str] = (), **kw: Any
) -> AsyncSubscriber[Tracks]:
    return AsyncSubscriber(broker, [TRACKS], cameras, **kw)


def async_status(broker: BrokerAddress | str, **kw: Any) -> AsyncSubscriber[Status]:
    return AsyncSubscriber(broker, [STATUS], **kw)


# ---------------------------------------------------------------- publishing


class Publisher:
    """A PUB on the broker's results-in. ``send`` never blocks; what cannot be sent is counted."""

    def __init__(
        self,
        broker: BrokerAddress | str,
        *,
        sndhwm: int = 1000,
        ctx: zmq.Context[Any] | None = None,
        keys: security.Keyring | None = None,
        drops: DropCounter | None = None,
    ) -> None:
        self.broker = _address(broker)
        self.drops = drops if drops is not None else DropCounter(log)
        self.socket = configure((ctx or zmq.Context.instance()).socket(zmq.PUB), sndhwm=sndhwm)
        security.connect(self.socket, self.broker.endpoint(RESULTS_IN), keys=keys)

    def send(
        self,
        frames: Sequence[bytes],
        reason: str = "backpressure",
        detail: str = "the results bus is not taking messages",
    ) -> bool:
        """Send without blocking; False when it was refused (EAGAIN: counted under ``reason``) or the socket
        is closed. A PUB whose queue to a slow peer is full drops for that peer without saying so (libzmq)."""
        try:
            self.socket.send_multipart(list(frames), zmq.NOBLOCK)
            return True
        except zmq.Again:
            self.drops.drop(reason, detail)
        except zmq.ZMQError as exc:
            count_error(self.drops, exc, "publishing on results-in")
        return False

    def close(self) -> None:
        self.socket.close(0)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---------------------------------------------------------------- history (the safety service's ROUTER)


class HistoryError(RuntimeError):
    """The service answered with an error; ``state`` is set for a clip that is not ready."""

    def __init__(self, message: str, state: str = "") -> None:
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class HistoryPage:
    events: list[Event]  # newest first
    next: str | None  # cursor of the next (older) page; None on the last page
    total: int | None = None  # events matching, when asked for
    paged: bool = True  # False: a service from before paging (answered without ``next``)


def history_endpoint(broker: BrokerAddress | str, override: str = "") -> str:
    """The safety service's history address: ``override``, else the broker's host at base port + 5."""
    b = _address(broker)
    return override or f"tcp://{b.host}:{b.base_port + HISTORY_OFFSET}"


def _request_bytes(kind: str, fields: Mapping[str, Any]) -> bytes:
    return wire.pack({"v": wire.VERSION, "kind": kind, **{k: v for k, v in fields.items() if v is not None}})


def _reply(frames: Sequence[bytes], expect: str) -> tuple[dict[str, Any], list[bytes]]:
    if not frames:
        raise ProtocolError("malformed", "an empty answer")
    reply = wire.unpack(frames[0], expect, messages.ERROR, max_bytes=messages.MAX_HISTORY_BYTES)
    if reply["kind"] == messages.ERROR:
        raise HistoryError(str(reply.get("error"))[:500], str(reply.get("state") or ""))
    return reply, list(frames[1:])


def _page(reply: Mapping[str, Any], drops: DropCounter) -> HistoryPage:
    raw = reply.get("events")
    if not isinstance(raw, list):
        raise ProtocolError("malformed", "an events answer without an events list")
    events: list[Event] = []
    for item in raw:
        try:
            events.append(Event.from_map(item))
        except ProtocolError as exc:  # one bad event costs only itself
            drops.drop(exc.reason, f"history answer: {exc}")
    nxt, total = reply.get("next"), reply.get("total")
    return HistoryPage(
        events,
        nxt if isinstance(nxt, str) and nxt else None,
        total if type(total) is int else None,
        "next" in reply,
    )


def _ack_fields(event: str, by: str, note: str, outcome: str, reason: str) -> dict[str, Any]:
    return {"event": event, "by": by, "note": note, "outcome": outcome, "reason": reason}


class History:
    """One request, one answer, on a fresh DEALER each (a lost answer never confuses the next)."""

    def __init__(
        self,
        endpoint: str,
        *,
        ctx: zmq.Context[Any] | None = None,
        keys: security.Keyring | None = None,
        timeout: float = 5.0,
        drops: DropCounter | None = None,
    ) -> None:
        self.endpoint, self.timeout, self._keys = endpoint, timeout, keys
        self._ctx = ctx or zmq.Context.instance()
        self.drops = drops if drops is not None else DropCounter(log)

    def request(
        self, kind: str, fields: Mapping[str, Any], expect: str, timeout: float | None = None
    ) -> tuple[dict[str, Any], list[bytes]]:
        """(answer header, extra frames); raises TimeoutError, HistoryError or ProtocolError."""
        timeout = self.timeout if timeout is None else timeout
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            security.connect(sock, self.endpoint, server=security.HISTORY_KEY, keys=self._keys)
            sock.send(_request_bytes(kind, fields))
            if not sock.poll(int(timeout * 1000)):
                raise TimeoutError(
                    f"no answer from the safety service at {self.endpoint} within {timeout:.0f} s"
                )
            frames = sock.recv_multipart()
        finally:
            sock.close(0)
        return _reply(frames, expect)

    def page(self, query: Mapping[str, Any]) -> HistoryPage:
        reply, _ = self.request(messages.EVENTS_QUERY, query, messages.EVENTS)
        return _page(reply, self.drops)

    def events(self, query: Mapping[str, Any]) -> Iterator[Event]:
        """Every matching event, newest first, page after page."""
        q = {k: v for k, v in query.items() if v is not None}
        while True:
            page = self.page(q)
            yield from page.events
            if page.next is None:
                return
            q = {**q, "cursor": page.next}

    def ack(self, event: str, by: str, note: str = "", outcome: str = "", reason: str = "") -> Event:
        reply, _ = self.request(messages.ACK, _ack_fields(event, by, note, outcome, reason), messages.ACKED)
        return Event.from_map(reply.get("event"), "acked.event")


class AsyncHistory:
    """:class:`History` for asyncio."""

    def __init__(
        self,
        endpoint: str,
        *,
        ctx: zmq.asyncio.Context | None = None,
        keys: security.Keyring | None = None,
        timeout: float = 5.0,
        drops: DropCounter | None = None,
    ) -> None:
        self.endpoint, self.timeout, self._keys = endpoint, timeout, keys
        self._ctx = ctx or zmq.asyncio.Context.instance()
        self.drops = drops if drops is not None else DropCounter(log)

    async def request(
        self, kind: str, fields: Mapping[str, Any], expect: str, timeout: float | None = None
    ) -> tuple[dict[str, Any], list[bytes]]:
        timeout = self.timeout if timeout is None else timeout
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            security.connect(sock, self.endpoint, server=security.HISTORY_KEY, keys=self._keys)
            await sock.send(_request_bytes(kind, fields))
            if not await sock.poll(int(timeout * 1000)):
                raise TimeoutError(
                    f"no answer from the safety service at {self.endpoint} within {timeout:.0f} s"
                )
            frames = await sock.recv_multipart()
        finally:
            sock.close(0)
        return _reply(frames, expect)

    async def page(self, query: Mapping[str, Any]) -> HistoryPage:
        reply, _ = await self.request(messages.EVENTS_QUERY, query, messages.EVENTS)
        return _page(reply, self.drops)

    async def events(self, query: Mapping[str, Any]) -> AsyncIterator[Event]:
        q = {k: v for k, v in query.items() if v is not None}
        while True:
            page = await self.page(q)
            for ev in page.events:
                yield ev
            if page.next is None:
                return
            q = {**q, "cursor": page.next}

    async def ack(self, event: str, by: str, note: str = "", outcome: str = "", reason: str = "") -> Event:
        reply, _ = await self.request(
            messages.ACK, _ack_fields(event, by, note, outcome, reason), messages.ACKED
        )
        return Event.from_map(reply.get("event"), "acked.event")
