"""Idempotent writes of alerts, telemetry and device state to PostgreSQL/TimescaleDB.

Every write is an upsert keyed by the message's stable id, so the at-least-once stream can
deliver a message twice and the database still holds it once. A receipt is sent only after
the write's transaction committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from citywatch.contracts import Alert, Status, Telemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaPosition:
    """Where a message was read from, kept with the row for tracing."""

    topic: str
    partition: int
    offset: int


class Store:
    """The stream tier's database writer (one pool per worker)."""

    def __init__(self, database_url: str, max_size: int = 4) -> None:
        self._pool = AsyncConnectionPool(database_url, min_size=1, max_size=max_size, open=False)

    async def open(self) -> None:
        await self._pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self._pool.close()

    async def store_alert(self, alert: Alert, position: KafkaPosition | None = None) -> bool:
        """Insert one alert message; False when it was already stored (a redelivery)."""
        point = alert.location
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """INSERT INTO alerts (id, event_time, episode_id, seq, site, device_kind, device_id,
                       kind, rule, phase, zone, lat, lon, confidence, track_id, evidence, attributes,
                       kafka_topic, kafka_partition, kafka_offset)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (id, event_time) DO NOTHING""",
                (
                    alert.id,
                    alert.event_time,
                    alert.episode_id,
                    alert.seq,
                    alert.device.site,
                    alert.device.kind.value,
                    alert.device.id,
                    alert.kind.value,
                    alert.rule,
                    alert.phase.value,
                    point.zone,
                    point.lat,
                    point.lon,
                    alert.confidence,
                    alert.track_id,
                    Jsonb([e.model_dump(mode="json") for e in alert.evidence]),
                    Jsonb(alert.attributes),
                    position.topic if position else None,
                    position.partition if position else None,
                    position.offset if position else None,
                ),
            )
            inserted = cursor.rowcount == 1
        if not inserted:
            log.info("alert already stored (redelivery)", extra={"alert_id": alert.id})
        return inserted

    async def store_telemetry(self, telemetry: Telemetry) -> bool:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                """INSERT INTO telemetry (id, time, device_id, metrics) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (id, time) DO NOTHING""",
                (telemetry.id, telemetry.event_time, telemetry.device.id, Jsonb(telemetry.metrics)),
            )
            return cursor.rowcount == 1

    async def store_status(self, status: Status) -> None:
        """Record a device's online/offline state; an older status never overwrites a newer one."""
        async with self._pool.connection() as conn:
            await conn.execute(
                """INSERT INTO devices (id, site, kind, state, last_seen, updated_at)
                   VALUES (%s, %s, %s, %s, %s, now())
                   ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state,
                       last_seen = EXCLUDED.last_seen, updated_at = now()
                   WHERE devices.last_seen IS NULL OR devices.last_seen <= EXCLUDED.last_seen""",
                (
                    status.device.id,
                    status.device.site,
                    status.device.kind.value,
                    status.state.value,
                    status.event_time,
                ),
            )
