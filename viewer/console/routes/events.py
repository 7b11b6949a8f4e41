"""Tag ``events``: the safety service's stored events, paged, as CSV, and each event's snapshot."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response, StreamingResponse

from anjeon.protocol import wire
from anjeon.protocol.client import Event

from .. import history as hist
from ..context import Console

log = logging.getLogger("anjeon.viewer")

EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the safety service makes (hex); a snapshot's file name


def snapshot_file(folder: Path | None, event: Event | None, event_id: str) -> Path | None:
    """FOLDER/CAMERA/ID.jpg of an event, only when it lies inside the folder (never a path from the bus)."""
    if (
        folder is None
        or event is None
        or not EVENT_ID.match(event_id)
        or not wire.CAMERA_ID.match(event.camera)
    ):
        return None
    root = folder.resolve()
    path = (root / event.camera / f"{event_id}.jpg").resolve()  # symlinks resolved before the check
    return path if path.is_relative_to(root) and path.is_file() else None


def filters(camera: str, rule: str, since: float | None, until: float | None, state: str) -> dict[str, Any]:
    q: dict[str, Any] = {"camera": camera, "rule": rule, "state": state}
    q.update({k: v for k, v in (("since", since), ("until", until)) if v is not None})
    return q


def router(console: Console) -> APIRouter:
    api = APIRouter(tags=["events"])
    state, bus, options = console.state, console.bus, console.options

    async def history_page(q: dict[str, Any], limit: int, cursor: str, total: bool = False) -> hist.Page:
        """One page as the history module cuts it (events typed; shown with ``state.with_ack``)."""
        try:
            got = await hist.page(bus.query_history, q, limit, cursor, total)
        except hist.CursorError as exc:
            raise HTTPException(422, str(exc)) from None
        except TimeoutError as exc:
            raise HTTPException(504, str(exc)) from None
        except (RuntimeError, wire.ProtocolError) as exc:
            raise HTTPException(502, f"the safety service answered: {exc}") from None
        return got

    @api.get("/api/events")
    async def events(
        response: Response,
        camera: str = "",
        rule: str = "",
        since: float | None = None,
        until: float | None = None,
        state_: str = Query("", alias="state", pattern="^(open|ended|)$"),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str = Query("", max_length=65536),
    ) -> list[dict[str, Any]]:
        """One page of stored events, newest first, with acknowledgements; the next page's cursor is in the
        X-Next-Cursor header (absent on the last page). /api/events/page gives the same as one object."""
        got = await history_page(filters(camera, rule, since, until, state_), limit, cursor)
        if got.next:
            response.headers["X-Next-Cursor"] = got.next
        return [state.with_ack(e) for e in got.events]

    @api.get("/api/events/page")
    async def events_page(
        camera: str = "",
        rule: str = "",
        since: float | None = None,
        until: float | None = None,
        state_: str = Query("", alias="state", pattern="^(open|ended|)$"),
        limit: int = Query(50, ge=1, le=1000),
        cursor: str = Query("", max_length=65536),
        total: bool = False,
    ) -> dict[str, Any]:
        """{"events": [...], "next": cursor or null, "total": int or null (when asked and known)}."""
        got = await history_page(filters(camera, rule, since, until, state_), limit, cursor, total)
        return {"events": [state.with_ack(e) for e in got.events], "next": got.next, "total": got.total}

    @api.get("/api/events.csv", response_class=Response)
    async def events_csv(
        camera: str = "",
        rule: str = "",
        since: float | None = None,
        until: float | None = None,
        state_: str = Query("", alias="state", pattern="^(open|ended|)$"),
    ) -> Response:
        """Every matching event as CSV, newest first, streamed page by page (no size limit)."""
        q = filters(camera, rule, since, until, state_)
        pages = hist.all_events(bus.query_history, q)
        first: list[Event]
        try:
            first = await anext(pages, [])  # an unreachable service is a 504 now, not a broken download later
        except TimeoutError as exc:
            raise HTTPException(504, str(exc)) from None
        except (RuntimeError, wire.ProtocolError) as exc:
            raise HTTPException(502, f"the safety service answered: {exc}") from None

        async def body() -> AsyncIterator[str]:
            yield hist.csv_text([hist.csv_row(state.with_ack(e)) for e in first], header=True)
            try:
                async for rows in pages:
                    yield hist.csv_text([hist.csv_row(state.with_ack(e)) for e in rows])
            except (TimeoutError, RuntimeError, wire.ProtocolError) as exc:
                log.error("CSV export cut short: %s", exc)  # the download ends early; the log says why
                yield f"# export incomplete: {exc}\n"

        name = f"anjeon-events-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        return StreamingResponse(
            body(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @api.get("/api/events/{event_id}/snapshot.jpg", response_class=Response)
    async def snapshot(event_id: str) -> Response:
        """The safety service's annotated snapshot, SNAPSHOTS/CAMERA/ID.jpg, when that folder is readable here
        (--snapshots, or the site config's); else the frame this viewer held when the event started. The
        event's own `snapshot` path is never opened: it comes off the bus."""
        ev = state.events.get(event_id)
        if ev is None and options.snapshots is not None and EVENT_ID.match(event_id):
            try:  # an event from before this viewer started: its camera from the history
                found = await bus.query_history({"id": event_id, "limit": 1}, timeout=3.0)
                ev = next((e for e in found.events if e.id == event_id), None)
            except (TimeoutError, RuntimeError, wire.ProtocolError):
                ev = None
        path = snapshot_file(options.snapshots, ev, event_id)
        if path is not None:
            return FileResponse(
                path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
            )
        if event_id in state.snapshots:
            return Response(state.snapshots[event_id], media_type="image/jpeg")
        raise HTTPException(404, f"no snapshot of event {event_id[:64]!r} here")

    return api
