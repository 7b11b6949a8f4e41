"""Tag ``zones``: the site config's zones, lines and rules per camera, and the zone editor's save."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from anjeon.protocol import wire

from ..context import Console
from ..zones import ZoneError, read_zones, save_camera


class ZonesIn(BaseModel):
    zones: dict[str, list[list[float]]] = Field(
        default_factory=dict, description="name -> [[x, y], ...], 0..1"
    )
    lines: dict[str, dict[str, Any]] = Field(default_factory=dict, description="name -> {points, restricted}")
    rules: list[dict[str, Any]] = Field(
        default_factory=list, description="as in the site YAML (docs/safety.md)"
    )


def router(console: Console) -> APIRouter:
    api = APIRouter(tags=["zones"])
    config_path = console.config_path

    @api.get("/api/zones")
    async def zones() -> dict[str, Any]:
        """Zones, lines and rules per camera from the site config (normalized 0..1 coordinates)."""
        try:
            return {"editable": config_path is not None, "cameras": read_zones(config_path)}
        except Exception as exc:  # a broken file must not take the console down; say what is wrong
            return {"editable": False, "cameras": {}, "error": str(exc)}

    @api.put("/api/zones/{camera}")
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

    return api
