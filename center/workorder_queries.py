"""Reading work orders: the list with its filters and keyset pagination, and one order with
its alerts, evidence, timeline and SLA state.

The list is ordered newest first by ``(opened_at, id)``, or by urgency (what a duty officer
takes first: overdue orders, then priority 1 → 4, then the least time left) and pages by
keyset (the cursor is the last row's key), so page 1,000 costs what page 1 costs; see
benchmarks/center.py. An urgency cursor also carries the moment of its first page, so a
row that falls overdue while someone pages does not jump between pages.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from citywatch.workorder.lifecycle import OPEN_STATES

OPEN = sorted(s.value for s in OPEN_STATES)
SUMMARY_COLUMNS = (
    "id", "kind", "category_code", "category_name", "department", "priority", "state",
    "opened_at", "due_at", "resolved_at", "closed_at", "escalation_level", "district", "street",
    "community", "lat", "lon", "alert_count", "max_confidence", "reopen_count", "seq",
    "updated_at", "escalated_levels", "clock_started_at", "sla_tier", "number",
)  # fmt: skip
HIDDEN = ("clock_started_at", "sla_tier")
"""Columns read for the detail and the workflow, not shown in the list."""
_SELECT = ", ".join(f"w.{c}" for c in SUMMARY_COLUMNS) + (
    ", w.attributes->>'reported_via' AS reported_via"
)
"""The list's columns, and who reported the order (not the whole attributes document)."""
MAX_LIMIT = 500
Sort = Literal["newest", "urgency"]


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


@dataclass(frozen=True)
class UrgencyKey:
    """Where an urgency page ends: the moment the paging began and the last row's key."""

    now: datetime
    rank: int  # 0 overdue, 1 not
    priority: int
    due_at: datetime | None
    id: str


