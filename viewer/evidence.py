"""The console's evidence routes: acknowledgements stored by the safety service, incident clips, storage.

Everything here asks the safety service over its history socket
(docs/protocol.md, "The history socket"): acknowledgements are stored with the
event in the safety store, not in this viewer; a clip is fetched by event id
(the service opens only files its own encoder wrote, never a path a client
names) and served with HTTP range support so Chromium can seek in it.
"""

from __future__ import annotations

import re
from typing import Any

import zmq
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from anjeon.protocol import security, wire

ACK, ACKED = "ack", "acked"
CLIP_QUERY, CLIP = "clip_query", "clip"
STORAGE_QUERY, STORAGE = "storage_query", "storage"
ERROR = "error"
EVENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CLIP_CACHE = 8  # clips kept in memory: a browser asks for the same clip in several ranges while playing


class HistoryUnavailable(Exception):
    """No answer, or an error answer; ``status`` is the HTTP status to give the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def history_request(
    bus: Any, message: dict[str, Any], expect: str, timeout: float = 5.0
) -> tuple[dict[str, Any], list[bytes]]:
    """One request to the safety service's history socket on the viewer's asyncio context."""
    sock = bus.ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        security.connect(sock, bus.history, server=security.HISTORY_KEY)
        await sock.send(wire.pack({"v": wire.VERSION, **message}))
        if not await sock.poll(timeout * 1000):
            raise HistoryUnavailable(
                504,
                f"no answer from the safety service at {bus.history} within "
                f"{timeout:.0f} s (is `anjeon safety` running?)",
            )
        frames = await sock.recv_multipart()
    finally:
        sock.close(0)
    try:
        reply = wire.unpack(frames[0], expect, ERROR)
    except wire.ProtocolError as exc:
        raise HistoryUnavailable(502, f"the safety service answered: {exc}") from None
    if reply["kind"] == ERROR:
        text = str(reply.get("error"))
        raise HistoryUnavailable(404 if text.startswith("no event") or reply.get("state") else 422, text)
    return reply, frames[1:]


async def send_ack(bus: Any, event_id: str, by: str, note: str, outcome: str, reason: str) -> dict[str, Any]:
    """Store the acknowledgement with the event in the safety store; the stored event (with `ack`) comes back."""
    reply, _ = await history_request(
        bus,
        {"kind": ACK, "event": event_id, "by": by, "note": note, "outcome": outcome, "reason": reason},
        ACKED,
    )
    event = reply.get("event")
    return event if isinstance(event, dict) else {}


def _ranged(data: bytes, header: str | None, media_type: str) -> Response:
    """The whole body, or the one byte range asked for (206); several ranges are answered whole."""
    size = len(data)
    base = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=60"}
    match = RANGE.match(header.strip()) if header else None
    if match is None or not (match.group(1) or match.group(2)):
        return Response(data, media_type=media_type, headers=base)
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start >= size or start > end:
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    return Response(
        data[start : end + 1],
        status_code=206,
        media_type=media_type,
        headers={**base, "Content-Range": f"bytes {start}-{end}/{size}"},
    )


def router(bus: Any) -> APIRouter:
    api = APIRouter(tags=["evidence"])
    cache: dict[str, bytes] = {}

    @api.get("/api/events/{event_id}/clip.mp4", response_class=Response)
    async def clip(event_id: str, request: Request, download: bool = False) -> Response:
        """The incident's video clip (pre-roll to post-roll, boxes and zones drawn), fetched by event id only."""
        if not EVENT_ID.match(event_id):
            raise HTTPException(404, "no such event")
        data = cache.get(event_id)
        if data is None:
            try:
                reply, extra = await history_request(
                    bus, {"kind": CLIP_QUERY, "event": event_id}, CLIP, timeout=15.0
                )
            except HistoryUnavailable as exc:
                raise HTTPException(exc.status, str(exc)) from None
            if len(extra) != 1 or len(extra[0]) != reply.get("size"):
                raise HTTPException(502, "the safety service sent a clip of the wrong size")
            data = cache[event_id] = extra[0]
            while len(cache) > CLIP_CACHE:
                cache.pop(next(iter(cache)))
        resp = _ranged(data, request.headers.get("range"), "video/mp4")
        if download:
            resp.headers["Content-Disposition"] = f'attachment; filename="anjeon-{event_id}.mp4"'
        return resp

    @api.get("/api/storage")
    async def storage() -> dict[str, Any]:
        """What the safety service stores (events, snapshots, clips), the disk, and the days covered."""
        try:
            reply, _ = await history_request(bus, {"kind": STORAGE_QUERY}, STORAGE)
        except HistoryUnavailable as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return {k: v for k, v in reply.items() if k not in ("v", "kind")}

    return api
