"""The console's HTTP side: a JSON API (OpenAPI at /openapi.json), the live WebSocket, the static page.

The page uses nothing but this API. With a users file every route except the
login page and POST /api/login needs a session cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from anjeon.protocol import wire

from . import evidence
from .auth import COOKIE, SESSION_SECONDS, Auth
from .bus import Bus
from .live import Client, Hub
from .state import ConsoleState
from .zones import ZoneError, read_zones, save_camera

log = logging.getLogger("anjeon.viewer")

STATIC = Path(__file__).parent / "static"
PUBLIC = {"/login.html", "/static/login.js", "/static/style.css", "/static/i18n.js", "/api/login"}
CSV_COLUMNS = ("id", "camera", "rule", "type", "zone", "line", "severity", "state", "started", "ended", "duration",
               "peak", "tracks", "ack_by", "ack_at")


class LoginIn(BaseModel):
    user: str = Field(max_length=64)
    password: str = Field(max_length=256)


class AckIn(BaseModel):
    by: str = Field(default="", max_length=64, description="who acknowledges (the session's user when logged in)")
    note: str = Field(default="", max_length=500)
    outcome: str = Field(default="", pattern="^(false_alarm|resolved|)$", description="false_alarm needs a reason")
    reason: str = Field(default="", max_length=500)


class ZonesIn(BaseModel):
    zones: dict[str, list[list[float]]] = Field(default_factory=dict, description="name -> [[x, y], ...], 0..1")
    lines: dict[str, dict[str, Any]] = Field(default_factory=dict, description="name -> {points, restricted}")
    rules: list[dict[str, Any]] = Field(default_factory=list, description="as in the site YAML (docs/safety.md)")


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


def create_app(state: ConsoleState, hub: Hub, bus: Bus, auth: Auth | None, config_path: Path | None,
               lifespan: Any = None) -> FastAPI:
    app = FastAPI(title="anjeon console", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # the Swagger page loads from a CDN; /openapi.json stays

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
        if auth is None:
            return JSONResponse({"user": body.user, "auth": False})
        client = request.client.host if request.client else "?"
        await asyncio.sleep(auth.delay_for(client))  # repeated failures from one address wait longer each time
        token = await asyncio.to_thread(auth.login, client, body.user, body.password)
        if token is None:
            log.warning("failed login for %r from %s", body.user[:64], client)
            return JSONResponse({"detail": "wrong user or password"}, status_code=401)
        resp = JSONResponse({"user": body.user, "auth": True})
        resp.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict")
        return resp

    @app.post("/api/logout", tags=["access"])
    async def logout(request: Request) -> Response:
        if auth is not None:
            auth.logout(request.cookies.get(COOKIE))
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE)
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
        return {"broker_online": state.broker_online(), "status": state.status,
                "viewer": {**hub.stats(), "results": bus.stats.results.count, "drops": bus.stats.drops.snapshot()}}

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

    async def history(camera: str, rule: str, since: float | None, until: float | None, state_: str,
                      limit: int) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"camera": camera, "rule": rule, "state": state_, "limit": limit}
        query.update({k: v for k, v in (("since", since), ("until", until)) if v is not None})
        try:
            rows = await bus.query_history(query)
        except TimeoutError as exc:
            raise HTTPException(504, str(exc)) from None
        except (RuntimeError, wire.ProtocolError) as exc:
            raise HTTPException(502, f"the safety service answered: {exc}") from None
        return [state.with_ack(e) for e in rows]

    @app.get("/api/events", tags=["events"])
    async def events(camera: str = "", rule: str = "", since: float | None = None, until: float | None = None,
                     state_: str = Query("", alias="state", pattern="^(open|ended|)$"),
                     limit: int = Query(100, ge=1, le=10000)) -> list[dict[str, Any]]:
        """Stored events from the safety service's history API, newest first, with acknowledgements."""
        return await history(camera, rule, since, until, state_, limit)

    @app.get("/api/events.csv", tags=["events"], response_class=Response)
    async def events_csv(camera: str = "", rule: str = "", since: float | None = None, until: float | None = None,
                         state_: str = Query("", alias="state", pattern="^(open|ended|)$"),
                         limit: int = Query(1000, ge=1, le=10000)) -> Response:
        rows = await history(camera, rule, since, until, state_, limit)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for e in rows:
            ack = e.get("ack") or {}
            flat = {**e, "tracks": " ".join(map(str, e.get("tracks") or [])), "ack_by": ack.get("by", ""),
                    "ack_at": ack.get("at", "")}
            writer.writerow([flat.get(c, "") for c in CSV_COLUMNS])
        name = f"anjeon-events-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/events/{event_id}/snapshot.jpg", tags=["events"], response_class=Response)
    async def snapshot(event_id: str) -> Response:
        """The safety service's annotated snapshot when its file is readable here, else the frame this viewer
        held when the event started."""
        ev = state.events.get(event_id)
        path = Path(str(ev.get("snapshot") or "")) if ev else None
        if path is not None and path.suffix == ".jpg" and path.is_file():  # only paths the service reported
            return FileResponse(path, media_type="image/jpeg")
        if event_id in state.snapshots:
            return Response(state.snapshots[event_id], media_type="image/jpeg")
        raise HTTPException(404, f"no snapshot of event {event_id!r} here")

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
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app

