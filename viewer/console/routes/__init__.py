"""The console's HTTP routes, one router per OpenAPI tag; each is made from the process's Console parts.

``access`` (login), ``live`` (cameras, frames, status, the WebSocket), ``alarms`` (open alarms,
acknowledgement), ``events`` (history pages, CSV, snapshots), ``zones`` (the zone editor),
``evidence`` (clips, storage), ``reports`` (the Reports page), ``pages`` (the HTML pages, not in the API).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from ..context import Console
from . import access, alarms, events, evidence, live, pages, reports, zones

ROUTERS: tuple[Callable[[Console], APIRouter], ...] = (
    access.router,
    live.router,
    alarms.router,
    events.router,
    zones.router,
    pages.router,
    evidence.router,
    reports.router,
)
