"""The dock agent's pure core: liveness, geo-located alerts from a photo, dock telemetry.

No I/O and no clock: every function takes the time it should use. The shell
(:mod:`citywatch.edge.dock.agent`) feeds it decoded DJI messages and detections.

Which box point goes to the ground: near nadir (pitch steeper than −60°) an object is seen
from above, and its box centre is the centre of its footprint; the bottom edge would be off
by half the object's length. Obliquely, a standing object's box extends upwards in the
image from where it touches the ground, so the bottom-centre is the ground contact point.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime

from citywatch.config.dock import DockCamera, DockDetection
from citywatch.contracts import Alert, DeviceRef, Telemetry
from citywatch.contracts.messages import AlertKind, EvidenceRef, Location, Phase
from citywatch.edge.geo import BeyondHorizon, CameraPose, enu_to_lat_lon, pixel_to_enu
from citywatch.hardware.dock.dji import (
    AircraftOsd,
    DjiMessage,
    DockOsd,
    FlightTaskProgress,
    MediaUploaded,
    Topology,
)
from citywatch.models.detections import Detections

__all__ = [
    "NADIR_LIKE_PITCH_DEG",
    "DockLiveness",
    "PhotoAlerts",
    "alert_kind_for",
    "dock_telemetry",
    "photo_alerts",
]

NADIR_LIKE_PITCH_DEG = -60.0
_ALERT_KINDS = {
    "smoke": AlertKind.SMOKE,
    "stall": AlertKind.STREET_VENDING,
    "car": AlertKind.ILLEGAL_PARKING,
    "truck": AlertKind.ILLEGAL_PARKING,
}


@dataclass
class DockLiveness:
    """What the dock last said about itself and its aircraft, and when.

    Docks send no MQTT last will: the dock is online only while its OSD keeps arriving; the
    aircraft while it is in the topology and its own OSD keeps arriving.
    """

    dock_sn: str
    osd_timeout_s: float
    last_dock_osd_at: datetime | None = None
    last_aircraft_osd_at: datetime | None = None
    aircraft: tuple[str, ...] = ()
    dock_osd: DockOsd | None = None
    aircraft_osd: AircraftOsd | None = None
    progress: FlightTaskProgress | None = None
    media: int = 0

    def observe(self, message: DjiMessage, at: datetime) -> None:
        value = message.value
        if isinstance(value, Topology) and value.gateway_sn == self.dock_sn:
            self.aircraft = value.sub_devices
            if not value.sub_devices:
                self.aircraft_osd = None
        elif isinstance(value, DockOsd):
            self.dock_osd, self.last_dock_osd_at = value, at
        elif isinstance(value, AircraftOsd):
            self.aircraft_osd, self.last_aircraft_osd_at = value, at
        elif isinstance(value, FlightTaskProgress):
            self.progress = value
        elif isinstance(value, MediaUploaded):
            self.media += 1

    def dock_online(self, now: datetime) -> bool:
        return _fresh(self.last_dock_osd_at, now, self.osd_timeout_s)

    def aircraft_online(self, now: datetime) -> bool:
        return bool(self.aircraft) and _fresh(self.last_aircraft_osd_at, now, self.osd_timeout_s)

    def flight_active(self) -> bool:
        return self.progress is not None and self.progress.status in (
            "in_progress",
            "sent",
            "paused",
            "ready",
        )


def _fresh(at: datetime | None, now: datetime, timeout_s: float) -> bool:
    return at is not None and (now - at).total_seconds() <= timeout_s


def dock_telemetry(dock: DeviceRef, state: DockLiveness, now: datetime) -> Telemetry:
    """Dock and aircraft telemetry: liveness, battery, position and flight state."""
    metrics: dict[str, float] = {
        "dock_online": float(state.dock_online(now)),
        "aircraft_online": float(state.aircraft_online(now)),
        "flight_active": float(state.flight_active()),
        "photos": float(state.media),
    }
    if state.last_dock_osd_at is not None:
        metrics["osd_age_s"] = round((now - state.last_dock_osd_at).total_seconds(), 3)
    osd = state.dock_osd
    if osd is not None:
        _put(metrics, "dock_mode_code", osd.mode_code)
        _put(
            metrics, "drone_in_dock", None if osd.drone_in_dock is None else int(osd.drone_in_dock)
        )
        _put(metrics, "battery_percent", osd.drone_battery_percent)
        _put(metrics, "temperature_c", osd.temperature_c)
        _put(metrics, "wind_speed_ms", osd.wind_speed_ms)
    air = state.aircraft_osd
    if air is not None and state.aircraft_online(now):
        metrics["aircraft_lat"] = air.lat
        metrics["aircraft_lon"] = air.lon
        _put(metrics, "aircraft_elevation_m", air.elevation_m)
        _put(metrics, "battery_percent", air.battery_percent)
        _put(metrics, "aircraft_mode_code", air.mode_code)
    if state.progress is not None:
        _put(metrics, "flight_percent", state.progress.percent)
    stamp = int(now.timestamp() * 1000)
    return Telemetry(id=f"{dock.id}:tm:{stamp}", device=dock, event_time=now, metrics=metrics)


def _put(metrics: dict[str, float], key: str, value: float | None) -> None:
    if value is not None:
        metrics[key] = float(value)


def alert_kind_for(class_name: str, detection: DockDetection) -> AlertKind | None:
    """The alert a detected class raises, or ``None`` (cars only where parking is policed)."""
    kind = _ALERT_KINDS.get(class_name)
    if kind is AlertKind.ILLEGAL_PARKING and not detection.parking_alerts:
        return None
    return kind


@dataclass
class PhotoAlerts:
    alerts: list[Alert] = field(default_factory=list)
    ignored: int = 0
    """Detections below the confidence floor, of a class that raises nothing, or skyward."""


def photo_alerts(
    dock: DeviceRef,
    media: MediaUploaded,
    detections: Detections,
    *,
    image_width_px: int,
    image_height_px: int,
    camera: DockCamera,
    detection: DockDetection,
    fallback_height_m: float,
    event_time: datetime,
    evidence: EvidenceRef,
) -> PhotoAlerts:
    """One ``start`` alert per alert-worthy detection, placed on the ground under its box.

    The id derives from flight id + object key + detection index, so a re-delivered
    ``file_upload_callback`` (the dock resends until replied) yields the same alerts.
    """
    height = media.relative_altitude_m if media.relative_altitude_m else fallback_height_m
    pitch = (
        media.gimbal_pitch_deg if media.gimbal_pitch_deg is not None else camera.default_pitch_deg
    )
    pose = CameraPose(
        lat=media.lat,
        lon=media.lon,
        height_m=height,
        yaw_deg=media.gimbal_yaw_deg,
        pitch_deg=pitch,
        hfov_deg=camera.hfov_deg,
        width_px=image_width_px,
        height_px=image_height_px,
    )
    anchor = "centre" if pitch <= NADIR_LIKE_PITCH_DEG else "bottom_centre"
    key = hashlib.sha1(f"{media.flight_id}/{media.object_key}".encode()).hexdigest()[:16]
    result = PhotoAlerts()
    for index, det in enumerate(detections):
        kind = alert_kind_for(det.class_name, detection)
        if kind is None or det.confidence < detection.min_confidence:
            result.ignored += 1
            continue
        u = (det.x1 + det.x2) / 2
        v = (det.y1 + det.y2) / 2 if anchor == "centre" else det.y2
        try:
            east, north = pixel_to_enu(pose, u, v)
        except BeyondHorizon:
            result.ignored += 1
            continue
        lat, lon = enu_to_lat_lon(pose.lat, pose.lon, east, north)
        # Rough 1-sigma: GNSS (~1.5 m) plus 1° of gimbal-yaw error at this range.
        accuracy = 1.5 + math.hypot(east, north) * math.tan(math.radians(1.0))
        alert_id = f"{dock.id}:{key}:{index}"
        result.alerts.append(
            Alert(
                id=alert_id,
                episode_id=alert_id,
                seq=0,
                device=dock,
                kind=kind,
                rule=f"aerial-{det.class_name}",
                phase=Phase.START,
                event_time=event_time,
                location=Location(lat=lat, lon=lon, accuracy_m=round(accuracy, 1)),
                confidence=round(det.confidence, 3),
                evidence=(evidence,),
                attributes={
                    "class": det.class_name,
                    "flight_id": media.flight_id or "",
                    "object_key": media.object_key,
                    "box_xyxy": ",".join(f"{c:.0f}" for c in (det.x1, det.y1, det.x2, det.y2)),
                    "image_size": f"{image_width_px}x{image_height_px}",
                    "gimbal_yaw_deg": media.gimbal_yaw_deg,
                    "gimbal_pitch_deg": pitch,
                    "height_m": height,
                    "anchor": anchor,
                },
            )
        )
    return result
