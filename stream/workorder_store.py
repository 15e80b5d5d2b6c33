"""Persistence of work orders, their alerts, their audit trail and the dedup state behind
them.

A work order row also carries its incident's dedup state (episodes, sources, last activity,
open/closed), so a worker that starts — or takes over partitions — rebuilds both the dedup
engine and the work orders from the database alone. All writes are upserts keyed by id.
Every write bumps the row's ``incident_version``, and a writer whose copy is older than the
row is refused (:func:`check_incident_versions`): with several workers, one may hold an
incident another extended since (see :mod:`citywatch.stream.dedup_claim`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from citywatch.config.workflow import Workflow
from citywatch.contracts import AlertKind
from citywatch.storage.workorders import (
    ALERT_IDS,
    EVENT_COLUMNS,
    StaleWorkOrders,
    UnknownTier,
    event_values,
    lock_current,
    order_from_row,
)
from citywatch.stream.dedup import Incident, Position
from citywatch.stream.sink import json_text, stage
from citywatch.stream.workorder_numbers import number_staged
from citywatch.workorder.lifecycle import WorkOrder, WorkOrderTransition

__all__ = ["StaleWorkOrders", "load", "load_ids", "load_near", "save", "stored_versions"]

WORK_ORDER_COLUMNS = (
    "id", "kind", "category_code", "category_name", "department", "priority", "state",
    "sla_tier", "opened_at", "due_at", "clock_started_at", "escalated_levels", "resolved_at",
    "closed_at", "escalation_level", "district", "street", "community", "lat", "lon",
    "incident_state", "incident_closed_at", "last_activity", "episodes", "open_episodes",
    "sources", "alert_count", "max_confidence", "reopen_count", "attributes", "seq",
    "incident_version",
)  # fmt: skip
_COLUMNS = ", ".join(WORK_ORDER_COLUMNS)

_UPSERT = f"""
INSERT INTO work_orders ({_COLUMNS}, number, updated_at)
SELECT {_COLUMNS}, number, now() FROM work_orders_in
ON CONFLICT (id) DO UPDATE SET
    department = EXCLUDED.department, priority = EXCLUDED.priority, state = EXCLUDED.state,
    due_at = EXCLUDED.due_at, clock_started_at = EXCLUDED.clock_started_at,
    escalated_levels = EXCLUDED.escalated_levels, resolved_at = EXCLUDED.resolved_at,
    closed_at = EXCLUDED.closed_at, escalation_level = EXCLUDED.escalation_level,
    incident_state = EXCLUDED.incident_state, incident_closed_at = EXCLUDED.incident_closed_at,
    last_activity = EXCLUDED.last_activity, episodes = EXCLUDED.episodes,
    open_episodes = EXCLUDED.open_episodes, sources = EXCLUDED.sources,
    alert_count = EXCLUDED.alert_count, max_confidence = EXCLUDED.max_confidence,
    reopen_count = EXCLUDED.reopen_count, attributes = EXCLUDED.attributes,
    seq = GREATEST(work_orders.seq, EXCLUDED.seq), incident_version = EXCLUDED.incident_version,
    updated_at = now()
