"""The console's HTTP side: a JSON API (OpenAPI at /openapi.json), the live WebSocket, the static page.

The page uses nothing but this API. With a users file every route except the
login page and POST /api/login needs a session cookie. The routes live in
viewer/console/routes/, one router per OpenAPI tag; this module puts them
together behind the Host/Origin guard and the login check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .auth import COOKIE, Auth
from .bus import Bus
from .context import Console, WebOptions
from .guard import Guard, GuardMiddleware
from .live import Hub
from .routes import ROUTERS
from .routes.pages import STATIC
from .state import ConsoleState

__all__ = ["PUBLIC", "WebOptions", "create_app"]

PUBLIC = {"/login.html", "/static/login.js", "/static/style.css", "/static/i18n.js", "/api/login"}


def create_app(
    state: ConsoleState,
    hub: Hub,
    bus: Bus,
    auth: Auth | None,
    config_path: Path | None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    options: WebOptions | None = None,
) -> FastAPI:
    console = Console(state, hub, bus, auth, config_path, options or WebOptions())
    app = FastAPI(
        title="anjeon console", version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )  # the Swagger page loads from a CDN; /openapi.json stays
    app.add_middleware(GuardMiddleware, guard=Guard(console.options.allowed_hosts, console.options.tls))

    @app.middleware("http")
    async def require_login(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if auth is None or request.url.path in PUBLIC:
            return await call_next(request)
        user = auth.user_of(request.cookies.get(COOKIE))
        if user is None:
            if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
                return JSONResponse({"detail": "login required"}, status_code=401)
            return RedirectResponse("/login.html", status_code=303)
        request.state.user = user
        return await call_next(request)

    for make in ROUTERS:
        app.include_router(make(console))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
