"""A person's action and a stream worker's stale copy of the same work order: the worker's
save is refused (StaleWorkOrders) instead of overwriting the action, and after it reloads
from the database it escalates the order as the person left it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from citywatch.storage.workorders import StaleWorkOrders
from citywatch.stream.processor import AlertProcessor
from tests.center.conftest import auth
from tests.center.seed import seed_order

pytestmark = pytest.mark.integration


def test_a_worker_never_overwrites_a_persons_action(client, center_db, demo_config) -> None:  # type: ignore[no-untyped-def]
    opened = datetime.now(UTC) - timedelta(hours=2)
    with psycopg.connect(center_db) as conn:
        order = seed_order(conn, demo_config, opened_at=opened, kind="illegal_parking")
    processor = AlertProcessor(demo_config)
    later = datetime.now(UTC) + timedelta(days=10)  # far past due: every escalation step fires

    async def worker_ticks() -> list[str]:
        async with await psycopg.AsyncConnection.connect(center_db) as conn:
            await processor.restore(conn, datetime.now(UTC))
            assert processor.orders[order.id].state.value == "filed"
            # meanwhile, in the command center:
            dispatched = client.post(f"/api/v1/work-orders/{order.id}/actions/dispatch",
                                     json={"department": "traffic-police", "reason": "carriageway"}, headers=auth("operator"))  # fmt: skip
            assert dispatched.status_code == 200
            with pytest.raises(StaleWorkOrders) as stale:
                async with conn.transaction():
                    await processor.tick(conn, later)
            assert stale.value.ids == [order.id]
            # what the Faust app does next: rebuild from the database and try again
            await processor.restore(conn, datetime.now(UTC))
            async with conn.transaction():
                outcome = await processor.tick(conn, later)
            return [e.event for e in outcome.events]

    events = asyncio.run(worker_ticks())
    assert events and set(events) == {"escalated"}
    detail = client.get(f"/api/v1/work-orders/{order.id}", headers=auth("viewer")).json()
    assert detail["state"] == "dispatched" and detail["department"] == "traffic-police"
    assert detail["escalation_level"] is not None
    assert [e["actor"] for e in detail["timeline"] if e["event"] == "dispatched"] == ["operator"]
