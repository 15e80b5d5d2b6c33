"""A recurrence (复发) under ``recurrence: new_linked`` on the real stack (issue 18).

Parking at a spot whose order closed comes back: a new order, linked to the earlier one in
its first event and its attributes; the earlier order stays closed and is not reopened.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from citywatch.contracts import Channel, DeviceRef, encode
from tests.integration.test_late_backlog import episode_of
from tests.integration.test_work_orders import make_alert, orders_of, query
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_parking_back_after_its_order_closed_is_a_new_order_linked_as_recurrence(
    stack, pipeline, publisher_for
) -> None:  # type: ignore[no-untyped-def]
    """Parking recurs as a new linked order (the demo's new_linked policy): the new order's
    first event and its attributes name the earlier one (复发), which stays closed."""
    spot = (31.50 + random.uniform(0, 0.02), 119.55 + random.uniform(0, 0.02))
    camera = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
    publisher = publisher_for("gw-cam-renmin")
    first = episode_of(camera, "illegal_parking", "first", [120, 110], spot)
    end = make_alert(camera, "illegal_parking", when=datetime.now(UTC) - timedelta(minutes=100),
                     episode=first[0].episode_id, seq=2, phase="end", lat=spot[0], lon=spot[1])  # fmt: skip
    for alert in [*first, end]:
        publisher.publish(alert.device.address(Channel.ALERTS).topic, encode(alert))
    (old_order,) = wait_for(lambda: orders_of(stack, [first[0].id]), what="the first order")[0]  # type: ignore[index]
    wait_for(
        lambda: query(stack, "SELECT incident_state FROM work_orders WHERE id = %s", old_order)[0][0] == "closed",
        what="the first incident to close after its quiet period",
    )  # fmt: skip
    again = episode_of(camera, "illegal_parking", "again", [1], spot)
    publisher.publish(camera.address(Channel.ALERTS).topic, encode(again[0]))
    (new_order,) = wait_for(lambda: orders_of(stack, [again[0].id]), what="the recurrence")[0]  # type: ignore[index]
    assert new_order != old_order
    ((linked,),) = query(stack, "SELECT attributes->>'recurrence_of' FROM work_orders WHERE id = %s", new_order)  # fmt: skip
    assert linked == old_order
    ((data, reason),) = query(
        stack,
        "SELECT data->>'recurrence_of', reason FROM workorder_events"
        " WHERE work_order_id = %s AND event = 'reported'",
        new_order,
    )
    assert data == old_order and "复发" in reason
    ((state, reopens),) = query(stack, "SELECT incident_state, reopen_count FROM work_orders WHERE id = %s", old_order)  # fmt: skip
    assert (state, reopens) == ("closed", 0)
