"""Tag ``access``: login, logout, who am I (viewer/console/auth.py does the checking)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..auth import COOKIE, SESSION_SECONDS
from ..context import Console

log = logging.getLogger("anjeon.viewer")


class LoginIn(BaseModel):
    user: str = Field(max_length=64)
    password: str = Field(max_length=256)


def client_address(console: Console, request: Request) -> str:
    """Whom the throttle counts: the TCP peer, or the client a trusted proxy names (--trusted-proxy)."""
    peer = request.client.host if request.client else "?"
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    return console.options.proxies.client(peer, forwarded or None)


def router(console: Console) -> APIRouter:
    api = APIRouter(tags=["access"])
    auth, options = console.auth, console.options

    @api.post("/api/login")
    async def login(body: LoginIn, request: Request) -> Response:
        """A session cookie for a right password. Every attempt is counted (per user and per address) before
        it is checked and waits out the throttle first; a failure says how long the next one will wait."""
        if auth is None:
            return JSONResponse({"user": body.user, "auth": False})
        client = client_address(console, request)
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

    @api.post("/api/logout")
    async def logout(request: Request) -> Response:
        if auth is not None:
            auth.logout(request.cookies.get(COOKIE))
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=options.tls)
        return resp

    @api.get("/api/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": getattr(request.state, "user", ""), "auth": auth is not None}

    return api
