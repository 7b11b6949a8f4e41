"""The history socket, answered on its own thread with its own SQLite connections.

The rules thread never sees a query: a page of 1000 events or a 5 MB clip is
read here, from a read-only connection (WAL: readers never block the
writer), and acknowledgements are written here on a second connection to the
``acks`` table only. Every answer header stays under the wire's header limit
by construction (``PAGE_BUDGET``): events are added until the next would not
fit, and the answer's cursor continues after the last one sent. Requests and
answers: docs/protocol.md, "The history socket".
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import zmq

from anjeon.protocol import wire
from anjeon.protocol.sockets import configure, count_error
from anjeon.protocol.stats import DropCounter

from . import bus
from .store import Ack, EventStore, Query, QueryError, encode_cursor

log = logging.getLogger("anjeon.safety.history")

PAGE_BUDGET = 56 * 1024  # bytes of events per answer: the 64 KiB header limit less room for the envelope
MAX_TRACKS_SENT = 1000  # an event with more track ids is sent with its list cut (and says so)
MAX_CLIP_BYTES = 48 * 1024 * 1024  # under the socket's 64 MiB ceiling; clips are capped far below this
POLL_MS = 200
MAX_REPORT_JOBS = 2  # reports being made at once; more are refused (busy), never queued without bound
MAX_REPORT_DAYS = 400


def fit_event(event: dict[str, Any]) -> bytes:
    """The packed event, its track list cut if the event alone would not fit a page."""
    packed: bytes = msgpack.packb(event, use_bin_type=True)
    if len(packed) > PAGE_BUDGET // 4:
        event = {**event, "tracks": event.get("tracks", [])[:MAX_TRACKS_SENT], "tracks_truncated": True}
        for key in ("note", "reason"):  # bounded at 500 characters when stored; cut again only if still huge
            if event.get("ack") and len(str(event["ack"].get(key, ""))) > 500:
                event["ack"] = {**event["ack"], key: str(event["ack"][key])[:500]}
        packed = msgpack.packb(event, use_bin_type=True)
    return packed


def page_answer(rows: list[dict[str, Any]], more: bool, total: int | None) -> bytes:
    """Pack as many rows as fit the budget into one `events` answer, with the cursor after the last one."""
    body: list[bytes] = []
    used = 0
    for row in rows:
        packed = fit_event(row)
        if body and used + len(packed) > PAGE_BUDGET:
            more = True
            break
        body.append(packed)
        used += len(packed)
    last = rows[len(body) - 1] if body else None
    nxt = encode_cursor(last["started"], last["id"]) if more and last is not None else None
    # Assemble the map by hand so each event is packed once: {"v", "kind", "events": [...], "next", "total"}.
    head = msgpack.packb(
        {"v": wire.VERSION, "kind": bus.EVENTS, "next": nxt, "total": total}, use_bin_type=True
    )
    events_key = msgpack.packb("events", use_bin_type=True)
    items = bytearray()
    items += _map_header(4 + 1) + head[1:]  # head is a fixmap of 4; re-prefix it as a map of 5
    items += events_key + _array_header(len(body)) + b"".join(body)
    return bytes(items)


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    return b"\xdc" + n.to_bytes(2, "big") if n < 65536 else b"\xdd" + n.to_bytes(4, "big")


class HistoryServer:
    """Owns the bound ROUTER after ``start``; ``storage`` reports what retention last found."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        store_path: Path,
        drops: DropCounter,
        storage: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.endpoint, self._store_path, self._drops = endpoint, store_path, drops
        self._storage = storage or (lambda: {})
        self._sock: zmq.Socket[Any] = configure(ctx.socket(zmq.ROUTER))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.answered = 0
        self.errors = 0
        # Reports take seconds (charts, PDF): made on a worker so queries, acks and clips are never held up.
        self._reports = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")
        self._jobs: list[tuple[list[bytes], Future[list[bytes]]]] = []
        self._writer: EventStore | None = None

    @property
    def socket(self) -> zmq.Socket[Any]:
        """The ROUTER before ``start`` (security setup adds CURVE options here, before the bind)."""
        return self._sock

    def start(self) -> None:
        try:
            self._sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise RuntimeError(f"cannot bind the history socket {self.endpoint}: {exc}") from None
        # The socket moves to the history thread here and is used by no one else from now on.
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._sock.close(0)

    def stats(self) -> dict[str, int]:
        return {"answered": self.answered, "errors": self.errors}

    def _run(self) -> None:
        reader = EventStore(self._store_path, readonly=True)
        try:
            while not self._stop.is_set():
                self._finish_reports()
                try:
                    if not self._sock.poll(POLL_MS):
                        continue
                    frames = self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    continue
                except zmq.ZMQError as exc:
                    if count_error(self._drops, exc, "history socket"):
                        return  # the context was terminated: a clean exit
                    continue
                envelope, body = frames[:-1], frames[-1]
                if not envelope:
                    continue
                if _kind(body) == bus.REPORT_QUERY:
                    self._start_report(envelope, body)
                    continue
                self._send(envelope, self._handle(body, reader))
        finally:
            self._reports.shutdown(wait=False, cancel_futures=True)
            reader.close()
            if self._writer is not None:
                self._writer.close()
            self._sock.close(0)

    def _acks(self) -> EventStore:
        """The connection that writes acknowledgements, opened at the first one (in the history thread)."""
        if self._writer is None:
            self._writer = EventStore(self._store_path)
        return self._writer

    def _handle(self, body: bytes, reader: EventStore) -> list[bytes]:
        try:
            request = wire.unpack(body, bus.EVENTS_QUERY, bus.ACK, bus.CLIP_QUERY, bus.STORAGE_QUERY)
            kind = request["kind"]
            if kind == bus.EVENTS_QUERY:
                q = Query.from_map(request)
                rows, more = reader.page(q)
                reply = [page_answer(rows, more, reader.count(q) if q.total else None)]
            elif kind == bus.ACK:
                event = self._acks().acknowledge(Ack.from_map(request))
                log.info(
                    "event %s acknowledged by %s%s",
                    event.get("id"),
                    request.get("by"),
                    f" ({request.get('outcome')})" if request.get("outcome") else "",
                )
                reply = [wire.pack({"v": wire.VERSION, "kind": bus.ACKED, "event": _small(event)})]
            elif kind == bus.CLIP_QUERY:
                reply = self._clip(reader, request)
            else:
                reply = [wire.pack({"v": wire.VERSION, "kind": bus.STORAGE, **self._storage()})]
            self.answered += 1
            return reply
        except wire.ProtocolError as exc:
            self._drops.drop(exc.reason, f"history request: {exc}")
            return self._error(str(exc))
        except QueryError as exc:
            self._drops.drop("bad_query", f"history request: {exc}")
            return self._error(str(exc))
        except KeyError as exc:
            return self._error(f"no event {exc.args[0]!r}")
        except (sqlite3.Error, OSError) as exc:  # a locked, full or vanished store: say so, keep serving
            self._drops.drop("history_store", f"history request: {exc}")
            return self._error(f"the event store failed: {exc}")
        except Exception as exc:  # a bug must cost one answer, not the history thread
            log.exception("history request failed")
            self._drops.drop("history_failed", f"history request: {type(exc).__name__}: {exc}")
            return self._error(f"the request failed: {type(exc).__name__}")

    def _start_report(self, envelope: list[bytes], body: bytes) -> None:
        try:
            request = wire.unpack(body, bus.REPORT_QUERY)
            if len(self._jobs) >= MAX_REPORT_JOBS:
                raise QueryError("reports are being made; ask again in a moment")
            job = report_job(request)
        except (wire.ProtocolError, QueryError) as exc:
            self._drops.drop("bad_query", f"report request: {exc}")
            self._send(envelope, self._error(str(exc)))
            return
        self._jobs.append((envelope, self._reports.submit(job, self._store_path)))

    def _finish_reports(self) -> None:
        for item in [j for j in self._jobs if j[1].done()]:
            self._jobs.remove(item)
            envelope, future = item
            try:
                reply = future.result()
                self.answered += 1
            except Exception as exc:  # a store or renderer failure answers an error; the socket goes on
                reply = self._error(f"the report failed: {type(exc).__name__}: {exc}")
            self._send(envelope, reply)

    def _send(self, envelope: list[bytes], reply: list[bytes]) -> None:
        try:
            self._sock.send_multipart([*envelope, *reply], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the asker is gone or its queue is full: counted, the socket goes on
            self._drops.drop("history_unsent", f"history answer not sent: {exc}")

    def _clip(self, reader: EventStore, request: dict[str, Any]) -> list[bytes]:
        event_id = request.get("event")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
            raise QueryError("a clip query names its event")
        clip = reader.clip_of(event_id)
        if clip is None:
            raise KeyError(event_id)
        if clip["state"] != "ready":
            return self._error(
                f"the clip of event {event_id} is {clip['state']}"
                + (f": {clip['error']}" if clip["error"] else ""),
                state=clip["state"],
            )
        path = Path(clip["path"])  # written by this service's encoder, never named by a client
        size = path.stat().st_size
        if size > MAX_CLIP_BYTES:
            return self._error(f"the clip of event {event_id} is {size} bytes, over {MAX_CLIP_BYTES}")
        data = path.read_bytes()
        header = {
            "v": wire.VERSION,
            "kind": bus.CLIP,
            "event": event_id,
            "state": "ready",
            "mime": bus.CLIP_MIME,
            "size": len(data),
        }
        return [wire.pack(header), data]

    def _error(self, message: str, **extra: Any) -> list[bytes]:
        self.errors += 1
        return [wire.pack({"v": wire.VERSION, "kind": bus.ERROR, "error": message, **extra})]


def _small(event: dict[str, Any]) -> dict[str, Any]:
    return msgpack.unpackb(fit_event(event), raw=False) if event else {}


def _kind(body: bytes) -> str:
    try:
        m = msgpack.unpackb(body, raw=False) if len(body) <= wire.MAX_HEADER_BYTES else None
    except Exception:  # any garbage: _handle will say what is wrong
        return ""
    return m.get("kind", "") if isinstance(m, dict) else ""


def report_job(request: dict[str, Any]) -> Callable[[Path], list[bytes]]:
    """Check a report_query and return the work that answers it:
    json -> [header, figures JSON, PNG per chart], pdf -> [header, PDF]."""

    def num(key: str) -> float:
        v = request.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
            raise QueryError(f"{key} must be a number (unix seconds)")
        return float(v)

    since, until = num("since"), num("until")
    if not 0 < until - since <= MAX_REPORT_DAYS * 86400:
        raise QueryError(f"until must be after since, at most {MAX_REPORT_DAYS} days")
    cameras = request.get("cameras") or []
    if (
        not isinstance(cameras, list)
        or len(cameras) > 64
        or not all(isinstance(c, str) and len(c) <= 64 for c in cameras)
    ):
        raise QueryError("cameras must be a list of camera ids")
    lang, fmt = request.get("lang", "ko"), request.get("format", "json")
    if lang not in ("ko", "en") or fmt not in ("json", "pdf"):
        raise QueryError("lang is ko or en, format json or pdf")

    def work(store_path: Path) -> list[bytes]:
        import tempfile

        from .report import collect
        from .report.render import charts_png, write_pdf

        data = collect(store_path, since, until, tuple(cameras))
        head = {"v": wire.VERSION, "kind": bus.REPORT, "format": fmt, "total": data.total}
        if fmt == "pdf":
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "report.pdf"
                write_pdf(data, lang, out)
                return [wire.pack({**head, "parts": ["report.pdf"]}), out.read_bytes()]
        charts = charts_png(data, lang)
        return [
            wire.pack({**head, "parts": ["figures.json", *charts]}),
            json.dumps(data.to_dict(), ensure_ascii=False).encode(),
            *(v.encode() for v in charts.values()),
        ]

    return work
