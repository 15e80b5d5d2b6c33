"""SQL shared by the two writers of work orders: the stream tier (which opens, extends,
reopens and escalates them) and the command center (where people act on them).

Both write under the row lock of the work order and check its ``seq`` (the number of its
audit-trail events) against what they read, so neither overwrites the other's change: the
center reads with ``FOR UPDATE``; the stream tier, which keeps orders in memory, checks with
:func:`lock_current` just before it saves and starts over from the database when a person
acted in between (:class:`StaleWorkOrders`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import tzinfo
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row

from citywatch.config.workflow import Workflow
from citywatch.contracts import AlertKind
from citywatch.workorder.lifecycle import WorkOrder, WorkOrderState, WorkOrderTransition
from citywatch.workorder.sla import SlaClock


class StaleWorkOrders(Exception):
    """Work orders changed in the database since they were read (a person acted on them)."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = sorted(ids)
        super().__init__(f"work orders changed meanwhile: {', '.join(self.ids)}")


class UnknownTier(LookupError):
    """A stored work order names an SLA tier the config no longer has."""


EVENT_COLUMNS = (
    "id", "work_order_id", "seq", "event", "from_state", "to_state", "actor", "time", "reason",
    "data",
)  # fmt: skip


def event_values(e: WorkOrderTransition) -> tuple[object, ...]:
    """One ``workorder_events`` row, in :data:`EVENT_COLUMNS` order."""
    return (
        e.id, e.work_order_id, e.seq, e.event, e.from_state.value if e.from_state else None,
        e.to_state.value, e.actor, e.time, e.reason, json.dumps(e.data, default=str),
    )  # fmt: skip


async def insert_events(cursor: AsyncCursor[Any], events: Sequence[WorkOrderTransition]) -> None:
    """Append audit-trail events (idempotent by event id; the feed position is the DB's)."""
    if not events:
        return
    await cursor.executemany(
        f"""INSERT INTO workorder_events ({", ".join(EVENT_COLUMNS)})
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
        [event_values(e) for e in events],
    )


async def lock_current(conn: AsyncConnection, expected: Mapping[str, int]) -> None:
    """Lock the rows of ``expected`` (work order id → seq the writer read) until commit, and
    raise :class:`StaleWorkOrders` for those whose stored seq moved on. Ids not yet stored
    are new and pass.
    """
    if not expected:
        return
    cursor = await conn.execute(
        "SELECT id, seq FROM work_orders WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (sorted(expected),),
    )
    stale = [order_id for order_id, seq in await cursor.fetchall() if seq != expected[order_id]]
    if stale:
        raise StaleWorkOrders(stale)


def order_from_row(row: Mapping[str, Any], workflow: Workflow, tz: tzinfo) -> WorkOrder:
    """A :class:`WorkOrder` from a ``work_orders`` row (with an ``alert_ids`` column)."""
    tier = next((t for t in workflow.sla.tiers if t.id == row["sla_tier"]), None)
    if tier is None:
        raise UnknownTier(
            f"work order {row['id']} uses SLA tier {row['sla_tier']!r}, which workflow.sla.tiers"
            " no longer defines"
        )
    return WorkOrder(
        id=row["id"], kind=AlertKind(row["kind"]), category_code=row["category_code"],
        department=row["department"], priority=row["priority"],
        state=WorkOrderState(row["state"]), opened_at=row["opened_at"], due_at=row["due_at"],
        clock_started_at=row["clock_started_at"], sla=SlaClock(tier, workflow.sla.calendar, tz),
        district=row["district"], street=row["street"], community=row["community"],
        category_name=row["category_name"], escalation_level=row["escalation_level"],
        escalated_levels=list(row["escalated_levels"]), alert_ids=list(row["alert_ids"]),
        reopen_count=row["reopen_count"], resolved_at=row["resolved_at"],
        closed_at=row["closed_at"], seq=row["seq"],
    )  # fmt: skip


ALERT_IDS = """COALESCE((SELECT array_agg(alert_id ORDER BY added_at, alert_id)
    FROM work_order_alerts a WHERE a.work_order_id = w.id), '{}') AS alert_ids"""


async def load_for_update(
    conn: AsyncConnection, order_id: str, workflow: Workflow, tz: tzinfo
) -> WorkOrder | None:
    """One work order, its row locked until the transaction ends (None when unknown)."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            f"SELECT w.*, {ALERT_IDS} FROM work_orders w WHERE w.id = %s FOR UPDATE", (order_id,)
        )
        row = await cursor.fetchone()
    return None if row is None else order_from_row(row, workflow, tz)


