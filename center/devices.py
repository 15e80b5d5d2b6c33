"""Devices as the center sees them: the config registry joined with what the stream tier
recorded (retained status messages and last wills, the latest telemetry), judged into
online / offline by :mod:`.device_liveness` (a gateway offline takes its devices with it),
and a water depth curve of one sensor.

The registry says what a device is and where it stands; the database says how it is
doing. A device the registry lacks but that reported anyway is listed too (with what the
database knows), so a misconfigured gateway is visible rather than silently ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel

from citywatch.center.device_liveness import Facts, ago, judge
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
    """online / offline judged from the facts below (see :mod:`.device_liveness`); None:
    never heard from."""
    state_reason: str | None = None
    """Why it is offline, in words ("gateway gw-1 offline since …", "silent for 12 min")."""
    reported_state: str | None = None
    """What its own last status message said (a camera's may still say online after its
    gateway died: ``state`` says offline then)."""
    last_seen: datetime | None
    """The newest of its last status message (last will included) and its newest telemetry."""
    last_seen_ago: str | None = None
    """``last_seen`` for people, at the time of the answer: "12 min ago"."""
    last_seen_age_s: float | None = None
    metrics: dict[str, Any]
    """The latest telemetry as the device sent it (cameras: fps, inference_ms, pipeline_ms,
    last_frame_age_s…; sensors: depth_cm, distance_mm, battery_pct…); {} when none."""
    metrics_at: datetime | None
    in_config: bool
    """False for a device that reported but the registry does not list."""


class _Judged(BaseModel):
    state: str | None
    state_reason: str | None
    reported_state: str | None
    last_seen: datetime | None
    last_seen_ago: str | None
    last_seen_age_s: float | None


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


async def list_devices(
    conn: AsyncConnection, config: CitywatchConfig, now: datetime | None = None
) -> list[DeviceView]:
    """Every device of the registry, then its gateways, then any unregistered reporter."""
    now = now or datetime.now(UTC)
    registry = list(config.devices.all())
    gateways = config.devices.gateways
    ids = [device.id for _, device in registry] + [gateway.id for gateway in gateways]
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_DEVICES, {"ids": ids})
        rows = {row["id"]: row for row in await cursor.fetchall()}
    silent_after = config.center.device_status.silent_after
    gateway_rows = {gateway.id: rows.get(gateway.id, {}) for gateway in gateways}

    def judged(row: dict[str, Any], gateway: str | None, is_gateway: bool = False) -> _Judged:
        above = gateway_rows.get(gateway or "", {})
        facts = Facts(
            reported_state=row.get("state"), status_at=row.get("last_seen"),
            telemetry_at=row.get("metrics_at"), gateway=gateway,
            gateway_state=above.get("state"), gateway_at=above.get("last_seen"),
            is_gateway=is_gateway,
        )  # fmt: skip
        verdict = judge(facts, now, silent_after)
        age = None if verdict.last_seen is None else now - verdict.last_seen
        return _Judged(
            state=verdict.state, state_reason=verdict.reason, reported_state=facts.reported_state,
            last_seen=verdict.last_seen, last_seen_ago=None if age is None else f"{ago(age)} ago",
            last_seen_age_s=None if age is None else age.total_seconds(),
        )  # fmt: skip

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
                metrics=row.get("metrics") or {},
                metrics_at=row.get("metrics_at"),
                in_config=True,
                **judged(row, device.gateway).model_dump(),
            )
        )
    for gateway in gateways:
        row = rows.pop(gateway.id, {})
        gateway_view = DeviceView(
            id=gateway.id, kind="gateway", name=gateway.name, gateway=None, district=None,
            street=None, community=None, lat=None, lon=None, metrics=row.get("metrics") or {},
            metrics_at=row.get("metrics_at"), in_config=True,
            **judged(row, None, is_gateway=True).model_dump(),
        )  # fmt: skip
        views.append(gateway_view)
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
                **judged(row, row["gateway"], is_gateway=row["kind"] == "gateway").model_dump(),
            )
        )
    return views


_DB_FIELDS = ("gateway", "district", "street", "community", "lat", "lon", "metrics_at")


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
