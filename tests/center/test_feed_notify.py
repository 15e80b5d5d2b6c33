"""The nudge behind the live feed: one notification per statement that inserts work-order
events (migration 0005), naming the highest feed position it inserted; none for a
statement that inserted nothing. The stream worker inserts a batch's thousands of events in
one statement; every listener woke for each of them."""

from __future__ import annotations

import json

import psycopg
import pytest

from citywatch.storage.workorders import EVENT_COLUMNS, event_values
from tests.center.seed import seed_order

pytestmark = pytest.mark.integration


def test_one_statement_of_events_is_one_notification(center_db: str, demo_config) -> None:  # type: ignore[no-untyped-def]
    with (
        psycopg.connect(center_db, autocommit=True) as listener,
        psycopg.connect(center_db) as conn,
    ):
        listener.execute("LISTEN workorder_events")
        order = seed_order(conn, demo_config)  # its two events, a statement each
        assert len(list(listener.notifies(timeout=1.0))) == len(order.events)

        rows = []
        for n in range(3):  # three more events of the order, in one INSERT
            row = list(event_values(order.events[n % len(order.events)]))
            row[EVENT_COLUMNS.index("id")] = f"{order.id}.copy{n}"
            row[EVENT_COLUMNS.index("seq")] = 100 + n
            rows.append(row)
        placeholders = ", ".join(f"({', '.join(['%s'] * len(EVENT_COLUMNS))})" for _ in rows)
        insert = f"INSERT INTO workorder_events ({', '.join(EVENT_COLUMNS)}) VALUES {placeholders}"
        conn.execute(insert + " ON CONFLICT DO NOTHING", [v for row in rows for v in row])
        conn.commit()
        nudges = [json.loads(n.payload) for n in listener.notifies(timeout=1.0)]
        highest = conn.execute(
            "SELECT max(feed_id) FROM workorder_events WHERE work_order_id = %s", (order.id,)
        ).fetchone()
        assert nudges == [{"feed_id": highest[0] if highest else None, "events": 3}]

        # The same statement again inserts nothing (all conflicts): no nudge.
        conn.execute(insert + " ON CONFLICT DO NOTHING", [v for row in rows for v in row])
        conn.commit()
        assert list(listener.notifies(timeout=0.5)) == []