async def save_action(
    conn: AsyncConnection, order: WorkOrder, events: Sequence[WorkOrderTransition]
) -> None:
    """Store what a person's action changed: the order's workflow columns (never the
    incident's dedup state, which is the stream tier's) and the new events.
    """
    async with conn.cursor() as cursor:
        await cursor.execute(
            """UPDATE work_orders SET state = %s, department = %s, due_at = %s,
                   clock_started_at = %s, escalated_levels = %s, escalation_level = %s,
                   resolved_at = %s, closed_at = %s, reopen_count = %s, seq = %s,
                   updated_at = now()
               WHERE id = %s""",
            (
                order.state.value, order.department, order.due_at, order.clock_started_at,
                json.dumps(order.escalated_levels), order.escalation_level, order.resolved_at,
                order.closed_at, order.reopen_count, order.seq, order.id,
            ),
        )  # fmt: skip
        await insert_events(cursor, events)


async def record_numbering_site(conn: AsyncConnection, site: str, timezone: str) -> None:
    """Tell the database which site and time zone its work-order numbers are for
    (``DEMO-20261206-0042``: migration 0008 numbers every new row by them)."""
    await conn.execute(
        """INSERT INTO work_order_numbering (singleton, site, timezone) VALUES (true, %s, %s)
           ON CONFLICT (singleton) DO UPDATE SET site = EXCLUDED.site, timezone = EXCLUDED.timezone
           WHERE (work_order_numbering.site, work_order_numbering.timezone)
                 IS DISTINCT FROM (EXCLUDED.site, EXCLUDED.timezone)""",
        (site, timezone),
    )


EARTH_RADIUS_M = 6_371_000.0

_NEAREST_OPEN = """
SELECT id, distance_m FROM (
    SELECT w.id, 2 * %(r)s * asin(sqrt(
               power(sin(radians(w.lat - %(lat)s) / 2), 2)
               + cos(radians(%(lat)s)) * cos(radians(w.lat))
                 * power(sin(radians(w.lon - %(lon)s) / 2), 2))) AS distance_m
    FROM work_orders w
    WHERE w.kind = %(kind)s AND w.state = ANY(%(open)s)
          AND w.lat BETWEEN %(lat)s - %(dlat)s AND %(lat)s + %(dlat)s
          AND w.lon BETWEEN %(lon)s - %(dlon)s AND %(lon)s + %(dlon)s
) near
WHERE distance_m <= %(radius)s
ORDER BY distance_m, id
LIMIT 1
"""


async def nearest_open_order(
    conn: AsyncConnection, kind: str, lat: float, lon: float, radius_m: float,
    open_states: Sequence[str],
) -> tuple[str, float] | None:  # fmt: skip
    """The open work order of ``kind`` nearest to ``(lat, lon)`` within ``radius_m`` (great-
    circle distance), with its distance; the bounding box lets the (lat, lon) index help."""

    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    cursor = await conn.execute(
        _NEAREST_OPEN,
        {"r": EARTH_RADIUS_M, "lat": lat, "lon": lon, "kind": kind, "open": list(open_states),
         "dlat": dlat, "dlon": dlon, "radius": radius_m},
    )  # fmt: skip
    row = await cursor.fetchone()
    return None if row is None else (str(row[0]), float(row[1]))


_INSERT_MANUAL = """
INSERT INTO work_orders (id, kind, category_code, category_name, department, priority, state,
    sla_tier, opened_at, due_at, clock_started_at, escalated_levels, district, street,
    community, lat, lon, incident_state, incident_closed_at, last_activity, alert_count,
    max_confidence, attributes, seq)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '[]', %s, %s, %s, %s, %s, 'closed', NULL,
        %s, 0, 0, %s, %s)
RETURNING number
"""


async def insert_manual_order(
    conn: AsyncConnection, order: WorkOrder, *, lat: float | None, lon: float | None,
    attributes: Mapping[str, object],
) -> str:  # fmt: skip
    """Store a work order a person opened (a 12345 call, a citizen's report) and its events;
    returns the number the database gave it. Its incident is stored closed with no close
    time, so the stream tier never loads it as a machine incident of its own."""
    async with conn.cursor() as cursor:
        await cursor.execute(
            _INSERT_MANUAL,
            (order.id, order.kind.value, order.category_code, order.category_name,
             order.department, order.priority, order.state.value, order.sla_tier,
             order.opened_at, order.due_at, order.clock_started_at, order.district,
             order.street, order.community, lat, lon, order.opened_at,
             json.dumps(dict(attributes), default=str), order.seq),
        )  # fmt: skip
        row = await cursor.fetchone()
        await insert_events(cursor, order.events)
    return str(row[0]) if row else ""
