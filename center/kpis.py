"""The center's KPIs ("三率", 结案率, 按期处置率) over work orders, and the open-order summary.

What each figure means here (the domain's names, computed from what citywatch records):

Population: the work orders *opened* in ``[since, until)``, grouped by owning department,
by kind, or by the day they were opened in the site's time zone. Every count is of orders
(not events), except ``verified`` and ``rework``, which count verification outcomes.

- ``total``: orders opened in the range.
- ``dispatched`` (派遣): orders that were ever dispatched (a ``dispatched`` event).
- ``responded`` (响应): dispatched orders the department signed for (a ``signed`` event).
  **response_rate** = responded / dispatched.
- ``handled`` (处置): dispatched orders resolved and not sent back — ``resolved_at`` is set
  or the state is resolved, verified or closed. **handling_rate** = handled / dispatched.
- ``verified`` / ``rework``: passed and failed verifications (核查 / 返工) of these orders.
  **satisfaction_rate** is a *proxy*: citywatch has no call-back (回访) data, so it reports
  the share of verifications that passed, verified / (verified + rework) — how often the
  center was satisfied with a fix, not how often the citizen was.
- ``closed`` (结案): orders whose state is closed. **closure_rate** = closed / total
  (false positives stay in the denominator; ``false_positive`` is reported beside it).
- ``recurrences`` (复发): orders that are a problem come back — linked to an earlier order
  (``recurrence: new_linked``) or reopened (``reopen``: a ``reopened`` event, by the
  stream on a recurrence or by a person).
- ``merged`` (并单): orders folded into an older order of the same problem when late data
  showed they were one; they stay in ``total`` (they were opened) and are listed beside it.
- ``on_time`` (按期处置): handled orders resolved no later than their due time. The due time
  is the current one, so an approved extension (延期) moves it, as 12345 rules count it.
  **on_time_rate** = on_time / handled.

A rate is ``None`` when its denominator is 0 (no data is not 0 %). Numerators are counted
among dispatched orders, so no rate can exceed 1 even for orders imported half-way through
the loop. Each report is one SQL query (the range's orders, joined with their loop events
read through the events' time index), so it stays fast over 100,000 orders.

The summary (:func:`summary`) is the situation now: open orders (state not resolved,
verified, closed or false_positive), the overdue among them (due before now), the
escalated among them, and every order by state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Literal

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from pydantic import BaseModel

from citywatch.config.workflow import Workflow
from citywatch.workorder.lifecycle import GRID_LEVELS, OPEN_STATES, WorkOrderState

GroupBy = Literal["department", "kind", "day"]


def rate(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator``, or ``None`` when there is nothing to divide by."""
    if denominator <= 0:
        return None
    return numerator / denominator


@dataclass(frozen=True)
class KpiCounts:
    """The counts behind one row of the KPI report (definitions: module docstring)."""

    total: int = 0
    dispatched: int = 0
    responded: int = 0
    handled: int = 0
    on_time: int = 0
    closed: int = 0
    false_positive: int = 0
    verified: int = 0
    rework: int = 0
    recurrences: int = 0
    merged: int = 0

    def __add__(self, other: KpiCounts) -> KpiCounts:
        return KpiCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def response_rate(self) -> float | None:
        return rate(self.responded, self.dispatched)

    @property
    def handling_rate(self) -> float | None:
        return rate(self.handled, self.dispatched)

    @property
    def satisfaction_rate(self) -> float | None:
        """Passed share of verifications: a proxy, there is no call-back data."""
        return rate(self.verified, self.verified + self.rework)

    @property
    def closure_rate(self) -> float | None:
        return rate(self.closed, self.total)

    @property
    def on_time_rate(self) -> float | None:
        return rate(self.on_time, self.handled)


def total_of(counts: Iterable[KpiCounts]) -> KpiCounts:
    """The counts of several groups together (every order is in exactly one group)."""
    result = KpiCounts()
    for part in counts:
        result = result + part
    return result


class KpiRow(BaseModel):
    """One group of the report: its counts and the rates computed from them."""

    key: str
    label: str
    total: int
    dispatched: int
    responded: int
    handled: int
    on_time: int
    closed: int
    false_positive: int
    verified: int
    rework: int
    recurrences: int
    merged: int
    response_rate: float | None
    handling_rate: float | None
    satisfaction_rate: float | None
    closure_rate: float | None
    on_time_rate: float | None

    @classmethod
    def of(cls, key: str, label: str, counts: KpiCounts) -> KpiRow:
        return cls(
            key=key,
            label=label,
            **{f.name: getattr(counts, f.name) for f in fields(counts)},
            response_rate=counts.response_rate,
            handling_rate=counts.handling_rate,
            satisfaction_rate=counts.satisfaction_rate,
            closure_rate=counts.closure_rate,
            on_time_rate=counts.on_time_rate,
        )


class KpiReport(BaseModel):
    since: datetime
    until: datetime
    by: GroupBy
    timezone: str
    rows: list[KpiRow]
    totals: KpiRow
    """All groups together (key ``"all"``)."""


class KpiSummary(BaseModel):
    open: int
    overdue: int
    escalated: int
    by_state: dict[str, int]
    """Every order by state (all states listed, 0 when none)."""
    by_escalation_level: dict[str, int]
    """Open orders by the level they were escalated to (community, street, district)."""


_GROUP_KEYS: Mapping[GroupBy, sql.Composable] = {
    "department": sql.SQL("w.department"),
    "kind": sql.SQL("w.kind"),
    "day": sql.SQL("(w.opened_at AT TIME ZONE %(tz)s)::date"),
}

_HANDLED = "(w.resolved_at IS NOT NULL OR w.state IN ('resolved', 'verified', 'closed'))"

