"""Rows of the work-order tables as the stream tier writes them, in one place for the two
writers outside it: the command center's tests (``tests/center/seed.py``: a few orders by
INSERT) and the center benchmark (``benchmarks/center_data.py``: a city's worth by COPY).

The column lists are the stream tier's own (its sink and work-order store), plus the columns
it leaves to the database's defaults (receipt, link and update times), which a seeder that
writes history must set itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg

from citywatch.storage.workorders import EVENT_COLUMNS, event_values
from citywatch.stream.sink import ALERT_COLUMNS as STREAM_ALERT_COLUMNS
from citywatch.stream.workorder_store import WORK_ORDER_COLUMNS
from citywatch.workorder.lifecycle import WorkOrder, WorkOrderTransition

ORDER_COLUMNS = (*WORK_ORDER_COLUMNS, "updated_at")
ALERT_COLUMNS = (*STREAM_ALERT_COLUMNS, "received_at")
LINK_COLUMNS = ("work_order_id", "alert_id", "added_at")
FEED_EVENT_COLUMNS = (*EVENT_COLUMNS, "feed_id")
"""Events with their feed position, for a loader that numbers the feed itself (the feed
trigger numbers events written with :data:`EVENT_COLUMNS`)."""
ALERTS_TOPIC = "citywatch.alerts"


def order_row(
    order: WorkOrder, *, lat: float, lon: float, last_activity: datetime, sources: Sequence[str],
    alert_count: int, max_confidence: float, updated_at: datetime,
    episodes: Iterable[str] = (), open_episodes: Iterable[str] = (),
    incident_closed_at: datetime | None = None,
) -> tuple[object, ...]:  # fmt: skip
    """A ``work_orders`` row (:data:`ORDER_COLUMNS`): the order and its incident's dedup
    state; the incident is open unless it has a closing time."""
    return (
        order.id, order.kind.value, order.category_code, order.category_name, order.department,
        order.priority, order.state.value, order.sla_tier, order.opened_at, order.due_at,
        order.clock_started_at, json.dumps(order.escalated_levels), order.resolved_at,
        order.closed_at, order.escalation_level, order.district, order.street, order.community,
        lat, lon, "open" if incident_closed_at is None else "closed", incident_closed_at,
        last_activity, json.dumps(sorted(episodes)), json.dumps(sorted(open_episodes)),
        json.dumps(list(sources)), alert_count, max_confidence, order.reopen_count, "{}",
        order.seq, 1, updated_at,  # incident_version: written once by one worker
    )  # fmt: skip


def alert_row(
    alert_id: str, episode_id: str, seq: int, when: datetime, *, device_kind: str,
    device_id: str, kind: str, rule: str, phase: str, district: str | None,
    lat: float | None, lon: float | None, confidence: float, received_at: datetime,
    zone: str | None = None, track_id: str | None = None, evidence: str = "[]",
    attributes: str = "{}", kafka_offset: int | None = None, site: str = "demo",
) -> tuple[object, ...]:  # fmt: skip
    """An ``alerts`` row (:data:`ALERT_COLUMNS`); ``evidence`` and ``attributes`` as JSON
    text; with a ``kafka_offset`` it was read from partition 0 of the alerts topic."""
    read = kafka_offset is not None
    return (
        alert_id, when, episode_id, seq, site, device_kind, device_id, kind, rule, phase, zone,
        lat, lon, confidence, track_id, evidence, attributes, ALERTS_TOPIC if read else None,
        0 if read else None, kafka_offset, district, received_at,
    )  # fmt: skip


def feed_event_row(event: WorkOrderTransition, feed_id: int) -> tuple[object, ...]:
    """A ``workorder_events`` row with its feed position (:data:`FEED_EVENT_COLUMNS`)."""
    return (*event_values(event), feed_id)


def insert_rows(
    conn: psycopg.Connection, table: str, columns: Sequence[str],
    rows: Iterable[Sequence[object]], conflict: str = "",
) -> None:  # fmt: skip
    """INSERT ``rows`` (in ``columns`` order) into ``table``; ``conflict`` e.g.
    ``ON CONFLICT DO NOTHING``. Not committed."""
    conn.cursor().executemany(
        f"INSERT INTO {table} ({', '.join(columns)})"
        f" VALUES ({', '.join(['%s'] * len(columns))}) {conflict}",
        list(rows),
    )
