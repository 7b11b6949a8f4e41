"""The HTML pages (not part of the API): the console and its login page; /static/ is mounted by the app."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..context import Console

STATIC = Path(__file__).resolve().parent.parent / "static"


def router(_console: Console) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    @api.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @api.get("/login.html")
    async def login_page() -> FileResponse:
        return FileResponse(STATIC / "login.html")

    return api
