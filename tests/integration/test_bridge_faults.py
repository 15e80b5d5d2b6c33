"""The bridge on the real stack when Kafka cannot take a message (issue 16, finding 4).

An alert larger than Kafka's request limit used to be retried by the bridge forever: never
stored, never dead-lettered, and its gateway resending it for ever. Now its head is
dead-lettered with its size and digest, its device gets a ``rejected`` receipt (the gateway
quarantines it), and the messages behind it flow as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from citywatch.contracts import (
    Alert,
    Channel,
    DeviceRef,
    Location,
    Receipt,
    ReceiptStatus,
    decode,
    encode,
)
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-hebin-02")


def alert(alert_id: str, **attributes: object) -> Alert:
    return Alert(id=alert_id, episode_id=alert_id.rsplit(".", 1)[0], seq=0, device=SENSOR,
                 kind="waterlogging", rule="depth_level", phase="start",
                 event_time=datetime.now(UTC) - timedelta(seconds=5),
                 location=Location(lat=31.43, lon=119.48), confidence=0.9,
                 attributes={"depth_cm": 18.0, "level": "lane", **attributes})  # fmt: skip


async def dead_letter_with(stack, key: bytes) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    consumer = AIOKafkaConsumer(
        "citywatch.dead-letters", bootstrap_servers=stack.endpoints.kafka_bootstrap,
        auto_offset_reset="earliest", group_id=None,
    )  # fmt: skip
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("original_sha256") == key:
                        return headers | {"value": record.value}
        raise AssertionError("no dead letter arrived")
    finally:
        await consumer.stop()


def test_an_alert_too_large_for_kafka_is_dead_lettered_and_refused_not_retried_forever(
    stack,
    pipeline,
    demo_config,
    publisher_for,  # type: ignore[no-untyped-def]
) -> None:
    """1.5 MB (over Kafka's 1 MB request limit): the device gets a rejected receipt naming
    the reason, the dead-letter topic keeps its head with size and sha256, and an ordinary
    alert sent after it is stored."""
    gateway = next(s.gateway for s in demo_config.devices.sensors if s.id == SENSOR.id)
    publisher = publisher_for(gateway)
    receipts: list[Receipt] = []
    publisher.client.on_message = lambda client, userdata, message: receipts.append(
        decode(message.payload, Receipt)
    )
    publisher.client.subscribe(SENSOR.address(Channel.RECEIPTS).topic, qos=1)
    episode = f"{SENSOR.id}.{uuid.uuid4().hex[:10]}"
    big = encode(alert(f"{episode}-big.0", note="x" * 1_500_000))
    assert len(big) > 1_048_576
    publisher.publish(SENSOR.address(Channel.ALERTS).topic, big)
    small = alert(f"{episode}-small.0")
    publisher.publish(SENSOR.address(Channel.ALERTS).topic, encode(small))

    rejected = wait_for(
        lambda: [r for r in receipts if r.message_id == f"{episode}-big.0"], 60, "the rejection"
    )
    assert rejected[0].status is ReceiptStatus.REJECTED  # type: ignore[index]
    assert "MessageTooLarge" in (rejected[0].reason or "")  # type: ignore[index]
    wait_for(
        lambda: [r for r in receipts if r.message_id == small.id and r.status is ReceiptStatus.STORED],
        60, "the stored receipt of the alert behind it",
    )  # fmt: skip
    letter = asyncio.run(dead_letter_with(stack, hashlib.sha256(big).hexdigest().encode()))
    assert letter["original_size"] == str(len(big)).encode()
    assert letter["__connect.errors.exception.class.name"] == b"MessageTooLarge"
    assert big.startswith(letter["value"]) and len(letter["value"]) == 64 * 1024
    with psycopg.connect(stack.endpoints.database_url) as conn:
        stored = conn.execute("SELECT id FROM alerts WHERE id LIKE %s", (f"{episode}%",)).fetchall()
    assert stored == [(small.id,)]
