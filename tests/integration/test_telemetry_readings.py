"""A sampled sensor's telemetry on the real stack: one message, one row per reading.

A sensor with ``telemetry_every_sample`` sends the latest reading plus the samples taken
since its last message; the stream stores every one as its own telemetry row, and a resend
(QoS 1 redelivery, an outbox replay) adds nothing.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from citywatch.contracts import Channel, DeviceRef, Reading, Telemetry, encode

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-hebin-02")


def rows_of(database_url: str, message_id: str) -> list[tuple[str, datetime, float]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(  # type: ignore[return-value]
            "SELECT id, time, (metrics->>'depth_cm')::float FROM telemetry"
            " WHERE device_id = %s AND (id = %s OR id LIKE %s) ORDER BY time",
            (SENSOR.id, message_id, f"{message_id}.%"),
        ).fetchall()


def test_every_reading_of_a_sampled_message_is_its_own_row_and_a_resend_adds_none(
    stack, pipeline, publisher_for
) -> None:  # type: ignore[no-untyped-def]
    """Ten one-second samples in one message → ten rows with their own times and depths."""
    last = datetime.now(UTC).replace(microsecond=0)
    message_id = f"wl-hebin-02.t{uuid.uuid4().hex[:8]}"
    message = Telemetry(
        id=message_id,
        device=SENSOR,
        event_time=last,
        metrics={"depth_cm": 9.0},
        earlier=tuple(
            Reading(event_time=last - timedelta(seconds=9 - n), metrics={"depth_cm": float(n)})
            for n in range(9)
        ),
    )
    gateway = publisher_for("gw-sensors-east")
    topic = SENSOR.address(Channel.TELEMETRY).topic
    gateway.publish(topic, encode(message))
    deadline = time.monotonic() + 60
    while len(rows_of(stack.endpoints.database_url, message_id)) < 10:
        assert time.monotonic() < deadline, "the ten readings were not stored"
        time.sleep(0.2)
    gateway.publish(topic, encode(message))
    time.sleep(3)  # the resend has gone through the stream by now (p99 < 1 s)

    rows = rows_of(stack.endpoints.database_url, message_id)
    assert [r[0] for r in rows] == [f"{message_id}.{n}" for n in range(9)] + [message_id]
    assert [r[1] for r in rows] == [last - timedelta(seconds=9 - n) for n in range(10)]
    assert [r[2] for r in rows] == [float(n) for n in range(10)]
