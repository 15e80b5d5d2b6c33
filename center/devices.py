"""Devices as the center sees them: the config registry joined with what the stream tier
recorded (online/offline from retained status messages, the latest telemetry), and a water
depth curve of one sensor.

The registry says what a device is and where it stands; the database says how it is
doing. A device the registry lacks but that reported anyway is listed too (with what the
database knows), so a misconfigured gateway is visible rather than silently ignored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel

from citywatch.config import CitywatchConfig
from citywatch.config.sensor import SensorConfig

MAX_DEPTH_POINTS = 2000
"""Points of a depth curve: enough for a full-width chart, few enough to send at once."""


class DeviceView(BaseModel):
    id: str
    kind: str
    name: str
    gateway: str | None
    district: str | None
    street: str | None
    community: str | None
    lat: float | None
    lon: float | None
    state: str | None
    """online / offline from the device's last status message; None: never reported."""
    last_seen: datetime | None
    metrics: dict[str, Any]
    """The latest telemetry as the device sent it (cameras: fps, inference_ms, pipeline_ms,
    last_frame_age_s…; sensors: depth_cm, distance_mm, battery_pct…); {} when none."""
    metrics_at: datetime | None
    in_config: bool
    """False for a device that reported but the registry does not list."""


class DepthLevelView(BaseModel):
    name: str
    depth_cm: float
    label: str


class DepthSeries(BaseModel):
    device_id: str
    unit: str = "cm"
    since: datetime
    until: datetime
    bucket_s: float
    """Width of the time buckets readings were reduced to (each point: the bucket's first
    reading time and its highest depth, so a peak is never averaged away)."""
    points: list[tuple[datetime, float]]
    levels: list[DepthLevelView]


class UnknownDevice(LookupError):
    """No such device, or not one with the asked-for data (HTTP 404)."""


_DEVICES = """
WITH ids AS (
    SELECT unnest(%(ids)s::text[]) AS id
    UNION
    SELECT id FROM devices
)
SELECT ids.id, d.kind, d.name, d.gateway, d.district, d.street, d.community, d.lat, d.lon,
       d.state, d.last_seen, t.time AS metrics_at, t.metrics
FROM ids
LEFT JOIN devices d ON d.id = ids.id
LEFT JOIN LATERAL (
    SELECT time, metrics FROM telemetry WHERE device_id = ids.id ORDER BY time DESC LIMIT 1
) t ON true
"""


async def list_devices(conn: AsyncConnection, config: CitywatchConfig) -> list[DeviceView]:
    """Every device of the registry, then any unregistered reporter, in registry order."""
    registry = list(config.devices.all())
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_DEVICES, {"ids": [device.id for _, device in registry]})
        rows = {row["id"]: row for row in await cursor.fetchall()}
    views: list[DeviceView] = []
    for kind, device in registry:
        row = rows.pop(device.id, {})
        position = device.placement.position
        views.append(
            DeviceView(
                id=device.id,
                kind=kind,
                name=device.name,
                gateway=device.gateway,
                district=device.placement.district,
                street=device.placement.street,
                community=device.placement.community,
                lat=position.lat if position else None,
                lon=position.lon if position else None,
                state=row.get("state"),
                last_seen=row.get("last_seen"),
                metrics=row.get("metrics") or {},
                metrics_at=row.get("metrics_at"),
                in_config=True,
            )
        )
    for device_id in sorted(rows):
        row = rows[device_id]
        views.append(
            DeviceView(
                id=device_id,
                kind=row["kind"] or "unknown",
                name=row["name"] or "",
                in_config=False,
                **{key: row[key] for key in _DB_FIELDS},
                metrics=row["metrics"] or {},
            )
        )
    return views


_DB_FIELDS = ("gateway", "district", "street", "community", "lat", "lon", "state", "last_seen",
              "metrics_at")  # fmt: skip


def sensor(config: CitywatchConfig, device_id: str) -> SensorConfig:
    """The registry's waterlogging sensor ``device_id``; :class:`UnknownDevice` otherwise."""
    for kind, device in config.devices.all():
        if device.id != device_id:
            continue
        if isinstance(device, SensorConfig):
            return device
        raise UnknownDevice(f"device {device_id!r} is a {kind}, not a waterlogging sensor")
    raise UnknownDevice(f"no device {device_id!r} in the registry")


def depth_levels(config: CitywatchConfig, device: SensorConfig) -> list[DepthLevelView]:
    """The sensor's level thresholds; a level without a label borrows the site's label of
    the same name (sensor policies usually repeat the site's names, not its labels)."""
    site_labels = {level.name: level.label for level in config.waterlogging.level_policy.levels}
    return [
        DepthLevelView(
            name=level.name,
            depth_cm=level.depth_cm,
            label=level.label or site_labels.get(level.name) or level.name,
        )
        for level in config.level_policy(device).levels
    ]


def bucket_width(since: datetime, until: datetime, max_points: int) -> timedelta:
    """Bucket width giving at most ``max_points`` buckets over ``[since, until)``; readings
    sparser than that come through one per bucket, unchanged."""
    span = until - since
    if span <= timedelta(0):
        raise ValueError(f"until ({until.isoformat()}) must be after since ({since.isoformat()})")
    return max(span / max_points, timedelta(milliseconds=1))


_DEPTH = """
SELECT min(time) AS time, max((metrics->>'depth_cm')::float8) AS depth_cm
FROM telemetry
WHERE device_id = %(device)s AND time >= %(since)s AND time < %(until)s
      AND jsonb_typeof(metrics->'depth_cm') = 'number'
GROUP BY floor(extract(epoch FROM time - %(since)s) / %(bucket_s)s)
ORDER BY 1
"""


async def depth_series(
    conn: AsyncConnection,
    config: CitywatchConfig,
    device_id: str,
    *,
    since: datetime,
    until: datetime,
    max_points: int = MAX_DEPTH_POINTS,
) -> DepthSeries:
    """The sensor's depth readings in ``[since, until)``, at most ``max_points`` of them,
    with its level thresholds (one query)."""
    device = sensor(config, device_id)
    width = bucket_width(since, until, max_points)
    async with conn.cursor() as cursor:
        await cursor.execute(
            _DEPTH,
            {
                "device": device_id,
                "since": since,
                "until": until,
                "bucket_s": width.total_seconds(),
            },
        )
        points = [(time, float(depth)) for time, depth in await cursor.fetchall()]
    return DepthSeries(
        device_id=device_id,
        since=since,
        until=until,
        bucket_s=width.total_seconds(),
        points=points,
        levels=depth_levels(config, device),
    )
