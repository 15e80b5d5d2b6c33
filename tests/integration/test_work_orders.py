"""Many sightings of one problem become one work order, on the real stack (issue 5).

Alerts are published over MQTT with the gateways' own credentials and travel the whole
pipeline (bridge → Kafka → Faust → PostgreSQL). Event times are set in the past where the
behaviour depends on elapsed time (quiet periods, SLA breaches), so the tests do not wait.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from citywatch.contracts import Alert, Channel, DeviceRef, Location, encode
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def make_alert(device: DeviceRef, kind: str, *, when: datetime, phase: str = "start",
               episode: str | None = None, seq: int = 0, lat: float | None = None,
               lon: float | None = None, zone: str | None = "curb", **attributes: object) -> Alert:  # fmt: skip
    episode = episode or f"{device.id}.{uuid.uuid4().hex[:12]}"
    return Alert(
        id=f"{episode}.{seq}", episode_id=episode, seq=seq, device=device, kind=kind, rule="test",
        phase=phase, event_time=when, confidence=0.9, attributes=dict(attributes),
        location=Location(zone=zone if lat is None else None, lat=lat, lon=lon),
    )  # fmt: skip


def query(stack, sql: str, *args: object) -> list[tuple]:  # type: ignore[no-untyped-def]
    with psycopg.connect(stack.endpoints.database_url) as conn:
        return conn.execute(sql, args).fetchall()



def orders_of(stack, alert_ids: list[str]) -> list[tuple]:  # type: ignore[no-untyped-def]
    return query(
        stack,
        "SELECT DISTINCT work_order_id FROM work_order_alerts WHERE alert_id = ANY(%s)",
        alert_ids,
    )


SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")
CAM_1 = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
CAM_2 = DeviceRef(site="demo", kind="camera", id="cam-renmin-102")
DOCK = DeviceRef(site="demo", kind="dock", id="dock-chengxi-01")


def test_thirty_reports_of_one_spot_are_one_work_order(stack, pipeline, publisher_for) -> None:  # type: ignore[no-untyped-def]
    """30 vending alerts at one spot from one camera → one work order holding all 30."""
    gateway = publisher_for("gw-cam-renmin")
    start = datetime.now(UTC) - timedelta(minutes=20)
    alerts = [
        make_alert(CAM_2, "street_vending", when=start + timedelta(seconds=20 * i), zone="sidewalk")
        for i in range(30)
    ]
    for alert in alerts:
        gateway.publish(alert.device.address(Channel.ALERTS).topic, encode(alert))
    ids = [a.id for a in alerts]
    wait_for(lambda: query(stack, "SELECT count(*) FROM work_order_alerts WHERE alert_id = ANY(%s)", ids)[0][0] == 30,
             what="30 alerts linked")  # fmt: skip
    orders = orders_of(stack, ids)
    assert len(orders) == 1
    (count, kind, department, state), = query(
        stack, "SELECT alert_count, kind, department, state FROM work_orders WHERE id = %s", orders[0][0]
    )  # fmt: skip
    assert (count, kind, department, state) == (30, "street_vending", "urban-mgmt", "filed")


def test_two_cameras_and_a_drone_on_one_plume_are_one_fire(stack, pipeline, publisher_for) -> None:  # type: ignore[no-untyped-def]
    """Smoke seen by two cameras ~250 m apart and a drone overhead merges across device kinds."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    alerts = [
        make_alert(CAM_1, "smoke", when=now, zone="sidewalk"),
        make_alert(CAM_2, "smoke", when=now + timedelta(seconds=5), zone="sidewalk"),
        make_alert(DOCK, "smoke", when=now + timedelta(seconds=9), lat=31.4313, lon=119.4824),
    ]
    publisher_for("gw-cam-renmin").publish(CAM_1.address(Channel.ALERTS).topic, encode(alerts[0]))
    publisher_for("gw-cam-renmin").publish(CAM_2.address(Channel.ALERTS).topic, encode(alerts[1]))
    publisher_for("gw-dock-01").publish(DOCK.address(Channel.ALERTS).topic, encode(alerts[2]))
    ids = [a.id for a in alerts]
    wait_for(lambda: query(stack, "SELECT count(*) FROM work_order_alerts WHERE alert_id = ANY(%s)", ids)[0][0] == 3,
             what="3 smoke alerts linked")  # fmt: skip
    orders = orders_of(stack, ids)
    assert len(orders) == 1
    (sources, priority), = query(stack, "SELECT sources, priority FROM work_orders WHERE id = %s", orders[0][0])  # fmt: skip
    assert len(sources) == 3 and priority == 1


def test_two_cars_fifty_metres_apart_are_two_work_orders(stack, pipeline, publisher_for) -> None:  # type: ignore[no-untyped-def]
    """Parking merges within 15 m only: two cars 50 m apart are two problems."""
    gateway = publisher_for("gw-cam-renmin")
    when = datetime.now(UTC) - timedelta(minutes=2)
    first = make_alert(CAM_1, "illegal_parking", when=when, lat=31.43090, lon=119.48150)
    second = make_alert(
        CAM_1, "illegal_parking", when=when, lat=31.43135, lon=119.48150
    )  # ~50 m north
    for alert in (first, second):
        gateway.publish(CAM_1.address(Channel.ALERTS).topic, encode(alert))
    wait_for(lambda: len(orders_of(stack, [first.id, second.id])) == 2, what="two work orders")


