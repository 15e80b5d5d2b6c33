"""Work orders, alerts and telemetry written straight into a center test database, the way
the stream tier writes them (same lifecycle functions, same rows as the center benchmark's
loader: ``benchmarks/seeding.py``), without running it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from benchmarks.seeding import (
    ALERT_COLUMNS,
    LINK_COLUMNS,
    ORDER_COLUMNS,
    alert_row,
    insert_rows,
    order_row,
)
from citywatch.config import CitywatchConfig
from citywatch.config.site import Placement
from citywatch.contracts import AlertKind
from citywatch.storage.workorders import EVENT_COLUMNS, event_values
from citywatch.workorder.lifecycle import WorkOrder, WorkOrderTransition, open_work_order
from citywatch.workorder.priority import route
from citywatch.workorder.sla import site_zone


def insert_alert(
    conn: psycopg.Connection, *, alert_id: str, device_id: str, device_kind: str, kind: str,
    when: datetime, district: str = "d-shifan", lat: float | None = None,
    lon: float | None = None, confidence: float = 0.9, evidence: list[dict] | None = None,
    attributes: dict | None = None, phase: str = "start",
) -> None:  # fmt: skip
    insert_rows(conn, "alerts", ALERT_COLUMNS, [alert_row(
        alert_id, alert_id.rsplit(".", 1)[0], 0, when, device_kind=device_kind,
        device_id=device_id, kind=kind, rule="test", phase=phase, district=district, lat=lat,
        lon=lon, confidence=confidence, received_at=datetime.now(UTC),
        evidence=json.dumps(evidence or []), attributes=json.dumps(attributes or {}),
    )], "ON CONFLICT DO NOTHING")  # fmt: skip


def insert_events(conn: psycopg.Connection, events: list[WorkOrderTransition]) -> None:
    """Audit-trail rows, in the column order both writers share."""
    insert_rows(conn, "workorder_events", EVENT_COLUMNS, map(event_values, events))


def seed_order(
    conn: psycopg.Connection, config: CitywatchConfig, *, kind: str = "illegal_parking",
    opened_at: datetime | None = None, district: str = "d-shifan", street: str | None = "s-chengdong",
    community: str | None = "c-renmin", lat: float = 31.43, lon: float = 119.48,
    priority: int = 3, device_id: str = "cam-renmin-101", device_kind: str = "camera",
    alerts: int = 1, evidence: list[dict] | None = None, order_id: str | None = None,
) -> WorkOrder:  # fmt: skip
    """One work order as the stream tier would open it (reported → filed), with its alerts
    and events, committed."""
    opened_at = opened_at or datetime.now(UTC) - timedelta(minutes=5)
    order_id = order_id or f"wo-{uuid.uuid4().hex[:12]}"
    alert_ids = [f"{order_id}.a{i}.0" for i in range(alerts)]
    order = open_work_order(
        id=order_id, routing=route(config.workflow, AlertKind(kind)), priority=priority,
        opened_at=opened_at,
        placement=Placement(district=district, street=street, community=community),
        alert_ids=alert_ids, calendar=config.workflow.sla.calendar,
        tz=site_zone(config.site.timezone),
    )  # fmt: skip
    for alert_id in alert_ids:
        insert_alert(
            conn, alert_id=alert_id, device_id=device_id, device_kind=device_kind, kind=kind,
            when=opened_at, district=district, lat=lat, lon=lon, evidence=evidence,
        )  # fmt: skip
    now = datetime.now(UTC)
    insert_rows(conn, "work_orders", ORDER_COLUMNS, [order_row(
        order, lat=lat, lon=lon, last_activity=opened_at, sources=[device_id],
        alert_count=alerts, max_confidence=0.9, updated_at=now,
    )])  # fmt: skip
    insert_rows(conn, "work_order_alerts", LINK_COLUMNS, [(order.id, a, now) for a in alert_ids])
    insert_events(conn, order.events)
    conn.commit()
    return order


def act_on(
    conn: psycopg.Connection, order: WorkOrder, action: str, *, time: datetime,
    actor: str = "tester", **args: object,
) -> WorkOrder:  # fmt: skip
    """Apply one lifecycle action at ``time`` (history with chosen times, e.g. a resolution
    after the due time) and store it the way the center's API does, committed."""
    from citywatch.workorder.lifecycle import apply

    before = len(order.events)
    apply(order, action, actor=actor, time=time, **args)
    conn.execute(
        """UPDATE work_orders SET state = %s, department = %s, due_at = %s,
               clock_started_at = %s, escalated_levels = %s, escalation_level = %s,
               resolved_at = %s, closed_at = %s, reopen_count = %s, seq = %s
           WHERE id = %s""",
        (order.state.value, order.department, order.due_at, order.clock_started_at,
         json.dumps(order.escalated_levels), order.escalation_level, order.resolved_at,
         order.closed_at, order.reopen_count, order.seq, order.id),
    )  # fmt: skip
    insert_events(conn, order.events[before:])
    conn.commit()
    return order


def insert_telemetry(
    conn: psycopg.Connection, device_id: str, readings: list[tuple[datetime, dict[str, float]]]
) -> None:
    """Telemetry rows of one device as the stream's sink writes them (committed)."""
    with conn.cursor().copy("COPY telemetry (id, time, device_id, metrics) FROM STDIN") as copy:
        for time, metrics in readings:
            copy.write_row((f"{device_id}:tm:{time.timestamp():.3f}", time, device_id,
                            json.dumps(metrics)))  # fmt: skip
    conn.commit()


def set_device_state(
    conn: psycopg.Connection, device_id: str, kind: str, state: str, last_seen: datetime
) -> None:
    """A device's online/offline row, as its last retained status message leaves it."""
    conn.execute(
        """INSERT INTO devices (id, site, kind, state, last_seen) VALUES (%s, 'demo', %s, %s, %s)
           ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, last_seen = EXCLUDED.last_seen""",
        (device_id, kind, state, last_seen),
    )
    conn.commit()