def _encode(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def encode_cursor(opened_at: datetime, order_id: str) -> str:
    return _encode([opened_at.isoformat(), order_id])


def encode_urgency_cursor(key: UrgencyKey) -> str:
    due = key.due_at.isoformat() if key.due_at else None
    return _encode(["u", key.now.isoformat(), key.rank, key.priority, due, key.id])


def _aware_time(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("not a time")
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("not a cursor")
    value.astimezone(UTC)  # an offset that leaves the calendar raises here
    return value


def _plain_id(value: object) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a cursor")
    return value


def decode_any_cursor(cursor: str) -> tuple[datetime, str] | UrgencyKey:
    """The position a cursor of :func:`encode_cursor` or :func:`encode_urgency_cursor`
    names; :class:`BadCursor` for any other text (a forged one must not reach the database
    as a naive time or a NUL)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        if isinstance(parts, list) and len(parts) == 6 and parts[0] == "u":
            _, now, rank, priority, due, order_id = parts
            if rank not in (0, 1) or not isinstance(priority, int) or isinstance(priority, bool):
                raise ValueError("not a cursor")
            return UrgencyKey(
                _aware_time(now), rank, priority, None if due is None else _aware_time(due),
                _plain_id(order_id),
            )  # fmt: skip
        opened_at, order_id = parts
        return _aware_time(opened_at), _plain_id(order_id)
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise BadCursor(f"cursor {cursor[:80]!r} is not one this API handed out") from exc


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position of a newest-first cursor (:func:`decode_any_cursor`)."""
    position = decode_any_cursor(cursor)
    if isinstance(position, UrgencyKey):
        raise BadCursor(f"cursor {cursor[:80]!r} pages the urgency order, not the newest")
    return position


def urgency_rank(row: Mapping[str, Any], now: datetime) -> int:
    """0 for an open order past due, 1 otherwise (the first key of the urgency order)."""
    return 0 if row["state"] in OPEN and row["due_at"] is not None and row["due_at"] < now else 1


_RANK = "(CASE WHEN w.state = ANY(%s) AND w.due_at < %s THEN 0 ELSE 1 END)"
_DUE = "coalesce(w.due_at, 'infinity'::timestamptz)"


def list_query(
    filters: Filters, limit: int, cursor: tuple[datetime, str] | UrgencyKey | None,
    now: datetime, sort: Sort = "newest",
) -> tuple[str, list[Any]]:  # fmt: skip
    """The SQL and parameters of one list page (``limit + 1`` rows, to know if more follow)."""
    if isinstance(cursor, UrgencyKey):
        now = cursor.now
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
    if sort == "urgency":
        if isinstance(cursor, UrgencyKey):
            add(
                f"({_RANK}, w.priority, {_DUE}, w.id)"
                " > (%s, %s, coalesce(%s::timestamptz, 'infinity'::timestamptz), %s)",
                OPEN, now, cursor.rank, cursor.priority, cursor.due_at, cursor.id,
            )  # fmt: skip
        elif cursor is not None:
            raise BadCursor("that cursor pages the newest-first order; ask with sort=newest")
        order = f" ORDER BY {_RANK}, w.priority, {_DUE}, w.id LIMIT %s"
        order_params: list[Any] = [OPEN, now]
    else:
        if isinstance(cursor, UrgencyKey):
            raise BadCursor("that cursor pages the urgency order; ask with sort=urgency")
        if cursor is not None:
            add("(w.opened_at, w.id) < (%s, %s)", *cursor)
        order, order_params = " ORDER BY w.opened_at DESC, w.id DESC LIMIT %s", []
    sql = f"SELECT {_SELECT} FROM work_orders w"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += order
    params.extend([*order_params, limit + 1])
    return sql, params


MANUAL_SOURCES = ("hotline", "citizen")
"""Who reports an order a person opened; any other order is a machine's."""


def summary(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The list's view of one work order (what the console's table and map show)."""
    is_open = row["state"] in OPEN
    due = row["due_at"]
    via = row.get("reported_via")
    return {
        **{c: row[c] for c in SUMMARY_COLUMNS if c not in HIDDEN},
        "reported_via": via if via in MANUAL_SOURCES else "machine",
        "open": is_open,
        "overdue": bool(is_open and due is not None and due < now),
    }


def next_cursor(last: Mapping[str, Any], sort: Sort, now: datetime) -> str:
    if sort == "newest":
        return encode_cursor(last["opened_at"], last["id"])
    key = UrgencyKey(now, urgency_rank(last, now), last["priority"], last["due_at"], last["id"])
    return encode_urgency_cursor(key)


async def list_page(
    conn: AsyncConnection, filters: Filters, limit: int, cursor: str | None, now: datetime,
    sort: Sort = "newest",
) -> dict[str, Any]:  # fmt: skip
    position = decode_any_cursor(cursor) if cursor else None
    if isinstance(position, UrgencyKey):
        now = position.now
    sql, params = list_query(filters, limit, position, now, sort)
    rows = await fetch_rows(conn, sql, params)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "items": [summary(r, now) for r in rows],
        "next_cursor": next_cursor(last, sort, now) if more and last else None,
    }


async def fetch_rows(
    conn: AsyncConnection, sql: str, params: Sequence[Any]
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def order_row(conn: AsyncConnection, order_id: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_SELECT}, w.attributes FROM work_orders w WHERE w.id = %s", (order_id,)
        )
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


EXPORT_LIMIT = 20_000
"""Rows in one CSV export of the list (a month of a busy district's orders)."""
CSV_COLUMNS = (
    "number", "id", "kind", "category_code", "category_name", "department", "priority", "state",
    "overdue", "opened_at", "due_at", "resolved_at", "closed_at", "escalation_level", "district",
    "street", "community", "lat", "lon", "alert_count", "reported_via",
)  # fmt: skip


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV with a UTF-8 byte-order mark, so a spreadsheet opened by double-click reads the
    Chinese names right; times in ISO 8601; cells that a spreadsheet would run as a formula
    are quoted with a leading apostrophe."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for values in rows:
        writer.writerow([_cell(v) for v in values])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def export_rows(
    conn: AsyncConnection, filters: Filters, now: datetime, sort: Sort = "newest"
) -> list[dict[str, Any]]:
    """The list's rows under ``filters`` for an export (at most :data:`EXPORT_LIMIT`)."""
    sql, params = list_query(filters, EXPORT_LIMIT - 1, None, now, sort)
    return [summary(r, now) for r in await fetch_rows(conn, sql, params)]