EVENT_CLOCK_SKEW = timedelta(days=1)
"""Events are looked up from this long before ``since``: an order's events follow its
opening, but opened_at comes from a gateway's clock and actions from the center's."""

_REPORT = sql.SQL(
    """
WITH loop AS (
    SELECT e.work_order_id,
           bool_or(e.event = 'dispatched') AS dispatched,
           bool_or(e.event = 'signed') AS signed,
           count(*) FILTER (WHERE e.event = 'verified') AS verified,
           count(*) FILTER (WHERE e.event = 'rework') AS rework,
           bool_or(e.event = 'reopened') AS reopened
    FROM workorder_events e
    WHERE e.time >= %(events_since)s
          AND e.event IN ('dispatched', 'signed', 'verified', 'rework', 'reopened')
    GROUP BY e.work_order_id
)
SELECT {key} AS key,
       count(*) AS total,
       count(*) FILTER (WHERE l.dispatched) AS dispatched,
       count(*) FILTER (WHERE l.dispatched AND l.signed) AS responded,
       count(*) FILTER (WHERE l.dispatched AND {handled}) AS handled,
       count(*) FILTER (WHERE l.dispatched AND {handled}
                        AND w.resolved_at IS NOT NULL AND w.resolved_at <= w.due_at) AS on_time,
       count(*) FILTER (WHERE w.state = 'closed') AS closed,
       count(*) FILTER (WHERE w.state = 'false_positive') AS false_positive,
       coalesce(sum(l.verified), 0)::int AS verified,
       coalesce(sum(l.rework), 0)::int AS rework,
       count(*) FILTER (WHERE w.attributes ? 'recurrence_of' OR l.reopened) AS recurrences,
       count(*) FILTER (WHERE w.state = 'merged') AS merged
FROM work_orders w LEFT JOIN loop l ON l.work_order_id = w.id
WHERE w.opened_at >= %(since)s AND w.opened_at < %(until)s
GROUP BY 1
ORDER BY 1
"""
)
# The events are filtered by time (the index on workorder_events.time) rather than joined to
# the range's orders first: for the usual recent ranges that reads only recent events, and
# the planner still hash-joins when the range covers most of the table.


def _labels(by: GroupBy, workflow: Workflow) -> dict[str, str]:
    if by == "department":
        return {d.id: d.name for d in workflow.departments}
    if by == "kind":
        return {c.kind.value: c.name for c in workflow.categories}
    return {}


async def report(
    conn: AsyncConnection,
    *,
    since: datetime,
    until: datetime,
    by: GroupBy,
    timezone: str,
    workflow: Workflow,
) -> KpiReport:
    """The KPI rows of the orders opened in ``[since, until)`` grouped ``by`` (one query)."""
    query = _REPORT.format(key=_GROUP_KEYS[by], handled=sql.SQL(_HANDLED))
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            query,
            {"since": since, "until": until, "tz": timezone,
             "events_since": since - EVENT_CLOCK_SKEW},
        )  # fmt: skip
        records = await cursor.fetchall()
    labels = _labels(by, workflow)
    names = [f.name for f in fields(KpiCounts)]
    rows: list[KpiRow] = []
    parts: list[KpiCounts] = []
    for record in records:
        key = record["key"].isoformat() if isinstance(record["key"], date) else str(record["key"])
        counts = KpiCounts(**{name: int(record[name]) for name in names})
        parts.append(counts)
        rows.append(KpiRow.of(key, labels.get(key, key), counts))
    return KpiReport(
        since=since,
        until=until,
        by=by,
        timezone=timezone,
        rows=rows,
        totals=KpiRow.of("all", "all", total_of(parts)),
    )


def report_table(report: KpiReport) -> tuple[list[str], list[list[object]]]:
    """The report as a table for CSV: one row per group, then the totals; rates as
    fractions (0–1), empty when there is nothing to divide by."""
    header = ["key", "label", *(n for n in KpiRow.model_fields if n not in ("key", "label"))]
    rows = [[getattr(row, name) for name in header] for row in [*report.rows, report.totals]]
    return header, rows


_SUMMARY = """
SELECT state, escalation_level, count(*) AS orders,
       count(*) FILTER (WHERE due_at < %(now)s) AS past_due
FROM work_orders
GROUP BY state, escalation_level
"""


@dataclass(frozen=True)
class StateCount:
    """Orders in one (state, escalation level) cell, and how many of them are past due."""

    state: str
    escalation_level: str | None
    orders: int
    past_due: int


def summarize(cells: Iterable[StateCount]) -> KpiSummary:
    """The summary from per-(state, escalation level) counts; pure, so testable alone."""
    open_values = {s.value for s in OPEN_STATES}
    by_state = {s.value: 0 for s in WorkOrderState}
    by_level = {level: 0 for level in GRID_LEVELS}
    open_orders = overdue = escalated = 0
    for cell in cells:
        by_state[cell.state] = by_state.get(cell.state, 0) + cell.orders
        if cell.state not in open_values:
            continue
        open_orders += cell.orders
        overdue += cell.past_due
        if cell.escalation_level is not None:
            escalated += cell.orders
            by_level[cell.escalation_level] = by_level.get(cell.escalation_level, 0) + cell.orders
    return KpiSummary(
        open=open_orders,
        overdue=overdue,
        escalated=escalated,
        by_state=by_state,
        by_escalation_level=by_level,
    )


async def summary(conn: AsyncConnection, *, now: datetime) -> KpiSummary:
    """Open, overdue and escalated orders as of ``now`` (one query)."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_SUMMARY, {"now": now})
        records = await cursor.fetchall()
    return summarize(
        StateCount(r["state"], r["escalation_level"], int(r["orders"]), int(r["past_due"]))
        for r in records
    )
