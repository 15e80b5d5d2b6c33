"""Drone docks (DJI-Cloud-API style): the dock, its patrol route, camera, link and detection."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field

from citywatch.config.base import ConfigModel, Duration, GeoPoint, Identifier
from citywatch.config.secrets import SecretRef
from citywatch.config.site import Placement


class DockCamera(ConfigModel):
    """The aircraft's camera: DJI's media metadata carries no field of view, so config does."""

    hfov_deg: float = Field(
        default=84.0, gt=10, lt=170, description="horizontal field of view of the photos"
    )
    width_px: int = Field(default=1280, ge=64, le=8192, description="photo width (simulator)")
    height_px: int = Field(default=960, ge=64, le=8192, description="photo height (simulator)")
    default_pitch_deg: float = Field(
        default=-90.0,
        ge=-90,
        le=-5,
        description="gimbal pitch assumed when a photo's metadata has none (−90: nadir)",
    )


class PlantedObject(ConfigModel):
    """Something the simulated dock's photos show at a known ground position."""

    kind: Literal["car", "truck", "stall", "smoke"]
    position: GeoPoint
    heading_deg: float = Field(default=0.0, ge=0, lt=360, description="long axis / wind")


class DockSimulation(ConfigModel):
    """The simulated dock's flight: when it takes off, how fast it flies, what it sees."""

    takeoff_after: Duration = Field(default=timedelta(seconds=5), description="after start")
    speed_ms: float = Field(default=10.0, gt=0, le=25, description="ground speed on the route")
    photo_interval: Duration = Field(
        default=timedelta(seconds=4), description="a photo every this often in flight"
    )
    repeat_every: Duration | None = Field(
        default=None, description="fly the patrol again this long after the previous take-off"
    )
    planted: tuple[PlantedObject, ...] = Field(default=(), description="objects on the ground")


class SimulatedDockLink(ConfigModel):
    """The dock runs in-process (hardware/dock/sim.py); no broker needed."""

    type: Literal["simulated"]
    time_scale: float = Field(
        default=1.0, gt=0, le=100, description="simulated seconds per wall second"
    )


class MqttDockLink(ConfigModel):
    """A real dock: the DJI Cloud API topics on the broker the dock is bound to."""

    type: Literal["mqtt"]
    url: str = Field(pattern=r"^mqtts?://[^/:]+(:\d+)?/?$", description="mqtt://host:port")
    username: str | None = None
    password: SecretRef | None = None


DockLink = Annotated[SimulatedDockLink | MqttDockLink, Field(discriminator="type")]


class DockDetection(ConfigModel):
    """Which detector looks at the photos, and which of its classes raise alerts."""

    detector: Literal["aerial_classical"] = Field(
        default="aerial_classical",
        description="weight-free colour/shape detector; a YOLO option follows with the model",
    )
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    parking_alerts: bool = Field(
        default=False,
        description="raise illegal_parking for cars and trucks (only where the photo area is a"
        " no-parking area: off by default)",
    )


class DockConfig(ConfigModel):
    id: Identifier
    gateway: Identifier
    name: str = ""
    serial: str = Field(min_length=1, description="dock serial number (gateway sn in DJI topics)")
    aircraft_serial: str | None = Field(
        default=None, description="the aircraft's sn; learnt from update_topo when absent"
    )
    placement: Placement
    patrol_route: tuple[GeoPoint, ...] = Field(default=(), description="waypoints of the patrol")
    altitude_m: float = Field(default=60, gt=0, le=500, description="patrol height above ground")
    camera: DockCamera = DockCamera()
    detection: DockDetection = DockDetection()
    link: DockLink = Field(
        description="where the dock's messages come from: {type: mqtt, url: ...} for a real"
        " dock, {type: simulated} for the built-in simulator (no default: a real site must"
        " never fall back to the simulator by omission)",
    )
    simulation: DockSimulation = DockSimulation()
    media_dir: str | None = Field(
        default=None,
        description="folder the dock's photos are synced into, by object key;"
        " default: <data dir>/media-<dock id>",
    )
    osd_timeout: Duration = Field(
        default=timedelta(seconds=15),
        description="offline when no OSD arrived this long (docks send no last will)",
    )
    telemetry_interval: Duration = Field(default=timedelta(seconds=10))
