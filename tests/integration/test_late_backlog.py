"""A gateway's backlog that arrives after an outage joins the live work order (issue 18).

On the real stack: a live device reports a problem and its work order opens; meanwhile the
gateway of a second device at the same spot was offline, its outbox holding an episode that
began long before the live one and went on until shortly before it. When the gateway comes
back (a real EdgeSession sending what its outbox kept), the stream worker puts every alert in
one work order — directly, or by folding the order the backlog opened into the live one
(kept as ``merged``, with an event on both timelines).
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from citywatch.contracts import Alert, Channel, DeviceRef, encode
from citywatch.edge.gateway_session import edge_session
from tests.integration.test_work_orders import make_alert, orders_of, query
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def episode_of(device: DeviceRef, kind: str, tag: str, minutes_ago: list[int],
               spot: tuple[float, float]) -> list[Alert]:  # fmt: skip
    """One episode's start and updates at ``spot``, ``minutes_ago`` before now."""
    now = datetime.now(UTC)
    name = f"{device.id}.{tag}-{uuid.uuid4().hex[:6]}"
    return [
        make_alert(device, kind, when=now - timedelta(minutes=ago), episode=name, seq=i,
                   phase="start" if i == 0 else "update", lat=spot[0], lon=spot[1], level="lane")
        for i, ago in enumerate(minutes_ago)
    ]  # fmt: skip


def deliver_after_outage(stack, gateway: str, config, backlog: list[Alert]) -> None:  # type: ignore[no-untyped-def]
    """Hold ``backlog`` in the gateway's outbox while it is offline, then connect it."""
    session = edge_session(config, gateway, stack.data_dir)
    for alert in backlog:
        session.outbox.put(alert.id, alert.device.address(Channel.ALERTS).topic, encode(alert),
                           1, "alert", alert.device.id, time.time())  # fmt: skip
    session.start()
    try:
        assert session.wait_connected(15), "gateway could not connect to Mosquitto"
        wait_for(
            lambda: session.outbox.counts().get("alert", 0) == 0, 120, "the backlog's receipts"
        )
    finally:
        session.stop()
        session.outbox.close()


CASES = {
    # waterlogging recurs by reopening: the late episode is the same problem from its start
    "waterlogging": ("gw-sensors-east", DeviceRef(site="demo", kind="sensor", id="wl-hebin-02"),
                     DeviceRef(site="demo", kind="sensor", id="wl-underpass-01"),
                     [150, 140, 130, 120, 110, 100, 90, 80, 70, 60, 50], [40, 30]),
    # parking recurs as a new order: the late episode opens one, folded once it reaches the live one
    "illegal_parking": ("gw-cam-renmin", DeviceRef(site="demo", kind="camera", id="cam-renmin-101"),
                        DeviceRef(site="demo", kind="camera", id="cam-renmin-102"),
                        [100, 90, 80, 70, 60, 50], [45, 35]),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_backlog_45_minutes_late_is_one_work_order_with_the_live_one(
    stack, pipeline, publisher_for, demo_config, kind: str
) -> None:  # type: ignore[no-untyped-def]
    """Live alerts first, then an outage's older episode at the same spot: one work order."""
    gateway, live_device, offline_device, backlog_ago, live_ago = CASES[kind]
    spot = (31.47 + random.uniform(0, 0.02), 119.52 + random.uniform(0, 0.02))
    live = episode_of(live_device, kind, "live", live_ago, spot)
    publisher = publisher_for(gateway)
    for alert in live:
        publisher.publish(alert.device.address(Channel.ALERTS).topic, encode(alert))
    first = wait_for(lambda: orders_of(stack, [a.id for a in live]), what="the live order")
    (live_order,) = first[0]  # type: ignore[index]

    backlog = episode_of(offline_device, kind, "outage", backlog_ago, spot)
    deliver_after_outage(stack, gateway, demo_config, backlog)
    ids = [a.id for a in live + backlog]
    wait_for(
        lambda: query(stack, "SELECT count(*) FROM work_order_alerts WHERE alert_id = ANY(%s)", ids)[0][0] == len(ids),
        60, f"every alert linked (app log: {pipeline['app'].output()[-2000:]})",
    )  # fmt: skip
    assert orders_of(stack, ids) == [(live_order,)]
    folded = query(stack, "SELECT id, state FROM work_orders WHERE id = %s", f"inc.{backlog[0].id}")
    events = query(
        stack,
        "SELECT work_order_id, event FROM workorder_events WHERE event IN ('merged', 'absorbed')"
        " AND work_order_id = ANY(%s)",
        [live_order, f"inc.{backlog[0].id}"],
    )
    if kind == "waterlogging":  # joined the live order at once: no second order was opened
        assert folded == [] and events == []
    else:  # opened by the backlog's start, folded into the live one: kept, with both events
        assert folded == [(f"inc.{backlog[0].id}", "merged")]
        assert sorted(events) == sorted([(live_order, "absorbed"), (folded[0][0], "merged")])
