"""Tag ``reports``: the Reports page API: the same figures and charts as `anjeon report`, and its PDF.

The safety service makes them (it holds the store) on a worker beside its
history thread (docs/protocol.md, `report_query`); this router only asks and
passes the answer on. Charts come as base64 PNGs for the page to show.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from ..bus import Bus, HistoryUnavailable
from ..context import Console

REPORT_QUERY, REPORT = "report_query", "report"
TIMEOUT = 180.0  # a year of events with charts takes a while on a small machine


def _period(since: str, until: str) -> tuple[float, float]:
    """Dates (YYYY-MM-DD, local; until included) or unix seconds; default the last 7 days."""

    def parse(text: str, end: bool) -> float:
        try:
            return float(text)
        except ValueError:
            pass
        try:
            day = datetime.fromisoformat(text)
        except ValueError:
            raise HTTPException(422, f"{text!r} is not a date (YYYY-MM-DD)") from None
        return (day + timedelta(days=1) if end and len(text) == 10 else day).timestamp()

    now = time.time()
    lo = parse(since, False) if since else now - 7 * 86400
    hi = parse(until, True) if until else now
    if hi <= lo:
        raise HTTPException(422, "until must be after since")
    return lo, hi


async def _ask(
    since: str, until: str, camera: list[str], lang: str, fmt: str, bus: Bus
) -> tuple[dict[str, Any], list[bytes]]:
    lo, hi = _period(since, until)
    try:
        return await bus.request(
            {"kind": REPORT_QUERY, "since": lo, "until": hi, "cameras": camera, "lang": lang, "format": fmt},
            REPORT,
            timeout=TIMEOUT,
        )
    except HistoryUnavailable as exc:
        raise HTTPException(exc.status, str(exc)) from None


def router(console: Console) -> APIRouter:
    api = APIRouter(tags=["reports"])
    bus = console.bus

    @api.get("/api/reports")
    async def report(
        since: str = "",
        until: str = "",
        camera: list[str] = Query(default_factory=list),
        lang: str = Query("ko", pattern="^(ko|en)$"),
    ) -> dict[str, Any]:
        """Figures (per day, hour, camera and rule, zones, response times, false alarms, longest incidents) and
        charts (base64 PNG: days, hours, rules, heatmap:CAMERA)."""
        head, parts = await _ask(since, until, camera, lang, "json", bus)
        names = head.get("parts") or []
        if len(parts) != len(names) or not names or names[0] != "figures.json":
            raise HTTPException(502, "the safety service sent a report of the wrong shape")
        return {
            "figures": json.loads(parts[0]),
            "charts": {n: p.decode() for n, p in zip(names[1:], parts[1:])},
        }

    @api.get("/api/reports/report.pdf", response_class=Response)
    async def report_pdf(
        since: str = "",
        until: str = "",
        camera: list[str] = Query(default_factory=list),
        lang: str = Query("ko", pattern="^(ko|en)$"),
    ) -> Response:
        head, parts = await _ask(since, until, camera, lang, "pdf", bus)
        if len(parts) != 1 or not parts[0].startswith(b"%PDF"):
            raise HTTPException(502, "the safety service sent no PDF")
        name = f"anjeon-report-{since or 'last7d'}-{until or 'now'}-{lang}.pdf".replace(":", "")
        return Response(
            parts[0],
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return api
