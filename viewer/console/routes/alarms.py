"""Tag ``alarms``: events open now or not yet acknowledged, and acknowledging one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from ..bus import HistoryUnavailable
from ..context import Console
from ..state import event_map


class AckIn(BaseModel):
    by: str = Field(
        default="", max_length=64, description="who acknowledges (the session's user when logged in)"
    )
    note: str = Field(default="", max_length=500)
    outcome: str = Field(
        default="", pattern="^(false_alarm|resolved|)$", description="false_alarm needs a reason"
    )
    reason: str = Field(default="", max_length=500)


def router(console: Console) -> APIRouter:
    api = APIRouter(tags=["alarms"])
    state, hub, bus = console.state, console.hub, console.bus

    @api.get("/api/alarms")
    async def alarms() -> list[dict[str, Any]]:
        """Events open now or not yet acknowledged, newest first, each with its acknowledgement."""
        return state.alarm_list()

    @api.post("/api/alarms/{event_id}/ack")
    async def acknowledge(event_id: str, body: AckIn, request: Request) -> dict[str, Any]:
        who = getattr(request.state, "user", "") or body.by.strip() or "operator"
        try:  # stored with the event by the safety service first; the viewer only caches it
            stored = await bus.send_ack(event_id, who, body.note, body.outcome, body.reason)
        except HistoryUnavailable as exc:
            raise HTTPException(exc.status, str(exc)) from None
        state.remember(stored)
        try:
            ack = state.acknowledge(event_id, who, body.note)
        except KeyError:
            raise HTTPException(404, f"no event {event_id!r}") from None
        hub.changed("alarms")
        return {
            "event": ack.event,
            "by": ack.by,
            "at": ack.at,
            "note": ack.note,
            "stored": event_map(stored).get("ack"),
        }

    return api
