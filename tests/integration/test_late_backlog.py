"""A gateway's backlog that arrives after an outage joins the live work order (issue 18).

On the real stack: a live sensor reports a flood and its work order opens; meanwhile the
gateway of a second sensor on the same street was offline, its outbox holding an episode that
began long before the live one and went on until 50 minutes ago. When the gateway comes back
(a real EdgeSession sending what its outbox kept, one alert per receipt), the stream worker
sees that the two orders are one problem and folds the backlog's order into the live one:
every alert in one work order, the folded order kept as ``merged`` with events on both.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from citywatch.contracts import Channel, DeviceRef, encode
from citywatch.edge.gateway_session import edge_session
from tests.integration.test_work_orders import make_alert, orders_of, query
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATEWAY = "gw-sensors-east"
LIVE = DeviceRef(site="demo", kind="sensor", id="wl-hebin-02")
OFFLINE = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")


def test_a_backlog_45_minutes_late_is_one_work_order_with_the_live_one(
    stack, pipeline, publisher_for, demo_config
) -> None:  # type: ignore[no-untyped-def]
    """Live alerts first, then the outage's older episode: one work order holds them all."""
    lat, lon = 31.47 + random.uniform(0, 0.02), 119.52 + random.uniform(0, 0.02)
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:6]
    live_episode = f"{LIVE.id}.live-{tag}"
    live = [
        make_alert(LIVE, "waterlogging", when=now - timedelta(minutes=40 - 10 * i),
                   episode=live_episode, seq=i, phase="start" if i == 0 else "update",
                   lat=lat, lon=lon, level="lane")
        for i in range(2)
    ]  # fmt: skip
    publisher = publisher_for(GATEWAY)
    for alert in live:
        publisher.publish(alert.device.address(Channel.ALERTS).topic, encode(alert))
    first = wait_for(lambda: orders_of(stack, [a.id for a in live]), what="the live order")
    (live_order,) = first[0]  # type: ignore[index]

    # The offline gateway's episode: from 150 to 50 minutes ago, 11 m away, never delivered.
    backlog_episode = f"{OFFLINE.id}.outage-{tag}"
    backlog = [
        make_alert(OFFLINE, "waterlogging", when=now - timedelta(minutes=150 - 10 * i),
                   episode=backlog_episode, seq=i, phase="start" if i == 0 else "update",
                   lat=lat + 0.0001, lon=lon, level="lane")
        for i in range(11)
    ]  # fmt: skip
    session = edge_session(demo_config, GATEWAY, stack.data_dir)
    for alert in backlog:  # held in the outbox while the uplink is down
        session.outbox.put(alert.id, alert.device.address(Channel.ALERTS).topic, encode(alert),
                           1, "alert", alert.device.id, time.time())  # fmt: skip
    session.start()
    try:
        assert session.wait_connected(15), "gateway could not connect to Mosquitto"
        ids = [a.id for a in live + backlog]
        wait_for(
            lambda: query(stack, "SELECT count(*) FROM work_order_alerts WHERE alert_id = ANY(%s)", ids)[0][0] == len(ids)
            and len(orders_of(stack, ids)) == 1,
            120,
            f"all alerts in one work order (app log: {pipeline['app'].output()[-2000:]})",
        )  # fmt: skip
    finally:
        session.stop()
        session.outbox.close()
    assert orders_of(stack, ids) == [(live_order,)]
    folded = f"inc.{backlog[0].id}"
    ((state,),) = [query(stack, "SELECT state FROM work_orders WHERE id = %s", folded)[0]]
    assert state == "merged"
    events = query(
        stack,
        "SELECT work_order_id, event FROM workorder_events WHERE event IN ('merged', 'absorbed')"
        " AND work_order_id = ANY(%s) ORDER BY work_order_id",
        [live_order, folded],
    )
    assert sorted(events) == sorted([(live_order, "absorbed"), (folded, "merged")])
