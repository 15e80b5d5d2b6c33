"""Waterlogging sensors: calibration, depth levels and the simulated rain event for the demo.

Sensors measure the distance to the surface below; depth = mount height − distance. Levels
are per site (DOMAIN.md: 15 cm one lane, 25 cm underpass closure, 40 cm closure reports).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from citywatch.config.base import ConfigModel, Duration, Identifier
from citywatch.config.site import Placement


class DepthLevel(ConfigModel):
    """One named depth threshold; crossing it upwards raises or raises the alert level."""

    name: Identifier = Field(description="level name shown to the center, e.g. 'lane'")
    depth_cm: float = Field(gt=0, le=500, description="water depth that enters this level")
    label: str = Field(default="", description="display text, e.g. 单车道受阻")


DEFAULT_LEVELS = (
    DepthLevel(name="lane", depth_cm=15, label="一条车道积水 one lane affected"),
    DepthLevel(name="underpass_closure", depth_cm=25, label="下穿通道封闭 close underpasses"),
    DepthLevel(name="closure", depth_cm=40, label="道路封闭 close the road"),
)


class LevelPolicy(ConfigModel):
    """How readings become level changes without chatter (±1 cm noise, passing vehicles)."""

    levels: tuple[DepthLevel, ...] = Field(default=DEFAULT_LEVELS, min_length=1)
    hysteresis_cm: float = Field(
        default=2.0, ge=0, le=50, description="depth must fall this far below a level to leave it"
    )
    min_duration: Duration = Field(
        default=timedelta(seconds=30),
        description="a level must hold this long before it is reported (both ways)",
    )

    @model_validator(mode="after")
    def _levels_ascend(self) -> LevelPolicy:
        depths = [level.depth_cm for level in self.levels]
        if depths != sorted(depths) or len(set(depths)) != len(depths):
            raise ValueError(f"levels must have strictly ascending depth_cm, got {depths}")
        return self


class SimulatedRain(ConfigModel):
    """A rain event's hydrograph for the simulated sensor: rise, plateau, drain."""

    start_after: Duration = Field(default=timedelta(seconds=2))
    rise: Duration = Field(default=timedelta(minutes=10))
    plateau: Duration = Field(default=timedelta(minutes=10))
    drain: Duration = Field(default=timedelta(minutes=15))
    peak_depth_cm: float = Field(default=30.0, ge=0, le=300)
    noise_cm: float = Field(default=0.5, ge=0, le=10)


class SensorTransport(ConfigModel):
    type: Literal["simulated", "modbus_tcp", "modbus_rtu", "lorawan"] = "simulated"
    address: str | None = Field(default=None, description="host:port, serial device or devEUI")


class SensorConfig(ConfigModel):
    id: Identifier
    gateway: Identifier
    name: str = ""
    placement: Placement
    transport: SensorTransport = SensorTransport()
    mount_height_cm: float = Field(gt=0, le=2000, description="sensor face to dry road surface")
    blind_zone_cm: float = Field(
        default=20, ge=0, le=200, description="distances shorter than this are unreliable"
    )
    sample_interval: Duration = Field(default=timedelta(seconds=5))
    telemetry_interval: Duration = Field(default=timedelta(minutes=1))
    level_policy: LevelPolicy | None = Field(
        default=None, description="overrides the site's waterlogging.level_policy"
    )
    simulation: SimulatedRain | None = Field(
        default=None, description="drive this sensor from a simulated rain event"
    )
