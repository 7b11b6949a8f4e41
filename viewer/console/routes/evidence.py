"""Tag ``evidence``: incident clips and what the safety service stores.

Everything here asks the safety service over its history socket
(docs/protocol.md, "The history socket", viewer/console/bus.py): a clip is
fetched by event id (the service opens only files its own encoder wrote, never
a path a client names) and served with HTTP range support so Chromium can
seek in it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from ..bus import HistoryUnavailable
from ..context import Console

CLIP_QUERY, CLIP = "clip_query", "clip"
STORAGE_QUERY, STORAGE = "storage_query", "storage"
EVENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CLIP_CACHE = 8  # clips kept in memory: a browser asks for the same clip in several ranges while playing


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


def router(console: Console) -> APIRouter:
    api = APIRouter(tags=["evidence"])
    bus = console.bus
    cache: dict[str, bytes] = {}

    @api.get("/api/events/{event_id}/clip.mp4", response_class=Response)
    async def clip(event_id: str, request: Request, download: bool = False) -> Response:
        """The incident's video clip (pre-roll to post-roll, boxes and zones drawn), fetched by event id only."""
        if not EVENT_ID.match(event_id):
            raise HTTPException(404, "no such event")
        data = cache.get(event_id)
        if data is None:
            try:
                reply, extra = await bus.request({"kind": CLIP_QUERY, "event": event_id}, CLIP, timeout=15.0)
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
            reply, _ = await bus.request({"kind": STORAGE_QUERY}, STORAGE)
        except HistoryUnavailable as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return {k: v for k, v in reply.items() if k not in ("v", "kind")}

    return api
