"""Batched, idempotent writes of alerts, telemetry and device state to PostgreSQL/TimescaleDB.

Every write is keyed by the message's stable id, so the at-least-once stream can deliver a
message twice and the database holds it once. Batches go through ``COPY`` into a temporary
table and one ``INSERT … ON CONFLICT DO NOTHING RETURNING id``, which is both the fastest
path into PostgreSQL and the way to learn which messages are new: only new alerts are fed
to dedup, which makes the whole pipeline idempotent with the database as the only judge.
Callers pass a connection inside their transaction; receipts are sent after it commits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from citywatch.contracts import Alert, Status, Telemetry
from citywatch.contracts.messages import Evidence

log = logging.getLogger(__name__)

ALERT_COLUMNS = (
    "id", "event_time", "episode_id", "seq", "site", "device_kind", "device_id", "kind", "rule",
    "phase", "zone", "lat", "lon", "confidence", "track_id", "evidence", "attributes",
    "kafka_topic", "kafka_partition", "kafka_offset", "district",
)  # fmt: skip


@dataclass(frozen=True)
class KafkaPosition:
    """Where a message was read from, kept with the row for tracing."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class AlertRow:
    """An alert with what the stream knows about it beyond the message."""

    alert: Alert
    position: KafkaPosition | None = None
    district: str | None = None


def _alert_values(row: AlertRow) -> tuple[object, ...]:
    alert, point, where = row.alert, row.alert.location, row.position
    return (
        alert.id, alert.event_time, alert.episode_id, alert.seq, alert.device.site,
        alert.device.kind.value, alert.device.id, alert.kind.value, alert.rule,
        alert.phase.value, point.zone, point.lat, point.lon, alert.confidence, alert.track_id,
        json.dumps([e.model_dump(mode="json") for e in alert.evidence]),
        json.dumps(alert.attributes),
        where.topic if where else None, where.partition if where else None,
        where.offset if where else None, row.district,
    )  # fmt: skip


async def stage(
    conn: AsyncConnection, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> str:
    """COPY ``rows`` into a temporary twin of ``table`` (emptied at commit); its name.

    The caller moves them on with one ``INSERT INTO table … SELECT … FROM`` the twin, which
    upserts a whole batch in one statement (row triggers of ``table`` still fire).
    """
    staged = f"{table}_in"
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staged} (LIKE {table} INCLUDING DEFAULTS)"
        " ON COMMIT DELETE ROWS"
    )
    async with conn.cursor().copy(f"COPY {staged} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)
    return staged


async def insert_alerts(conn: AsyncConnection, rows: Sequence[AlertRow]) -> set[str]:
    """Insert a batch of alerts; return the ids that were not stored before."""
    if not rows:
        return set()
    columns = ", ".join(ALERT_COLUMNS)
    staged = await stage(conn, "alerts", ALERT_COLUMNS, map(_alert_values, rows))
    cursor = await conn.execute(
        f"INSERT INTO alerts ({columns}) SELECT DISTINCT ON (id, event_time) {columns} FROM {staged}"
        " ON CONFLICT (id, event_time) DO NOTHING RETURNING id"
    )
    return {r[0] for r in await cursor.fetchall()}


async def insert_telemetry(conn: AsyncConnection, batch: Sequence[Telemetry]) -> int:
    """Insert a batch of telemetry messages, one row per reading (a message's ``earlier``
    readings included); return how many rows were new."""
    if not batch:
        return 0
    staged = await stage(
        conn,
        "telemetry",
        ("id", "time", "device_id", "metrics"),
        (
            (row_id, time, t.device.id, json.dumps(metrics))
            for t in batch
            for row_id, time, metrics in t.readings()
        ),
    )
    cursor = await conn.execute(
        f"INSERT INTO telemetry SELECT DISTINCT ON (id, time) * FROM {staged}"
        " ON CONFLICT (id, time) DO NOTHING"
    )
    return cursor.rowcount


async def insert_evidence(conn: AsyncConnection, notices: list[Evidence]) -> int:
    """Store evidence notices (idempotent by id); the number that were new."""
    if not notices:
        return 0
    cursor = conn.cursor()
    await cursor.executemany(
        """INSERT INTO evidence (id, alert_id, device_id, kind, uri, content_type, sha256,
                                 event_time)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
        [
            (n.id, n.alert_id, n.device.id, n.ref.kind.value, n.ref.uri, n.ref.content_type,
             n.ref.sha256, n.event_time)
            for n in notices
        ],
    )  # fmt: skip
    return max(cursor.rowcount, 0)


async def upsert_status(conn: AsyncConnection, status: Status) -> None:
    """Record a device's online/offline state; an older status never overwrites a newer one."""
    await conn.execute(
        """INSERT INTO devices (id, site, kind, state, last_seen, updated_at)
           VALUES (%s, %s, %s, %s, %s, now())
           ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state,
               last_seen = EXCLUDED.last_seen, updated_at = now()
           WHERE devices.last_seen IS NULL OR devices.last_seen <= EXCLUDED.last_seen""",
        (status.device.id, status.device.site, status.device.kind.value, status.state.value,
         status.event_time),
    )  # fmt: skip


def open_pool(database_url: str, max_size: int = 4) -> AsyncConnectionPool:
    """A connection pool for one worker (opened by the caller with ``await pool.open()``)."""
    return AsyncConnectionPool(database_url, min_size=1, max_size=max_size, open=False)
