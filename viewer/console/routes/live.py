"""Tag ``live``: the camera list, each camera's newest picture, the broker's status, the live WebSocket."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

from ..auth import COOKIE
from ..context import Console
from ..live import Client

log = logging.getLogger("anjeon.viewer")


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


def router(console: Console) -> APIRouter:
    api = APIRouter(tags=["live"])
    state, hub, bus, auth = console.state, console.hub, console.bus, console.auth

    @api.get("/api/cameras")
    async def cameras() -> list[dict[str, Any]]:
        """Per camera: online, state, fps in/out, median latency (ms), people in the newest frame, alarm."""
        return state.cameras()

    @api.get("/api/cameras/{camera}/frame.jpg", response_class=Response)
    async def camera_frame(camera: str) -> Response:
        feed = state.feeds.get(camera)
        if feed is None or feed.frame is None:
            raise HTTPException(404, f"no frame from camera {camera!r} yet")
        return Response(feed.frame.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @api.get("/api/status")
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

    @api.websocket("/ws")
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

    return api