def test_recurrence_after_the_incident_closed_reopens_the_same_work_order(
    stack, pipeline, publisher_for
) -> None:  # type: ignore[no-untyped-def]
    """Water at one sensor ends, the incident closes after its quiet period, water returns:
    the same work order, with the recurrence (复发) counted."""
    gateway = publisher_for("gw-sensors-east")
    topic = SENSOR.address(Channel.ALERTS).topic
    old = datetime.now(UTC) - timedelta(hours=2)
    episode = f"{SENSOR.id}.first-{uuid.uuid4().hex[:6]}"
    start = make_alert(
        SENSOR, "waterlogging", when=old, episode=episode, lat=31.4612, lon=119.5121, level="lane"
    )
    end = make_alert(SENSOR, "waterlogging", when=old + timedelta(minutes=10), episode=episode, seq=1,
                     phase="end", lat=31.4612, lon=119.5121, level="dry")  # fmt: skip
    for alert in (start, end):
        gateway.publish(topic, encode(alert))
    (order_id,) = wait_for(lambda: orders_of(stack, [start.id]), what="the first work order")[0]  # type: ignore[index]
    wait_for(lambda: query(stack, "SELECT incident_state FROM work_orders WHERE id = %s", order_id)[0][0] == "closed",
             what="the incident to close after its quiet period")  # fmt: skip
    again = make_alert(SENSOR, "waterlogging", when=datetime.now(UTC) - timedelta(minutes=1),
                       lat=31.4612, lon=119.5121, level="underpass_closure")  # fmt: skip
    gateway.publish(topic, encode(again))
    assert wait_for(lambda: orders_of(stack, [again.id]), what="the recurrence")[0][0] == order_id  # type: ignore[index]
    (reopens, state, priority), = query(
        stack, "SELECT reopen_count, incident_state, priority FROM work_orders WHERE id = %s", order_id
    )  # fmt: skip
    assert (reopens, state, priority) == (1, "open", 2)


def test_sla_breach_escalates_community_street_district(stack, pipeline, publisher_for) -> None:  # type: ignore[no-untyped-def]
    """Smoke reported 25 minutes ago (10-minute tier) has breached: three escalation events."""
    gateway = publisher_for("gw-cam-renmin")
    alert = make_alert(
        CAM_1, "smoke", when=datetime.now(UTC) - timedelta(minutes=25), lat=31.4400, lon=119.4900
    )
    gateway.publish(CAM_1.address(Channel.ALERTS).topic, encode(alert))
    (order_id,) = wait_for(lambda: orders_of(stack, [alert.id]), what="the smoke work order")[0]  # type: ignore[index]

    def escalations() -> list[tuple]:  # type: ignore[type-arg]
        return query(
            stack,
            "SELECT data FROM workorder_events WHERE work_order_id = %s AND event = 'escalated' ORDER BY seq",
            order_id,
        )

    wait_for(lambda: len(escalations()) == 3, what="three escalation events")
    rows = escalations()
    levels = [r[0]["level"] for r in rows]
    assert levels == ["community", "street", "district"]
    units = [r[0]["unit"] for r in rows]  # type: ignore[index]
    assert units == ["c-renmin", "s-chengdong", "d-shifan"]


def test_spoofed_and_oversized_messages_are_dead_lettered_and_the_stream_goes_on(
    stack, pipeline, publisher_for
) -> None:  # type: ignore[no-untyped-def]
    """A payload naming another device, and a 300 KiB message, go to dead letters; a good alert after them is stored."""
    gateway = publisher_for("gw-sensors-east")
    topic = SENSOR.address(Channel.ALERTS).topic
    other = DeviceRef(site="demo", kind="sensor", id="wl-hebin-02")
    spoofed = make_alert(other, "waterlogging", when=datetime.now(UTC), lat=31.4, lon=119.4)
    gateway.publish(topic, encode(spoofed))
    gateway.publish(topic, b'{"v":"1.0","type":"alert","pad":"' + b"x" * 300_000 + b'"}')
    good = make_alert(
        SENSOR, "waterlogging", when=datetime.now(UTC), lat=31.4312, lon=119.4821, level="lane"
    )
    gateway.publish(topic, encode(good))
    wait_for(
        lambda: query(stack, "SELECT 1 FROM alerts WHERE id = %s", good.id), what="the good alert"
    )
    assert query(stack, "SELECT 1 FROM alerts WHERE id = %s", spoofed.id) == []
    log = pipeline["app"].output()
    assert "DeviceMismatch" in log and "MessageTooLarge" in log


def test_work_order_events_reach_kafka_consumers_and_mqtt(
    stack, pipeline, publisher_for, workorder_follower
) -> None:  # type: ignore[no-untyped-def]
    """Other systems (a 12345 platform) see the new work order's events on MQTT, in order."""
    received = workorder_follower
    alert = make_alert(CAM_2, "street_vending", when=datetime.now(UTC), lat=31.5000, lon=119.5000)
    publisher_for("gw-cam-renmin").publish(CAM_2.address(Channel.ALERTS).topic, encode(alert))
    (order_id,) = wait_for(lambda: orders_of(stack, [alert.id]), what="the work order")[0]  # type: ignore[index]
    wait_for(
        lambda: [e for e in received if e.work_order_id == order_id], what="its events on MQTT"
    )
    mine = [e for e in received if e.work_order_id == order_id]
    assert [e.event for e in mine][:2] == ["reported", "filed"]
    assert mine[0].department == "urban-mgmt" and mine[0].category == "05-01"
    assert alert.id in mine[0].alert_ids
