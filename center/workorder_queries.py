"""Reading work orders: the list with its filters and keyset pagination, and one order with
its alerts, evidence, timeline and SLA state.

The list is ordered newest first by ``(opened_at, id)`` and pages by keyset (the cursor is
the last row's key), so page 1,000 costs what page 1 costs; see benchmarks/center.py.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from citywatch.workorder.lifecycle import OPEN_STATES

OPEN = sorted(s.value for s in OPEN_STATES)
SUMMARY_COLUMNS = (
    "id", "kind", "category_code", "category_name", "department", "priority", "state",
    "opened_at", "due_at", "resolved_at", "closed_at", "escalation_level", "district", "street",
    "community", "lat", "lon", "alert_count", "max_confidence", "reopen_count", "seq",
    "updated_at", "escalated_levels", "clock_started_at", "sla_tier",
)  # fmt: skip
_SELECT = ", ".join(f"w.{c}" for c in SUMMARY_COLUMNS)
MAX_LIMIT = 500


class BadCursor(ValueError):
    """A cursor that this API did not hand out."""


@dataclass(frozen=True)
class Filters:
    """What a list request asks for (all optional; lists mean 'any of')."""

    state: Sequence[str] = ()
    open: bool | None = None
    kind: Sequence[str] = ()
    district: str | None = None
    street: str | None = None
    community: str | None = None
    department: str | None = None
    priority: Sequence[int] = ()
    since: datetime | None = None
    until: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None  # min lon, min lat, max lon, max lat
    overdue: bool | None = None
    escalated: bool | None = None


def encode_cursor(opened_at: datetime, order_id: str) -> str:
    raw = json.dumps([opened_at.isoformat(), order_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor of :func:`encode_cursor` names; :class:`BadCursor` for any other
    text (a forged one must not reach the database as a naive time or a NUL)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        opened_at, order_id = json.loads(raw)
        position = datetime.fromisoformat(opened_at)
        if position.tzinfo is None or not isinstance(order_id, str) or "\x00" in order_id:
            raise ValueError("not a cursor")
        position.astimezone(UTC)  # an offset that leaves the calendar raises here
        return position, order_id
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise BadCursor(f"cursor {cursor[:80]!r} is not one this API handed out") from exc


def list_query(
    filters: Filters, limit: int, cursor: tuple[datetime, str] | None, now: datetime
) -> tuple[str, list[Any]]:
    """The SQL and parameters of one list page (``limit + 1`` rows, to know if more follow)."""
    where: list[str] = []
    params: list[Any] = []

    def add(clause: str, *values: Any) -> None:
        where.append(clause)
        params.extend(values)

    if filters.state:
        add("w.state = ANY(%s)", list(filters.state))
    if filters.open is not None:
        add("w.state = ANY(%s)" if filters.open else "NOT (w.state = ANY(%s))", OPEN)
    if filters.kind:
        add("w.kind = ANY(%s)", list(filters.kind))
    for column in ("district", "street", "community", "department"):
        value = getattr(filters, column)
        if value is not None:
            add(f"w.{column} = %s", value)
    if filters.priority:
        add("w.priority = ANY(%s)", list(filters.priority))
    if filters.since is not None:
        add("w.opened_at >= %s", filters.since)
    if filters.until is not None:
        add("w.opened_at < %s", filters.until)
    if filters.bbox is not None:
        min_lon, min_lat, max_lon, max_lat = filters.bbox
        add(
            "w.lon BETWEEN %s AND %s AND w.lat BETWEEN %s AND %s",
            min_lon,
            max_lon,
            min_lat,
            max_lat,
        )
    if filters.overdue is not None:
        overdue = "(w.state = ANY(%s) AND w.due_at < %s)"
        add(overdue if filters.overdue else f"NOT {overdue}", OPEN, now)
    if filters.escalated is not None:
        add("w.escalation_level IS NOT NULL" if filters.escalated else "w.escalation_level IS NULL")
    if cursor is not None:
        add("(w.opened_at, w.id) < (%s, %s)", *cursor)
    sql = f"SELECT {_SELECT} FROM work_orders w"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY w.opened_at DESC, w.id DESC LIMIT %s"
    params.append(limit + 1)
    return sql, params


def summary(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The list's view of one work order (what the console's table and map show)."""
    is_open = row["state"] in OPEN
    due = row["due_at"]
    return {
        **{c: row[c] for c in SUMMARY_COLUMNS if c not in ("clock_started_at", "sla_tier")},
        "open": is_open,
        "overdue": bool(is_open and due is not None and due < now),
    }


async def list_page(
    conn: AsyncConnection, filters: Filters, limit: int, cursor: str | None, now: datetime
) -> dict[str, Any]:
    position = decode_cursor(cursor) if cursor else None
    sql, params = list_query(filters, limit, position, now)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "items": [summary(r, now) for r in rows],
        "next_cursor": encode_cursor(last["opened_at"], last["id"]) if more and last else None,
    }


async def order_row(conn: AsyncConnection, order_id: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_SELECT} FROM work_orders w WHERE w.id = %s", (order_id,))
        return await cur.fetchone()


ALERTS_SHOWN = 200


async def order_parts(conn: AsyncConnection, order_id: str) -> dict[str, list[dict[str, Any]]]:
    """The alerts (newest :data:`ALERTS_SHOWN`), evidence notices, timeline and attachments
    of one order."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT a.id, a.episode_id, a.device_kind, a.device_id, a.kind, a.rule, a.phase,
                      a.event_time, a.confidence, a.zone, a.lat, a.lon, a.attributes, a.evidence
               FROM work_order_alerts l JOIN alerts a ON a.id = l.alert_id
               WHERE l.work_order_id = %s ORDER BY a.event_time DESC, a.id LIMIT %s""",
            (order_id, ALERTS_SHOWN),
        )
        alerts = await cur.fetchall()
        await cur.execute(
            """SELECT e.alert_id, e.kind, e.content_type, e.event_time FROM evidence e
               WHERE e.alert_id IN (SELECT alert_id FROM work_order_alerts WHERE work_order_id = %s)
               ORDER BY e.event_time""",
            (order_id,),
        )
        notices = await cur.fetchall()
        await cur.execute(
            """SELECT feed_id, seq, event, from_state, to_state, actor, time, reason, data
               FROM workorder_events WHERE work_order_id = %s ORDER BY seq""",
            (order_id,),
        )
        timeline = await cur.fetchall()
        await cur.execute(
            """SELECT id, content_type, uploaded_by, uploaded_at FROM work_order_attachments
               WHERE work_order_id = %s ORDER BY uploaded_at""",
            (order_id,),
        )
        attachments = await cur.fetchall()
    return {"alerts": alerts, "notices": notices, "timeline": timeline, "attachments": attachments}