"""
# Feed positions are taken in this order (the order 0004_center.sql numbered old events in).
_EVENTS = f"""
INSERT INTO workorder_events ({", ".join(EVENT_COLUMNS)})
SELECT {", ".join(EVENT_COLUMNS)} FROM workorder_events_in ORDER BY time, work_order_id, seq
ON CONFLICT (id) DO NOTHING
"""
_LINKS = """
INSERT INTO work_order_alerts (work_order_id, alert_id)
SELECT work_order_id, alert_id FROM work_order_alerts_in ON CONFLICT DO NOTHING
"""
# A folded order's alerts move to the order that absorbed it (the link rows, not the alerts).
_MOVE = "UPDATE work_order_alerts SET work_order_id = %s WHERE work_order_id = %s"


def _row(order: WorkOrder, incident: Incident) -> tuple[object, ...]:
    point = incident.position
    return (
        order.id, order.kind.value, order.category_code, order.category_name, order.department,
        order.priority, order.state.value, order.sla_tier, order.opened_at, order.due_at,
        order.clock_started_at, json_text(order.escalated_levels), order.resolved_at,
        order.closed_at, order.escalation_level, order.district, order.street, order.community,
        point.lat if point else None, point.lon if point else None, incident.state,
        incident.closed_at, incident.last_activity, json_text(sorted(incident.episodes)),
        json_text(sorted(incident.open_episodes)), json_text(sorted(incident.sources)),
        len(incident.alert_ids), incident.max_confidence, incident.reopen_count,
        json_text(stored_attributes(incident)), order.seq, incident.version + 1,
    )  # fmt: skip


def stored_attributes(incident: Incident) -> dict[str, object]:
    """The work order's ``attributes`` column: the latest alert's attributes, the water
    level under ``level`` (where the rows written before it was a field keep it too), and
    ``recurrence_of`` / ``merged_into`` when set (the 复发 link, the order it was folded into)."""
    links = {"recurrence_of": incident.recurrence_of, "merged_into": incident.merged_into}
    extra = {name: value for name, value in links.items() if value is not None}
    if incident.level is not None:
        extra["level"] = incident.level
    return {**incident.attributes, **extra} if extra else incident.attributes


def restored_attributes(stored: dict[str, object]) -> tuple[str | None, dict[str, object]]:
    """The level and the other attributes of a stored work order (see :func:`stored_attributes`)."""
    attributes = dict(stored)
    level = attributes.pop("level", None)
    return (level if isinstance(level, str) else None), attributes


async def save(
    conn: AsyncConnection,
    changed: Iterable[tuple[WorkOrder, Incident]],
    events: Sequence[WorkOrderTransition],
    links: Sequence[tuple[str, str]],
    moves: Sequence[tuple[str, str]] = (),
) -> None:
    """Upsert work orders, insert their new events and alert links (all idempotent), then
    move the alert links of each folded order ``(folded, into)`` to the order it went into.

    First locks the stored rows and checks that nobody acted on them since this worker read
    them (their seq is what it was before this batch's events): :class:`StaleWorkOrders`
    otherwise, and the caller rebuilds its state from the database and retries. Each table
    takes its whole batch in one statement (COPY into a temporary twin, then one INSERT).
    """
    changed = list(changed)
    new_events = Counter(e.work_order_id for e in events)
    await lock_current(conn, {o.id: o.seq - new_events[o.id] for o, _ in changed})
    await check_incident_versions(conn, {i.id: i.version for _, i in changed})
    if changed:
        staged = await stage(
            conn, "work_orders", WORK_ORDER_COLUMNS, (_row(o, i) for o, i in changed)
        )
        await number_staged(conn, staged)  # new orders: one counter update a day, not a row
        await conn.execute(_UPSERT)
        for _, incident in changed:
            incident.version += 1  # (a rollback after this marks the whole state stale)
    if events:
        await stage(conn, "workorder_events", EVENT_COLUMNS, map(event_values, events))
        await conn.execute(_EVENTS)
    if links:
        await stage(conn, "work_order_alerts", ("work_order_id", "alert_id"), links)
        await conn.execute(_LINKS)
    for gone, into in moves:  # in the order they were folded: a chain ends in its survivor
        await conn.execute(_MOVE, (into, gone))


async def check_incident_versions(conn: AsyncConnection, expected: dict[str, int]) -> None:
    """:class:`StaleWorkOrders` for the incidents (id → version this worker read) that
    another worker wrote since (rows already locked by ``lock_current``; new ones pass)."""
    stored = await stored_versions(conn, list(expected))
    stale = [i for i, version in stored.items() if version != expected[i]]
    if stale:
        raise StaleWorkOrders(stale)


_LIVE = "(incident_state = 'open' OR incident_closed_at >= %s) AND state <> 'merged'"


async def load(
    conn: AsyncConnection, workflow: Workflow, tz: tzinfo, closed_since: datetime
) -> list[tuple[WorkOrder, Incident]]:
    """Work orders whose incident is open or closed after ``closed_since`` (still reopenable)."""
    return await _select(conn, workflow, tz, f"WHERE {_LIVE}", (closed_since,))


async def load_near(
    conn: AsyncConnection,
    workflow: Workflow,
    tz: tzinfo,
    closed_since: datetime,
    boxes: Sequence[tuple[str, float, float, float, float]],
) -> list[tuple[WorkOrder, Incident]]:
    """Like :func:`load`, for the incidents of a kind whose centre lies in one of ``boxes``
    ``(kind, south, north, west, east)`` (degrees)."""
    if not boxes:
        return []
    kinds, south, north, west, east = (list(column) for column in zip(*boxes, strict=True))
    # One index scan (work_orders_geo_idx) per box, not a scan of every work order.
    where = f"""WHERE w.id IN (
        SELECT near.id FROM unnest(%s::text[], %s::float8[], %s::float8[], %s::float8[],
                                   %s::float8[]) AS b(kind, south, north, west, east)
        CROSS JOIN LATERAL (
            SELECT id FROM work_orders n
            WHERE n.lat BETWEEN b.south AND b.north AND n.lon BETWEEN b.west AND b.east
              AND n.kind = b.kind) AS near)
      AND {_LIVE}"""
    return await _select(conn, workflow, tz, where, (kinds, south, north, west, east, closed_since))


async def load_ids(
    conn: AsyncConnection, workflow: Workflow, tz: tzinfo, ids: Sequence[str]
) -> list[tuple[WorkOrder, Incident]]:
    """The work orders of ``ids`` with their incidents, those not folded into another."""
    if not ids:
        return []
    return await _select(
        conn, workflow, tz, "WHERE w.id = ANY(%s) AND state <> 'merged'", (list(ids),)
    )


async def stored_versions(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, int]:
    """The stored ``incident_version`` of each of ``ids`` that is stored."""
    if not ids:
        return {}
    cursor = await conn.execute(
        "SELECT id, incident_version FROM work_orders WHERE id = ANY(%s)", (list(ids),)
    )
    return dict(await cursor.fetchall())


async def _select(
    conn: AsyncConnection, workflow: Workflow, tz: tzinfo, where: str, params: Sequence[object]
) -> list[tuple[WorkOrder, Incident]]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(f"SELECT w.*, {ALERT_IDS} FROM work_orders w {where}", params)
        records = await cursor.fetchall()
    restored = []
    for r in records:
        try:
            order = order_from_row(r, workflow, tz)
        except UnknownTier:
            continue  # the tier was removed from config; the order stays in the DB for people
        level, attributes = restored_attributes(r["attributes"])
        incident = Incident(
            id=r["id"], kind=AlertKind(r["kind"]),
            position=Position(r["lat"], r["lon"]) if r["lat"] is not None else None,
            opened_at=r["opened_at"], last_activity=r["last_activity"],
            closed_at=r["incident_closed_at"], state=r["incident_state"],
            episodes=set(r["episodes"]), open_episodes=set(r["open_episodes"]),
            alert_ids=list(r["alert_ids"]), sources=set(r["sources"]),
            reopen_count=r["reopen_count"], max_confidence=r["max_confidence"],
            level=level, attributes=attributes,
            recurrence_of=_text_or_none(attributes.pop("recurrence_of", None)),
            version=r["incident_version"],
        )  # fmt: skip
        restored.append((order, incident))
    return restored


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
