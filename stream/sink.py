"""Batched, idempotent writes of alerts, telemetry and device state to PostgreSQL/TimescaleDB.

Every write is keyed by the message's stable id, so the at-least-once stream can deliver a
message twice and the database holds it once. An alert id names one alert forever: another
message with the same id and other content (another event time included) is a conflict,
returned to the caller to dead-letter with both versions, never a second row and never a
silent drop; an identical redelivery changes nothing. Batches go through ``COPY`` into a temporary
table and one ``INSERT … ON CONFLICT DO NOTHING RETURNING id``, which is both the fastest
path into PostgreSQL and the way to learn which messages are new: only new alerts are fed
to dedup, which makes the whole pipeline idempotent with the database as the only judge.
Callers pass a connection inside their transaction; receipts are sent after it commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic_core import to_json

from citywatch.contracts import Alert, Status, Telemetry
from citywatch.contracts.messages import Evidence

log = logging.getLogger(__name__)

ALERT_COLUMNS = (
    "id", "event_time", "episode_id", "seq", "site", "device_kind", "device_id", "kind", "rule",
    "phase", "zone", "lat", "lon", "confidence", "track_id", "evidence", "attributes",
    "kafka_topic", "kafka_partition", "kafka_offset", "district",
)  # fmt: skip
CONTENT_COLUMNS = ALERT_COLUMNS[: ALERT_COLUMNS.index("kafka_topic")]
"""What the device said; where the stream read it (a resend has a new offset) is not content."""


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


def json_text(value: object) -> str:
    """``value`` as JSON text for a ``json``/``jsonb`` column: pydantic-core's encoder (Rust),
    about five times faster than :func:`json.dumps` on the few small values of each row,
    with UTF-8 left as it is (jsonb stores the same value either way); what JSON has no
    type for is written as its ``str``."""
    return to_json(value, fallback=str).decode()


def _alert_values(row: AlertRow) -> tuple[object, ...]:
    alert, point, where = row.alert, row.alert.location, row.position
    return (
        alert.id, alert.event_time, alert.episode_id, alert.seq, alert.device.site,
        alert.device.kind.value, alert.device.id, alert.kind.value, alert.rule,
        alert.phase.value, point.zone, point.lat, point.lon, alert.confidence, alert.track_id,
        json_text(alert.evidence), json_text(alert.stored_attributes()),
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


@dataclass(frozen=True)
class AlertConflict:
    """A message reusing an alert id with other content: refused, with both versions."""

    row: AlertRow
    stored: Mapping[str, object]
    """The version that holds the id (the stored row's content, or the batch's first)."""

    @property
    def reason(self) -> str:
        return (
            f"alert id {self.row.alert.id!r} already names another alert (stored with event_time"
            f" {self.stored.get('event_time')}); a new alert needs a new id"
        )


@dataclass(frozen=True)
class StoredAlerts:
    """What :func:`insert_alerts` did with a batch."""

    new: set[str]
    """Ids stored now for the first time (only these go on to dedup)."""
    conflicts: list[AlertConflict] = field(default_factory=list)


async def insert_alerts(conn: AsyncConnection, rows: Sequence[AlertRow]) -> StoredAlerts:
    """Insert a batch of alerts: the ids that are new, and the rows whose id already names
    another alert (in the database or earlier in the batch), which are not stored."""
    if not rows:
        return StoredAlerts(set())
    first, conflicts = _first_of_each_id(rows)
    columns = ", ".join(ALERT_COLUMNS)
    staged = await stage(conn, "alerts", ALERT_COLUMNS, (values for _, values in first.values()))
    differs = " OR ".join(f"a.{c} IS DISTINCT FROM s.{c}" for c in CONTENT_COLUMNS)
    stored_json = ", ".join(f"'{c}', a.{c}" for c in CONTENT_COLUMNS)
    cursor = await conn.execute(
        f"SELECT s.id, jsonb_build_object({stored_json}) FROM {staged} s"
        f" JOIN alerts a ON a.id = s.id WHERE {differs}"
    )
    clashing = {alert_id: stored for alert_id, stored in await cursor.fetchall()}
    if clashing:
        conflicts += [AlertConflict(first[i][0], stored) for i, stored in clashing.items()]
        await conn.execute(f"DELETE FROM {staged} WHERE id = ANY(%s)", (list(clashing),))
        for conflict in conflicts:
            log.warning(
                "%s",
                conflict.reason,
                extra={"device": conflict.row.alert.device.id, "alert_id": conflict.row.alert.id},
            )
    cursor = await conn.execute(
        f"INSERT INTO alerts ({columns}) SELECT {columns} FROM {staged}"
        " ON CONFLICT (id, event_time) DO NOTHING RETURNING id"
    )
    return StoredAlerts({r[0] for r in await cursor.fetchall()}, conflicts)


def _first_of_each_id(
    rows: Sequence[AlertRow],
) -> tuple[dict[str, tuple[AlertRow, tuple[object, ...]]], list[AlertConflict]]:
    """The batch with one row per alert id (identical redeliveries dropped), each with its
    column values (computed once, for the comparison and the COPY), and the rows that reuse
    an id of an earlier row with other content."""
    first: dict[str, tuple[AlertRow, tuple[object, ...]]] = {}
    conflicts: list[AlertConflict] = []
    width = len(CONTENT_COLUMNS)
    for row in rows:
        values = _alert_values(row)
        held = first.get(row.alert.id)
        if held is None:
            first[row.alert.id] = (row, values)
        elif held[1][:width] != values[:width]:
            stored = {c: v for c, v in zip(CONTENT_COLUMNS, held[1][:width], strict=True)}
            conflicts.append(AlertConflict(row, stored))
    return first, conflicts


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
            (row_id, time, t.device.id, json_text(metrics))
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
