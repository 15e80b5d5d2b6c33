"""Drone docks (DJI-Cloud-API style): the dock, its patrol route and its camera geometry."""

from __future__ import annotations

from pydantic import Field

from citywatch.config.base import ConfigModel, GeoPoint, Identifier
from citywatch.config.site import Placement


class DockConfig(ConfigModel):
    id: Identifier
    gateway: Identifier
    name: str = ""
    serial: str = Field(min_length=1, description="dock serial number (gateway sn in DJI topics)")
    placement: Placement
    patrol_route: tuple[GeoPoint, ...] = Field(default=(), description="waypoints of the patrol")
    altitude_m: float = Field(default=60, gt=0, le=500, description="patrol height above ground")
