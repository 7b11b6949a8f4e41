"""The console's HTTP side: a JSON API (OpenAPI at /openapi.json), the live WebSocket, the static page.

The page uses nothing but this API. With a users file every route except the
login page and POST /api/login needs a session cookie.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from anjeon.protocol import wire

from . import evidence, reports
from . import history as hist
from .auth import COOKIE, SESSION_SECONDS, Auth
from .bus import Bus
from .guard import Guard, GuardMiddleware
from .live import Client, Hub
from .state import ConsoleState
from .zones import ZoneError, read_zones, save_camera

log = logging.getLogger("anjeon.viewer")

STATIC = Path(__file__).parent / "static"
PUBLIC = {"/login.html", "/static/login.js", "/static/style.css", "/static/i18n.js", "/api/login"}
EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the safety service makes (hex); a snapshot's file name


@dataclass
class WebOptions:
    """How the console is reached: TLS (own or a proxy's), allowed host names, the snapshot folder."""

    tls: bool = (
        False  # served over https (--tls-cert) or behind a TLS proxy (--behind-tls-proxy): Secure cookies
    )
    allowed_hosts: set[str] = field(default_factory=set)
    snapshots: Path | None = None  # the safety service's snapshot folder when readable on this host


class LoginIn(BaseModel):
    user: str = Field(max_length=64)
    password: str = Field(max_length=256)


class AckIn(BaseModel):
    by: str = Field(
        default="", max_length=64, description="who acknowledges (the session's user when logged in)"
    )
    note: str = Field(default="", max_length=500)
    outcome: str = Field(
        default="", pattern="^(false_alarm|resolved|)$", description="false_alarm needs a reason"
    )
    reason: str = Field(default="", max_length=500)


class ZonesIn(BaseModel):
    zones: dict[str, list[list[float]]] = Field(
        default_factory=dict, description="name -> [[x, y], ...], 0..1"
    )
    lines: dict[str, dict[str, Any]] = Field(default_factory=dict, description="name -> {points, restricted}")
    rules: list[dict[str, Any]] = Field(
        default_factory=list, description="as in the site YAML (docs/safety.md)"
    )


async def _receive(ws: WebSocket, client: Client) -> None:
    """Acknowledgements and view changes from the browser; bad messages are ignored, not fatal."""
    while True:
        try:
            msg = await ws.receive_json()
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        if msg.get("type") == "ack":
            client.ack(str(msg.get("camera")))
        elif msg.get("type") == "watch":
            cams = msg.get("cameras")
            client.set_watch(cams if isinstance(cams, list) else None)


def snapshot_file(folder: Path | None, event: dict[str, Any] | None, event_id: str) -> Path | None:
    """FOLDER/CAMERA/ID.jpg of an event, only when it lies inside the folder (never a path from the bus)."""
    if (
        folder is None
        or event is None
        or not EVENT_ID.match(event_id)
        or not wire.CAMERA_ID.match(event["camera"])
    ):
        return None
    root = folder.resolve()
    path = (root / event["camera"] / f"{event_id}.jpg").resolve()  # symlinks resolved before the check
    return path if path.is_relative_to(root) and path.is_file() else None


def create_app(
    state: ConsoleState,
    hub: Hub,
    bus: Bus,
    auth: Auth | None,
    config_path: Path | None,
    lifespan: Any = None,
    options: WebOptions | None = None,
) -> FastAPI:
    options = options or WebOptions()
    app = FastAPI(
        title="anjeon console", version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )  # the Swagger page loads from a CDN; /openapi.json stays
    app.add_middleware(GuardMiddleware, guard=Guard(options.allowed_hosts, options.tls))

    @app.middleware("http")
    async def require_login(request: Request, call_next):
        if auth is None or request.url.path in PUBLIC:
            return await call_next(request)
        user = auth.user_of(request.cookies.get(COOKIE))
        if user is None:
            if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
                return JSONResponse({"detail": "login required"}, status_code=401)
            return RedirectResponse("/login.html", status_code=303)
        request.state.user = user
        return await call_next(request)

    @app.post("/api/login", tags=["access"])
    async def login(body: LoginIn, request: Request) -> Response:
        """A session cookie for a right password. Every attempt is counted (per user and per address) before
        it is checked and waits out the throttle first; a failure says how long the next one will wait."""
        if auth is None:
            return JSONResponse({"user": body.user, "auth": False})
        client = request.client.host if request.client else "?"
        attempt = auth.begin(client, body.user)
        await asyncio.sleep(attempt.wait)
        token = await asyncio.to_thread(auth.check, attempt, body.password)
        if token is None:
            log.warning("failed login for %r from %s", body.user[:64], client)
            wait = auth.next_wait(attempt)
            return JSONResponse(
                {"detail": "wrong user or password", "waited": attempt.wait},
                status_code=401,
                headers={"Retry-After": str(int(-(-wait // 1)))},
            )
        resp = JSONResponse({"user": body.user, "auth": True})
        resp.set_cookie(
            COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict", secure=options.tls
        )
        return resp

    @app.post("/api/logout", tags=["access"])
    async def logout(request: Request) -> Response:
        if auth is not None:
            auth.logout(request.cookies.get(COOKIE))
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=options.tls)
        return resp

    @app.get("/api/me", tags=["access"])
    async def me(request: Request) -> dict[str, Any]:
        return {"user": getattr(request.state, "user", ""), "auth": auth is not None}

    @app.get("/api/cameras", tags=["live"])
    async def cameras() -> list[dict[str, Any]]:
        """Per camera: online, state, fps in/out, median latency (ms), people in the newest frame, alarm."""
        return state.cameras()

    @app.get("/api/cameras/{camera}/frame.jpg", tags=["live"], response_class=Response)
    async def camera_frame(camera: str) -> Response:
        feed = state.feeds.get(camera)
        if feed is None or feed.frame is None:
            raise HTTPException(404, f"no frame from camera {camera!r} yet")
        return Response(feed.frame.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/status", tags=["live"])
    async def status() -> dict[str, Any]:
        """The broker's newest status snapshot (docs/protocol.md) and this viewer's own figures."""
        return {
            "broker_online": state.broker_online(),
            "status": state.status,
            "viewer": {
                **hub.stats(),
                "results": bus.stats.results.count,
                "drops": bus.stats.drops.snapshot(),
            },
        }

    @app.get("/api/alarms", tags=["alarms"])
    async def alarms() -> list[dict[str, Any]]:
        """Events open now or not yet acknowledged, newest first, each with its acknowledgement."""
        return state.alarm_list()

    @app.post("/api/alarms/{event_id}/ack", tags=["alarms"])
    async def acknowledge(event_id: str, body: AckIn, request: Request) -> dict[str, Any]:
        who = getattr(request.state, "user", "") or body.by.strip() or "operator"
        try:  # stored with the event by the safety service first (viewer/evidence.py); the viewer only caches it
            stored = await evidence.send_ack(bus, event_id, who, body.note, body.outcome, body.reason)
        except evidence.HistoryUnavailable as exc:
            raise HTTPException(exc.status, str(exc)) from None
        state.remember_history([stored])
        try:
            ack = state.acknowledge(event_id, who, body.note)
        except KeyError:
            raise HTTPException(404, f"no event {event_id!r}") from None
        hub.changed("alarms")
        return {"event": ack.event, "by": ack.by, "at": ack.at, "note": ack.note, "stored": stored.get("ack")}

    def filters(
        camera: str, rule: str, since: float | None, until: float | None, state_: str
    ) -> dict[str, Any]:
        q: dict[str, Any] = {"camera": camera, "rule": rule, "state": state_}
        q.update({k: v for k, v in (("since", since), ("until", until)) if v is not None})
        return q

    async def history_page(q: dict[str, Any], limit: int, cursor: str, total: bool = False) -> hist.Page:
        try:
            got = await hist.page(bus.query_history, q, limit, cursor, total)
        except hist.CursorError as exc:
            raise HTTPException(422, str(exc)) from None
        except TimeoutError as exc:
            raise HTTPException(504, str(exc)) from None
        except (RuntimeError, wire.ProtocolError) as exc:
            raise HTTPException(502, f"the safety service answered: {exc}") from None
        got.events = [state.with_ack(e) for e in got.events]
        return got

    @app.get("/api/events", tags=["events"])
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
        return got.events

    @app.get("/api/events/page", tags=["events"])
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
        return {"events": got.events, "next": got.next, "total": got.total}

    @app.get("/api/events.csv", tags=["events"], response_class=Response)
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

    @app.get("/api/events/{event_id}/snapshot.jpg", tags=["events"], response_class=Response)
    async def snapshot(event_id: str) -> Response:
        """The safety service's annotated snapshot, SNAPSHOTS/CAMERA/ID.jpg, when that folder is readable here
        (--snapshots, or the site config's); else the frame this viewer held when the event started. The
        event's own `snapshot` path is never opened: it comes off the bus."""
        ev = state.events.get(event_id)
        if ev is None and options.snapshots is not None and EVENT_ID.match(event_id):
            try:  # an event from before this viewer started: its camera from the history
                found = await bus.query_history({"id": event_id, "limit": 1}, timeout=3.0)
                ev = next((e for e in found.events if e["id"] == event_id), None)
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

    @app.get("/api/zones", tags=["zones"])
    async def zones() -> dict[str, Any]:
        """Zones, lines and rules per camera from the site config (normalized 0..1 coordinates)."""
        try:
            return {"editable": config_path is not None, "cameras": read_zones(config_path)}
        except Exception as exc:  # a broken file must not take the console down; say what is wrong
            return {"editable": False, "cameras": {}, "error": str(exc)}

    @app.put("/api/zones/{camera}", tags=["zones"])
    async def put_zones(camera: str, body: ZonesIn) -> dict[str, Any]:
        """Replace one camera's zones, lines and rules in the site YAML (validated; backup FILE.bak)."""
        if config_path is None:
            raise HTTPException(409, "the viewer was started without --config; zones cannot be saved")
        try:
            wire.check_camera_id(camera)
            await asyncio.to_thread(save_camera, config_path, camera, body.model_dump())
        except (ZoneError, wire.ProtocolError) as exc:
            raise HTTPException(422, str(exc)) from None
        return {"saved": str(config_path), "cameras": read_zones(config_path)}

    @app.websocket("/ws")
    async def live(ws: WebSocket) -> None:
        if auth is not None and auth.user_of(ws.cookies.get(COOKIE)) is None:
            await ws.close(code=4401)
            return
        await ws.accept()
        client = Client(ws.send_bytes, ws.send_text)
        tasks = {asyncio.create_task(hub.pump(client)), asyncio.create_task(_receive(ws, client))}
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, (WebSocketDisconnect, RuntimeError, OSError)):
                log.error("live connection failed: %r", exc)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/login.html", include_in_schema=False)
    async def login_page() -> Response:
        return FileResponse(STATIC / "login.html")

    app.include_router(evidence.router(bus))  # clips, storage (viewer/evidence.py)
    app.include_router(reports.router(bus))  # the Reports page (viewer/reports.py)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
