"""Work orders, alerts and telemetry written straight into a center test database, the way
the stream tier writes them (same lifecycle functions, same store), without running it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from citywatch.config import CitywatchConfig
from citywatch.config.site import Placement
from citywatch.contracts import AlertKind
from citywatch.workorder.lifecycle import WorkOrder, open_work_order
from citywatch.workorder.priority import route
from citywatch.workorder.sla import site_zone


def insert_alert(
    conn: psycopg.Connection, *, alert_id: str, device_id: str, device_kind: str, kind: str,
    when: datetime, district: str = "d-shifan", lat: float | None = None,
    lon: float | None = None, confidence: float = 0.9, evidence: list[dict] | None = None,
    attributes: dict | None = None, phase: str = "start",
) -> None:  # fmt: skip
    conn.execute(
        """INSERT INTO alerts (id, event_time, episode_id, seq, site, device_kind, device_id,
               kind, rule, phase, zone, lat, lon, confidence, evidence, attributes, district)
           VALUES (%s, %s, %s, 0, 'demo', %s, %s, %s, 'test', %s, NULL, %s, %s, %s, %s, %s, %s)
           ON CONFLICT DO NOTHING""",
        (alert_id, when, alert_id.rsplit(".", 1)[0], device_kind, device_id, kind, phase,
         lat, lon, confidence, json.dumps(evidence or []), json.dumps(attributes or {}),
         district),
    )  # fmt: skip


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
    conn.execute(
        """INSERT INTO work_orders (id, kind, category_code, category_name, department,
               priority, state, sla_tier, opened_at, due_at, clock_started_at, district, street,
               community, lat, lon, last_activity, alert_count, max_confidence, seq,
               sources)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0.9,
               %s, %s)""",
        (order.id, order.kind.value, order.category_code, order.category_name, order.department,
         order.priority, order.state.value, order.sla_tier, order.opened_at, order.due_at,
         order.clock_started_at, district, street, community, lat, lon, opened_at, alerts,
         order.seq, json.dumps([device_id])),
    )  # fmt: skip
    conn.cursor().executemany(
        "INSERT INTO work_order_alerts (work_order_id, alert_id) VALUES (%s, %s)",
        [(order.id, a) for a in alert_ids],
    )
    conn.cursor().executemany(
        """INSERT INTO workorder_events (id, work_order_id, seq, event, from_state, to_state,
               actor, time, reason, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        [(e.id, e.work_order_id, e.seq, e.event, e.from_state.value, e.to_state.value, e.actor,
          e.time, e.reason, json.dumps(e.data, default=str)) for e in order.events],
    )  # fmt: skip
    conn.commit()
    return order
