"""A person's action in the command center reaches the systems that follow work orders on
Kafka/MQTT (a 12345 platform), like the machine's own events: API → database → the stream
tier's relay → Kafka → bridge → MQTT."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citywatch.contracts import Channel, WorkOrderEvent, encode
from tests.center.conftest import auth, center_config
from tests.integration.test_work_orders import CAM_1, make_alert, orders_of, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_dispatch_in_the_center_is_published_to_integrators(
    stack, pipeline, publisher_for, demo_config, workorder_follower
) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from citywatch.center.app import create_app
    from citywatch.center.settings import CenterSettings

    received = workorder_follower
    settings = CenterSettings(
        config=center_config(demo_config), database_url=stack.endpoints.database_url
    )
    alert = make_alert(CAM_1, "illegal_parking", when=datetime.now(UTC), lat=31.4711, lon=119.4711)
    publisher_for("gw-cam-renmin").publish(CAM_1.address(Channel.ALERTS).topic, encode(alert))
    (order_id,) = wait_for(lambda: orders_of(stack, [alert.id]), what="the work order")[0]  # type: ignore[index]
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/api/v1/work-orders/{order_id}/actions/dispatch",
                               json={"department": "traffic-police", "reason": "carriageway"},
                               headers=auth("operator"))  # fmt: skip
        assert response.status_code == 200, response.text
    wait_for(lambda: [e for e in received if e.work_order_id == order_id and e.event == "dispatched"],
             what="the dispatch on MQTT")  # fmt: skip
    mine = [e for e in received if e.work_order_id == order_id]
    assert [e.event for e in mine] == ["reported", "filed", "dispatched"]
    assert mine[-1].actor == "operator" and mine[-1].department == "traffic-police"
    assert mine[-1].reason == "carriageway"


def test_the_relay_sends_peoples_events_once_from_where_it_started(
    client, center_db, demo_config
) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import psycopg

    from citywatch.stream.center_relay import relay_once
    from tests.center.seed import seed_order

    with psycopg.connect(center_db) as conn:
        order = seed_order(conn, demo_config)
    sent: list[WorkOrderEvent] = []

    async def send(events: list[WorkOrderEvent]) -> None:
        sent.extend(events)

    async def relay() -> int:
        async with await psycopg.AsyncConnection.connect(center_db) as conn, conn.transaction():
            return await relay_once(conn, send)

    assert asyncio.run(relay()) == 0  # the machine's own events are not relayed
    for action, body in [("dispatch", {"department": "urban-mgmt"}), ("sign", {})]:
        response = client.post(
            f"/api/v1/work-orders/{order.id}/actions/{action}", json=body, headers=auth("operator")
        )
        assert response.status_code == 200
    assert asyncio.run(relay()) == 2
    assert asyncio.run(relay()) == 0
    assert [(e.event, e.actor, e.state) for e in sent] == [
        ("dispatched", "operator", "dispatched"), ("signed", "operator", "signed")]  # fmt: skip
