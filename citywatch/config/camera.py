"""Cameras: source, zones drawn on the image, and the operator rules evaluated per zone.

Zones are in 0–1 image coordinates so they survive a resolution change.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Duration, Identifier
from citywatch.config.site import Placement

Point = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]


class Zone(ConfigModel):
    name: Identifier
    polygon: tuple[Point, ...] = Field(
        min_length=3, description="[x, y] vertices, 0–1 of width/height"
    )
    mask: bool = Field(default=False, description="ignore detections inside instead of watching")


class Schedule(ConfigModel):
    """When a rule is active, in the site's local time."""

    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
    )
    start: time = time(0, 0)
    end: time = time(23, 59, 59)


class RuleBase(ConfigModel):
    name: Identifier
    zones: tuple[Identifier, ...] = Field(min_length=1, description="zones this rule watches")
    min_confidence: float = Field(default=0.4, ge=0, le=1)
    schedule: Schedule | None = None
    cooldown: Duration = Field(default=timedelta(minutes=5))


class IllegalParkingRule(RuleBase):
    type: Literal["illegal_parking"] = "illegal_parking"
    classes: tuple[str, ...] = ("car", "truck", "bus")
    dwell: Duration = Field(
        default=timedelta(minutes=3), description="standing time before alerting"
    )


class StreetVendingRule(RuleBase):
    type: Literal["street_vending"] = "street_vending"
    classes: tuple[str, ...] = ("stall",)
    dwell: Duration = Field(default=timedelta(minutes=5))


class SmokeRule(RuleBase):
    type: Literal["smoke"] = "smoke"
    classes: tuple[str, ...] = ("smoke",)
    window: Duration = Field(default=timedelta(seconds=10))
    min_fraction: float = Field(default=0.6, gt=0, le=1, description="share of frames with smoke")


CameraRule = Annotated[
    IllegalParkingRule | StreetVendingRule | SmokeRule, Field(discriminator="type")
]


class CameraSource(ConfigModel):
    url: str = Field(description="rtsp://, http(s)://, a file path, or synthetic:SCENARIO")
    detect_fps: float = Field(default=5, gt=0, le=60)


class CameraConfig(ConfigModel):
    id: Identifier
    gateway: Identifier
    name: str = ""
    placement: Placement
    source: CameraSource
    zones: tuple[Zone, ...] = ()
    rules: tuple[CameraRule, ...] = ()

    @model_validator(mode="after")
    def _rules_use_known_zones(self) -> CameraConfig:
        known = {zone.name for zone in self.zones}
        for rule in self.rules:
            missing = [name for name in rule.zones if name not in known]
            if missing:
                raise ValueError(
                    f"rule {rule.name!r} uses undefined zones {missing}; defined: {sorted(known)}"
                )
        return self
